package decode

import (
	"context"
	"runtime"
	"runtime/metrics"
	"sync"
	"time"
)

// A MemoryGate bounds the decoder memory of the walks that run at the
// same time, together. Limits.MaxDecoderMemory bounds one walk (160 MiB:
// an xz -9 dictionary, a zstd --long window), but a scan decodes on every
// core: sixteen xz streams of 128 MiB dictionaries, 27 MB of disk, took a
// 2-core scan to 722 MB of resident memory and a 16-core one to 2.4 GB,
// past the 512 MiB every scan promises.
//
// Each walk may draw small amounts from a shared pool (the usual
// decoders: 160 KiB for gzip, an 8 MiB xz dictionary), at most perWalk
// bytes of it; a walk that would hold more must first hold the gate's one
// token, and it then may hold up to its own cap. A walk waits only for
// the token, never while holding it, and the holder waits for nothing of
// the gate's: no walk waits on another that waits on it. So the walks'
// decoders hold at most the pool plus one walk's cap, however many run.
//
// The caps themselves are per walk, as before: what a walk decodes does
// not depend on how many others run, only when. A walk's time cap does
// not run while it waits for the token.
//
// A walk must not start another walk on the same gate from inside its
// callback: the inner one could wait for the token the outer one holds.
type MemoryGate struct {
	pool, perWalk int64
	token         chan struct{} // holds a value while a walk holds the token

	mu       sync.Mutex
	shared   int64 // drawn from the pool
	extra    int64 // what the token's holder holds beyond its share
	peak     int64 // the most shared+extra reached
	waits    int64 // times a walk waited for the token
	acquired int64 // times a walk took the token
}

// Sizes of the gate a scan uses: the pool is what most walks need at once
// on a many-core machine (gzip streams, 8 MiB xz and zstd windows), and
// with one walk's cap it stays under a third of the 512 MiB scan bound.
const (
	GatePool    = 32 << 20
	GatePerWalk = 16 << 20
)

// NewMemoryGate returns a gate whose walks share pool bytes, each at most
// perWalk of them, beside the one walk that holds the token.
func NewMemoryGate(pool, perWalk int64) *MemoryGate {
	return &MemoryGate{pool: pool, perWalk: min(perWalk, pool), token: make(chan struct{}, 1)}
}

// GateStats says what a gate saw: the most decoder memory its walks held
// at once, and how often a walk took the token and waited for it; and
// what they hold now (nothing, once every walk and its caller let go).
type GateStats struct {
	Peak, Acquired, Waits int64
	Held                  int64
}

// Stats returns the gate's counts so far.
func (g *MemoryGate) Stats() GateStats {
	g.mu.Lock()
	defer g.mu.Unlock()
	return GateStats{Peak: g.peak, Acquired: g.acquired, Waits: g.waits, Held: g.shared + g.extra}
}

// A Reservation is what one walk, and its caller beside it, hold at a
// gate: the walk's decoders, and what the caller keeps of the walk's
// output until the walk ends (the scanner's matches of a container
// before they are placed: 100,000 of them are about 100 MB). Both draw
// on the same standing, so a walk that holds the token holds it for
// both, and never waits for itself. A nil Reservation holds nothing and
// never waits. One walk at a time may use a Reservation; it is not safe
// for concurrent use.
type Reservation struct {
	wg   walkGate
	held int64
}

// Reserve returns a new Reservation at g (nil for a nil gate).
func (g *MemoryGate) Reserve() *Reservation {
	if g == nil {
		return nil
	}
	return &Reservation{wg: walkGate{g: g}}
}

// Hold holds n more bytes, waiting for the gate's token when its pool
// cannot give them; the error is ctx's, if it ends first.
func (r *Reservation) Hold(ctx context.Context, n int64) error {
	if r == nil {
		return nil
	}
	if err := r.wg.hold(ctx, r.held, n); err != nil {
		return err
	}
	r.held += n
	return nil
}

// Release gives back n bytes.
func (r *Reservation) Release(n int64) {
	if r == nil {
		return
	}
	r.held -= n
	r.wg.release(r.held)
}

// Held returns the bytes held.
func (r *Reservation) Held() int64 {
	if r == nil {
		return 0
	}
	return r.held
}

// walkGate is one walk's standing at a gate (none: every call is a no-op).
type walkGate struct {
	g     *MemoryGate
	clock *walkClock // paused while the walk waits
	share int64      // drawn from the pool
	token bool
}

