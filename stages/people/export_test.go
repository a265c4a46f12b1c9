package people

import "time"

// SetPurgeMarkerTTL sets how long purge markers live for the galleries opened after it; the
// returned func restores it.
func SetPurgeMarkerTTL(d time.Duration) func() {
	old := purgeMarkerTTL
	purgeMarkerTTL = d
	return func() { purgeMarkerTTL = old }
}

// CachedRecords is the number of decoded records g holds.
func (g *Gallery) CachedRecords() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.cache)
}
