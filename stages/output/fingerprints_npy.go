package output

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Besides the gzip JSON fingerprint file, the clusterer stores the points as
// NumPy's .npy (np.load reads it; `personcluster cluster` reads it several
// times faster than the JSON) and the rest of the file as a JSON sidecar.

// Names of the .npy fingerprint files in a result folder.
const (
	FingerprintsNPY     = "fingerprints.npy"
	FingerprintsNPYJSON = "fingerprints.npy.json"
)

// NPYKeys are the object-store keys of the .npy points and their sidecar
// that go with the gzip JSON fingerprints stored at key.
func NPYKeys(key string) (points, sidecar string) {
	base := strings.TrimSuffix(key, ".json.gz")
	return base + ".npy", base + ".npy.json"
}

// writeNPYFingerprints saves the .npy points and sidecar of the
// fingerprints at key into root, if they are stored (older results have
// only the JSON).
func writeNPYFingerprints(root, key string, fetch Fetcher) error {
	points, sidecar := NPYKeys(key)
	for _, f := range []struct{ key, name string }{{points, FingerprintsNPY}, {sidecar, FingerprintsNPYJSON}} {
		data, err := fetch(f.key)
		if err != nil {
			return fmt.Errorf("output: fingerprints %s: %w", f.name, err)
		}
		if data == nil {
			continue
		}
		if err := os.WriteFile(filepath.Join(root, f.name), data, 0o644); err != nil {
			return fmt.Errorf("output: %w", err)
		}
	}
	return nil
}
