// Package parallel runs the items of a batch on several goroutines that take
// the next item from a shared counter, so items of uneven cost balance
// better than with a static split. Pure Go: the clusterer's maths uses it.
package parallel

import (
	"sync"
	"sync/atomic"
)

// Each runs items 0..n-1 on up to workers goroutines (at least one). Each
// goroutine calls newWorker once, which sets up what that goroutine reuses
// from item to item (scratch memory, an encoder) and returns the function
// it calls for each item it takes. With one worker it all runs on the
// calling goroutine. Each returns when every item is done.
func Each(n, workers int, newWorker func() func(item int)) {
	workers = min(workers, n)
	if workers <= 1 {
		if n > 0 {
			do := newWorker()
			for i := range n {
				do(i)
			}
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			do := newWorker()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				do(i)
			}
		})
	}
	wg.Wait()
}
