package clusterer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/personcluster/personcluster/messages"
	"github.com/personcluster/personcluster/stages/clusterer/hac/npy"
	"github.com/personcluster/personcluster/stages/output"
)

// npySidecar is the fingerprint file without its points, which are in the
// .npy beside it; hac.ReadCaseFile reads the pair as a case.
type npySidecar struct {
	FingerprintFile
	Points [][]float64 `json:"points,omitempty"` // shadows FingerprintFile.Points: always nil here
}

// EncodeFingerprintsNPY is the .npy form of a result's fingerprints: the
// points as an n × d float64 array (exact, np.load reads it) and the rest of
// FingerprintFile as a JSON sidecar.
func EncodeFingerprintsNPY(res *messages.ClusterResult, points [][]float64, members []messages.Member, metric string) (pts, sidecar []byte, err error) {
	var pb bytes.Buffer
	if err := npy.EncodeRows(&pb, points, false); err != nil {
		return nil, nil, fmt.Errorf("clusterer: encoding fingerprints: %w", err)
	}
	f := npySidecar{FingerprintFile: FingerprintFile{Source: res.Source, Method: res.Params.Method, Metric: metric, Sim: res.Params.Sim,
		MinCSize: res.Params.MinCSize, FaceModel: res.FaceModel, ClothModel: res.ClothModel, FaceWeight: res.Params.FaceWeight,
		ClothWeight: res.Params.ClothWeight, Threshold: res.Threshold, CannotLink: res.Params.CannotLink, Cut: string(res.Params.Cut), Members: members}}
	sb, err := json.Marshal(f)
	if err != nil {
		return nil, nil, fmt.Errorf("clusterer: encoding fingerprints: %w", err)
	}
	return pb.Bytes(), sb, nil
}

// storeFingerprintsNPY puts the .npy points and their sidecar beside the
// JSON fingerprints (keys from output.NPYKeys).
func (s *Stage) storeFingerprintsNPY(ctx context.Context, res *messages.ClusterResult, points [][]float64, members []messages.Member) error {
	pts, side, err := EncodeFingerprintsNPY(res, points, members, s.cfg.Metric)
	if err != nil {
		return err
	}
	pk, sk := output.NPYKeys(res.Fingerprints)
	for _, o := range []struct {
		key  string
		data []byte
	}{{pk, pts}, {sk, side}} {
		if _, err := s.images.PutBytes(ctx, o.key, o.data); err != nil {
			return fmt.Errorf("clusterer: storing %s: %w", o.key, err)
		}
	}
	return nil
}
