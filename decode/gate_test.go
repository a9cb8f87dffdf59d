package decode

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"testing"
	"time"

	"github.com/imgaudit/imgaudit/internal/testutil"
)

// TestWalkGateSteps follows two walks through a gate of a 10-byte pool,
// 6 a walk, step by step: what each draws from the pool, when the token
// is needed, taken, waited for and given back, and the peak.
func TestWalkGateSteps(t *testing.T) {
	g := NewMemoryGate(10, 6)
	walks := map[string]*walkGate{"A": {g: g}, "B": {g: g}}
	mem := map[string]int64{}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	steps := []struct {
		walk    string
		hold    int64 // > 0: hold this much; else release -hold
		ctx     context.Context
		err     bool  // the hold fails (it would wait, and ctx is done)
		shared  int64 // the pool's bytes drawn, after the step
		extra   int64 // the token holder's bytes beyond its share
		token   string
		waits   int64
		peakMax int64
	}{
		{walk: "A", hold: 4, shared: 4},
		{walk: "B", hold: 5, shared: 9},
		// A would reach 6, within its 6, but the pool holds 10.
		{walk: "A", hold: 2, shared: 9, extra: 2, token: "A"},
		// B would pass its 6: it needs the token, which A holds.
		{walk: "B", hold: 3, ctx: cancelled, err: true, shared: 9, extra: 2, token: "A", waits: 1},
		{walk: "A", hold: 100, shared: 9, extra: 102, token: "A", waits: 1},
		{walk: "A", hold: -100, shared: 9, extra: 2, token: "A", waits: 1},
		// Back to its share: the token goes back.
		{walk: "A", hold: -2, shared: 9, waits: 1},
		{walk: "B", hold: 3, shared: 9, extra: 3, token: "B", waits: 1},
		{walk: "B", hold: -8, shared: 4, waits: 1},
		{walk: "A", hold: -4, shared: 0, waits: 1},
	}
	for i, s := range steps {
		w := walks[s.walk]
		ctx := s.ctx
		if ctx == nil {
			ctx = context.Background()
		}
		if s.hold > 0 {
			err := w.hold(ctx, mem[s.walk], s.hold)
			if (err != nil) != s.err {
				t.Fatalf("step %d: %s holds %d: err %v", i, s.walk, s.hold, err)
			}
			if err == nil {
				mem[s.walk] += s.hold
			}
		} else {
			mem[s.walk] += s.hold
			w.release(mem[s.walk])
		}
		token := ""
		for name, w := range walks {
			if w.token {
				token += name
			}
		}
		g.mu.Lock()
		shared, extra := g.shared, g.extra
		g.mu.Unlock()
		if shared != s.shared || extra != s.extra || token != s.token || g.Stats().Waits != s.waits {
			t.Fatalf("step %d: shared %d, extra %d, token %q, waits %d; want %d, %d, %q, %d", i, shared, extra, token, g.Stats().Waits, s.shared, s.extra, s.token, s.waits)
		}
	}
	if st := g.Stats(); st.Peak != 111 || st.Acquired != 2 {
		t.Errorf("stats %+v, want peak 111 (9 shared, 102 over A's share), 2 tokens taken", st)
	}
}

// TestMemoryGateConcurrent runs 16 walks at once, each opening and
// closing nested decoders of every size a walk meets (a gzip stream's
// 160 KiB to a 128 MiB xz dictionary) within its own 160 MiB cap: none
// may deadlock, and together they never hold more than the pool plus one
// walk's cap.
func TestMemoryGateConcurrent(t *testing.T) {
	const walkCap = 160 << 20
	g := NewMemoryGate(GatePool, GatePerWalk)
	sizes := []int64{160 << 10, 4 << 20, 8 << 20, 16 << 20, 64 << 20, 128 << 20}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 1))
			w := &walkGate{g: g}
			var mem int64
			var held []int64 // a stack: decoders close innermost first
			for range 2000 {
				if n := sizes[rng.IntN(len(sizes))]; len(held) < 8 && mem+n <= walkCap && rng.IntN(2) == 0 {
					if err := w.hold(context.Background(), mem, n); err != nil {
						errs <- err
						return
					}
					mem += n
					held = append(held, n)
				} else if len(held) > 0 {
					mem -= held[len(held)-1]
					held = held[:len(held)-1]
					w.release(mem)
				}
			}
			for len(held) > 0 {
				mem -= held[len(held)-1]
				held = held[:len(held)-1]
				w.release(mem)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("the walks did not end: deadlock")
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	st := g.Stats()
	if st.Peak > GatePool+walkCap {
		t.Errorf("peak %d MiB, over the pool and one walk's cap (%d MiB)", st.Peak>>20, (GatePool+walkCap)>>20)
	}
	if st.Acquired == 0 {
		t.Error("no walk took the token")
	}
	checkGateEmpty(t, g, "after every walk")
	t.Logf("%+v", st)
}

// checkGateEmpty fails unless every byte held at g was given back and its
// token is free.
func checkGateEmpty(t *testing.T, g *MemoryGate, when string) {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.shared != 0 || g.extra != 0 || len(g.token) != 0 {
		t.Fatalf("%s: the gate holds %d shared, %d extra, token held %v", when, g.shared, g.extra, len(g.token) != 0)
	}
}

