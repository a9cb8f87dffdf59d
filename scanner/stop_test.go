package scanner

import (
	"context"
	"errors"
	"testing"
	"time"
)

// signalCause is what os/signal.NotifyContext gives as the cause of a
// Ctrl-C: an error that is context.Canceled.
type signalCause string

func (s signalCause) Error() string        { return string(s) }
func (s signalCause) Is(target error) bool { return target == context.Canceled }

// TestStopCause: a run stopped by --max-time says so; Ctrl-C says its
// signal; a plain cancel says "context canceled" as before; a live
// context has none; and every cause is still the context's error.
func TestStopCause(t *testing.T) {
	expired := func() context.Context {
		ctx, cancel := WithMaxTime(context.Background(), time.Nanosecond)
		t.Cleanup(cancel)
		<-ctx.Done()
		return ctx
	}
	canceled := func(cause error) context.Context {
		ctx, cancel := context.WithCancelCause(context.Background())
		cancel(cause)
		return ctx
	}
	tests := []struct {
		name   string
		ctx    context.Context
		reason string // "" for a live context
		is     error
	}{
		{"--max-time", expired(), "interrupted: stopped at --max-time 1ns", context.DeadlineExceeded},
		{"signal", canceled(signalCause("interrupt signal received")), "interrupted: interrupt signal received", context.Canceled},
		{"plain cancel", canceled(nil), "interrupted: context canceled", context.Canceled},
		{"cause of another kind", canceled(errors.New("shutting down")), "interrupted: context canceled", context.Canceled},
		{"live", context.Background(), "", nil},
		{"no limit", func() context.Context {
			ctx, cancel := WithMaxTime(context.Background(), 0)
			t.Cleanup(cancel)
			return ctx
		}(), "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := StopCause(tc.ctx)
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("StopCause = %v, want nil", err)
				}
				if _, ok := tc.ctx.Deadline(); ok {
					t.Error("a deadline was set")
				}
				return
			}
			if got := StopReason(tc.ctx); got != tc.reason {
				t.Errorf("StopReason = %q, want %q", got, tc.reason)
			}
			if !errors.Is(err, tc.is) {
				t.Errorf("StopCause = %v, not %v", err, tc.is)
			}
		})
	}
}
