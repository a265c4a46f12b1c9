package people

import "time"

// SetPurgeMarkerTTL sets how long purge markers live for the galleries opened after it; the
// returned func restores it.
func SetPurgeMarkerTTL(d time.Duration) func() {
	old := purgeMarkerTTL
	purgeMarkerTTL = d
	return func() { purgeMarkerTTL = old }
}