// TestWalkClock checks that a walk's time cap ends it after its own time,
// not counting what it spent paused, and that the caller's cancellation
// ends it paused or not.
func TestWalkClock(t *testing.T) {
	c, stop := newWalkClock(context.Background(), 100*time.Millisecond)
	defer stop()
	c.pause()
	time.Sleep(250 * time.Millisecond)
	if c.Err() != nil {
		t.Fatalf("paused past the cap: %v", c.Err())
	}
	c.resume()
	select {
	case <-c.Done():
		if !errors.Is(c.Err(), context.DeadlineExceeded) {
			t.Errorf("err %v, want the deadline", c.Err())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the clock never ran out")
	}

	parent, cancel := context.WithCancel(context.Background())
	c, stop = newWalkClock(parent, time.Hour)
	defer stop()
	c.pause()
	cancel()
	select {
	case <-c.Done():
		if !errors.Is(c.Err(), context.Canceled) {
			t.Errorf("err %v, want the caller's", c.Err())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("cancelling the caller did not end a paused clock")
	}
	if c.Value(struct{}{}) != nil {
		t.Error("a value from nowhere")
	}
}

// TestWalkWaitsForGate walks an xz stream (the xz tool's, a 64 MiB
// dictionary) while another walk holds the gate's token for longer than
// the walk's time cap: the walk waits, then decodes the stream whole,
// uncut by its time cap, which did not run while it waited.
func TestWalkWaitsForGate(t *testing.T) {
	testutil.RequireTool(t, "xz")
	dir := t.TempDir()
	want := bytes.Repeat([]byte("a line of a rotated log\n"), 1000)
	if err := os.WriteFile(filepath.Join(dir, "log"), want, 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.Bash(t, dir, "xz --format=xz --lzma2=preset=0,dict=64MiB -c log > log.xz")
	data, err := os.ReadFile(filepath.Join(dir, "log.xz"))
	if err != nil {
		t.Fatal(err)
	}
	g := NewMemoryGate(GatePool, GatePerWalk)
	other := &walkGate{g: g}
	if err := other.hold(context.Background(), 0, 100<<20); err != nil || !other.token {
		t.Fatalf("the other walk holds no token: %v", err)
	}
	go func() {
		time.Sleep(400 * time.Millisecond)
		other.release(0)
	}()
	start := time.Now()
	var got []byte
	res, err := Walk(context.Background(), bytes.NewReader(data), int64(len(data)),
		Options{Gate: g, Limits: Limits{MaxTime: 150 * time.Millisecond}}, func(l Leaf) error {
			b, err := io.ReadAll(l.R)
			got = b
			return err
		})
	if err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < 400*time.Millisecond {
		t.Errorf("the walk took %v: it did not wait for the token", waited)
	}
	if !bytes.Equal(got, want) || len(res.Skipped) != 0 {
		t.Errorf("decoded %d bytes of %d, skipped %v", len(got), len(want), res.Skipped)
	}
	if st := g.Stats(); st.Waits != 1 || st.Acquired != 2 {
		t.Errorf("stats %+v: want one wait, two tokens taken", st)
	}
	checkGateEmpty(t, g, "after the walk")
}

// TestGatedStreamReader checks that a gated stream reader holds its
// decoder's memory while open and gives it back on Close, once.
func TestGatedStreamReader(t *testing.T) {
	testutil.RequireTool(t, "xz")
	dir := t.TempDir()
	testutil.Bash(t, dir, "printf 'apt list\\n' | xz --format=xz --lzma2=preset=0,dict=32MiB -c > list.xz")
	data, err := os.ReadFile(filepath.Join(dir, "list.xz"))
	if err != nil {
		t.Fatal(err)
	}
	g := NewMemoryGate(GatePool, GatePerWalk)
	r, err := g.StreamReader(context.Background(), Xz, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 4)
	if _, err := io.ReadFull(r, head); err != nil {
		t.Fatal(err)
	}
	if len(g.token) != 1 {
		t.Error("a 32 MiB dictionary open without the token")
	}
	rest, err := io.ReadAll(r)
	if b := append(head, rest...); err != nil || string(b) != "apt list\n" {
		t.Fatalf("read %q, %v", b, err)
	}
	for i := range 2 {
		if err := r.Close(); err != nil {
			t.Fatal(fmt.Errorf("close %d: %w", i, err))
		}
	}
	checkGateEmpty(t, g, "after Close")
}

// TestMakeRoom: a walk that holds the token and grows by a large block
// while the heap's objects and the block would pass the collector's goal
// has the garbage collected first; a small hold, or one within the goal,
// does not. Automatic collection is off and the goal is a soft memory
// limit set for the test, so that only makeRoom collects.
func TestMakeRoom(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(math.MaxInt64))
	runtime.GC()
	objects := func() int64 {
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		metrics.Read(s)
		return int64(s[0].Value.Uint64())
	}
	debug.SetMemoryLimit(objects() + 256<<20)
	var garbage [][]byte
	for range 16 { // 128 MiB, dead at once
		garbage = append(garbage, make([]byte, 8<<20))
	}
	garbage = nil
	g := NewMemoryGate(32<<20, 16<<20)
	for _, c := range []struct {
		name    string
		n       int64
		collect bool
	}{
		{"under the threshold", roomThreshold - 1, false},
		{"within the goal", 64 << 20, false},
		{"past the goal", 200 << 20, true},
	} {
		r := g.Reserve()
		before := numGC()
		if err := r.Hold(context.Background(), c.n); err != nil {
			t.Fatal(err)
		}
		if collected := numGC() > before; collected != c.collect {
			t.Errorf("%s (%d bytes): collected %v, want %v", c.name, c.n, collected, c.collect)
		}
		r.Release(r.Held())
	}
	checkGateEmpty(t, g, "after the holds")
}

func numGC() uint32 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.NumGC
}
