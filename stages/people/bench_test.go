package people_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/personcluster/personcluster/stages/people"
	"github.com/personcluster/personcluster/stages/stage"
	"github.com/personcluster/personcluster/stages/stage/stagetest"
)

// BenchmarkLinkWindow links a window of 15 clusters of 30 faces (512-d, MobileFaceNet's size)
// against a gallery of 500 people with 16 exemplars each: the clusterer's cost per result.
func BenchmarkLinkWindow(b *testing.B) {
	env := stagetest.Start(b, stage.Topology{Memory: true})
	g, err := people.Open(context.Background(), env.JS)
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 1))
	face := func(base []float32) []float32 {
		v := make([]float32, len(base))
		for i := range v {
			v[i] = base[i] + float32(r.NormFloat64()*0.02)
		}
		return v
	}
	var cast [][]float32
	for range 500 {
		v := make([]float32, 512)
		for i := range v {
			v[i] = float32(r.NormFloat64())
		}
		cast = append(cast, v)
	}
	cluster := func(who int) people.Cluster {
		var c people.Cluster
		for k := range 30 {
			c.Faces = append(c.Faces, people.Face{Vector: face(cast[who]), Frame: int64(k)})
		}
		return c
	}
	for w := 0; w < 500; w += 20 {
		win := people.Window{ID: fmt.Sprintf("fill%d", w), Source: "fill", Model: "bench-512", Cut: 1.2, AtMillis: time.Now().UnixMilli()}
		for who := w; who < w+20; who++ {
			win.Clusters = append(win.Clusters, cluster(who))
		}
		if _, err := g.Link(context.Background(), win); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := range b.N {
		win := people.Window{ID: fmt.Sprintf("w%d", i), Source: "bench", Model: "bench-512", Cut: 1.2, AtMillis: time.Now().UnixMilli()}
		for k := range 15 {
			win.Clusters = append(win.Clusters, cluster((i*15+k)%500))
		}
		if _, err := g.Link(context.Background(), win); err != nil {
			b.Fatal(err)
		}
	}
}
