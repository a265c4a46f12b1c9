package parallel

import (
	"sync"
	"sync/atomic"
	"testing"
)

func TestEachRunsEveryItemOnce(t *testing.T) {
	for _, tc := range []struct{ n, workers int }{{0, 4}, {1, 4}, {7, 1}, {7, 0}, {100, 3}, {3, 8}} {
		counts := make([]atomic.Int32, tc.n)
		var mu sync.Mutex
		made := 0
		Each(tc.n, tc.workers, func() func(int) {
			mu.Lock()
			made++
			mu.Unlock()
			return func(i int) { counts[i].Add(1) }
		})
		for i := range counts {
			if c := counts[i].Load(); c != 1 {
				t.Errorf("n=%d workers=%d: item %d ran %d times", tc.n, tc.workers, i, c)
			}
		}
		if want := min(max(tc.workers, 1), tc.n); made != want {
			t.Errorf("n=%d workers=%d: %d workers made, want %d", tc.n, tc.workers, made, want)
		}
	}
}

func TestEachWorkerStateIsPerGoroutine(t *testing.T) {
	const n = 1000
	owner := make([]*int, n)
	Each(n, 4, func() func(int) {
		mine := new(int)
		return func(i int) {
			*mine++ // unsynchronised: the race detector fails this if a state is shared
			owner[i] = mine
		}
	})
	total := 0
	seen := map[*int]bool{}
	for _, p := range owner {
		if !seen[p] {
			seen[p] = true
			total += *p
		}
	}
	if total != n {
		t.Errorf("worker states counted %d items, want %d", total, n)
	}
}
