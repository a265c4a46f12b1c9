package clusterer_test

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/personcluster/personcluster/stages/clusterer/hac"
	"github.com/personcluster/personcluster/stages/output"
)

// checkNPYFingerprints: the .npy points and sidecar stored beside the JSON
// fingerprints at key read back as the same case: same parameters, same
// clusters as fromJSON.
func checkNPYFingerprints(t *testing.T, images jetstream.ObjectStore, key string, fromJSON *hac.Result) {
	t.Helper()
	dir := t.TempDir()
	pk, sk := output.NPYKeys(key)
	for k, name := range map[string]string{pk: output.FingerprintsNPY, sk: output.FingerprintsNPYJSON} {
		data, err := images.GetBytes(context.Background(), k)
		if err != nil {
			t.Fatalf("fingerprints %q: %v", k, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c, err := hac.ReadCaseFile(filepath.Join(dir, output.FingerprintsNPY))
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.Run()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(r.Clusters, fromJSON.Clusters) || r.Threshold != fromJSON.Threshold {
		t.Errorf("re-clustering fingerprints.npy: %d clusters at %v, the JSON gives %d at %v",
			len(r.Clusters), r.Threshold, len(fromJSON.Clusters), fromJSON.Threshold)
	}
}
