package scanner

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// MaxTimeError is the cause of a run's deadline (imgaudit's --max-time).
// It is a context.DeadlineExceeded, so that StopCause can say it instead
// of the bare "context deadline exceeded".
type MaxTimeError struct{ Limit time.Duration }

func (e MaxTimeError) Error() string {
	return fmt.Sprintf("stopped at --max-time %v", e.Limit)
}

func (e MaxTimeError) Is(target error) bool { return target == context.DeadlineExceeded }

// WithMaxTime returns ctx with a deadline d from now whose cause is a
// MaxTimeError (d <= 0: ctx as it is, with no deadline).
func WithMaxTime(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeoutCause(ctx, d, MaxTimeError{d})
}

// StopCause is why ctx ended, for a report's incomplete reason: its cause
// when that is the same kind of error as ctx.Err() (a MaxTimeError), else
// ctx.Err() ("context canceled" for Ctrl-C, as before --max-time). It is
// nil while ctx is live.
func StopCause(ctx context.Context) error {
	err := ctx.Err()
	if c := context.Cause(ctx); err != nil && c != nil && c != err && errors.Is(c, err) {
		return c
	}
	return err
}

// StopReason is the incomplete reason of a run that ctx stopped:
// "interrupted: context canceled", or "interrupted: stopped at --max-time
// 30m0s".
func StopReason(ctx context.Context) string { return "interrupted: " + StopCause(ctx).Error() }