// hold is called before the walk's decoders hold n more bytes, mem being
// what they hold now. It waits for the token when the pool cannot give n;
// the error is ctx's, when it ends first.
func (wg *walkGate) hold(ctx context.Context, mem, n int64) error {
	g := wg.g
	if g == nil || n <= 0 {
		return nil
	}
	g.mu.Lock()
	switch {
	case wg.token:
		g.extra += n
		g.notePeak()
		g.mu.Unlock()
		wg.makeRoom(n)
		return nil
	case mem+n <= g.perWalk && g.shared+(mem+n-wg.share) <= g.pool:
		g.shared += mem + n - wg.share
		wg.share = mem + n
		g.notePeak()
		g.mu.Unlock()
		return nil
	}
	g.mu.Unlock()
	select {
	case g.token <- struct{}{}:
	default:
		g.mu.Lock()
		g.waits++
		g.mu.Unlock()
		wg.clock.pause()
		select {
		case g.token <- struct{}{}:
			wg.clock.resume()
		case <-ctx.Done():
			wg.clock.resume()
			return ctx.Err()
		}
	}
	g.mu.Lock()
	wg.token = true
	g.acquired++
	g.extra = mem + n - wg.share
	g.notePeak()
	g.mu.Unlock()
	wg.makeRoom(n)
	return nil
}

// makeRoom is makeRoom for the walk, whose time cap does not run while
// the collector works for the gate (a collection of a large heap, on a
// loaded machine, took a walk with a 150 ms cap past it).
func (wg *walkGate) makeRoom(n int64) {
	if n < roomThreshold {
		return
	}
	wg.clock.pause()
	defer wg.clock.resume()
	makeRoom(n)
}

// roomThreshold is the least hold that makeRoom looks at: below it, the
// runtime's own pacing is close enough.
const roomThreshold = 8 << 20

// makeRoom collects the garbage before a walk that holds the token grows
// by n bytes, when the heap's objects (live, and dead ones not yet
// swept) and n together would pass the collector's heap goal (GOGC's,
// or lower under a soft memory limit: the CLI sets 384 MiB). The runtime
// allocates a large block first and collects after, so each 128 MiB xz
// dictionary allocated while the last walk's lay dead went past the goal
// by the whole block: two container layers decoding such streams by turns
// took a scan to 583 MiB of RSS, one layer to 417. A walk reaches here
// only past its share of the pool, holding the token (rare: an xz -7 to
// -9 dictionary, a zstd --long window), so the collection is paid seldom.
func makeRoom(n int64) {
	if n < roomThreshold {
		return
	}
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/gc/heap/goal:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 || s[1].Value.Kind() != metrics.KindUint64 {
		return
	}
	if s[0].Value.Uint64()+uint64(n) > s[1].Value.Uint64() {
		runtime.GC()
	}
}

// release is called after the walk's decoders let go of bytes, mem being
// what they hold now: the token goes back once the walk's share covers
// it, and the share shrinks to what the walk holds.
func (wg *walkGate) release(mem int64) {
	g := wg.g
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if wg.token {
		if mem > wg.share {
			g.extra = mem - wg.share
			return
		}
		g.extra = 0
		wg.token = false
		<-g.token
	}
	if mem < wg.share {
		g.shared -= wg.share - mem
		wg.share = mem
	}
}

func (g *MemoryGate) notePeak() { g.peak = max(g.peak, g.shared+g.extra) }

// walkClock is a walk's context: its parent's, ended after MaxTime of the
// walk's own time. Unlike context.WithTimeout's, its clock stops while the
// walk waits at a MemoryGate, so that a walk that waited is not cut
// sooner than one that did not.
type walkClock struct {
	parent context.Context
	done   chan struct{}

	mu      sync.Mutex
	err     error
	timer   *time.Timer
	left    time.Duration // of MaxTime, when paused
	started time.Time     // when the clock last ran on
	paused  int
	stop    func() bool // stops the parent's AfterFunc
}

func newWalkClock(parent context.Context, d time.Duration) (*walkClock, context.CancelFunc) {
	c := &walkClock{parent: parent, done: make(chan struct{}), left: d, started: time.Now()}
	c.timer = time.AfterFunc(d, func() { c.end(context.DeadlineExceeded) })
	c.stop = context.AfterFunc(parent, func() { c.end(parent.Err()) })
	return c, func() {
		c.timer.Stop()
		c.stop()
		c.end(context.Canceled)
	}
}

func (c *walkClock) end(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
		close(c.done)
	}
}

// pause stops the clock (a nil clock is never paused).
func (c *walkClock) pause() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.paused++; c.paused == 1 && c.timer.Stop() {
		c.left -= time.Since(c.started)
	}
}

// resume starts the clock again with what was left of it.
func (c *walkClock) resume() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.paused--; c.paused == 0 && c.err == nil {
		c.started = time.Now()
		c.timer.Reset(max(c.left, 0))
	}
}

func (c *walkClock) Deadline() (time.Time, bool) { return c.parent.Deadline() }
func (c *walkClock) Done() <-chan struct{}       { return c.done }
func (c *walkClock) Value(key any) any           { return c.parent.Value(key) }
func (c *walkClock) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}
