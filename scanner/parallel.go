package scanner

import (
	"context"
	"runtime"
	"sync"
)

// onEveryCore calls do(worker, i) for i in [0, n), on as many goroutines
// as there are cores (at most n), each taking the next i when done with
// its last; worker numbers the goroutine, for per-worker buffers. It
// returns when every call has returned, or stops handing out work once
// ctx is done.
func onEveryCore(ctx context.Context, n int, do func(worker, i int)) {
	next := make(chan int)
	var wg sync.WaitGroup
	for w := range min(runtime.GOMAXPROCS(0), n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				do(w, i)
			}
		}()
	}
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
}
