package encoder

// BareRun runs the encoder's two models, landmarks then descriptors, on n faces of zeros with
// the batches the stage uses (at most batch faces per inference, or the models' fixed batch of
// 1): the bare inference the stage wraps, for benchmarks.
func (e *ONNXEncoder) BareRun(n, batch int) error {
	lmBatch, ftBatch := min(e.lmBatch, batch), min(e.ftBatch, batch)
	lm := make([]float32, n*landmarkSide*landmarkSide)
	if _, err := RunChunks(e.landmark, []int64{1, landmarkSide, landmarkSide}, max(1, lmBatch), lm, n, landmarkLen); err != nil {
		return err
	}
	ft := make([]float32, n*3*alignedSide*alignedSide)
	_, err := RunChunks(e.feature, []int64{3, alignedSide, alignedSide}, max(1, ftBatch), ft, n, featureLen)
	return err
}
