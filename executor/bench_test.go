package executor_test

import (
	"context"
	"fmt"
	"testing"

	"golang.org/x/sync/errgroup"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
)

// noop is the cheapest generator: a fixed output with a fixed hash. The
// executor's asset store copies the data, so it can be shared.
var (
	noopData = []byte("x")
	noop     = executor.GeneratorFunc(func(context.Context, executor.Request) (executor.Asset, error) {
		return executor.Asset{Data: noopData, Hash: "h", Length: graph.SegmentLength}, nil
	})
)

// BenchmarkOverhead runs no-op generators over the 360-segment lecture
// (1,083 nodes) on the in-memory stores, beside an errgroup with
// SetLimit running the same number of no-op tasks at the executor's
// parallelism (4+5+3 batch slots and 3 singles).
func BenchmarkOverhead(b *testing.B) {
	g, err := graph.Build(graph.Lecture(), 3600)
	if err != nil {
		b.Fatal(err)
	}
	reg := executor.Registry{}
	for i := range g.Kinds() {
		reg[g.KindName(i)] = noop
	}
	b.Run("executor", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			e, err := executor.New(executor.Options{Generators: reg})
			if err != nil {
				b.Fatal(err)
			}
			i++
			rep, err := e.Run(context.Background(), executor.RunRequest{GraphKey: fmt.Sprint("l", i), Graph: g})
			if err != nil || len(rep.Generated) != g.Len() {
				b.Fatalf("run: %v", err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(g.Len()), "ns/node")
	})
	b.Run("errgroup", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var eg errgroup.Group
			eg.SetLimit(15)
			for range g.Len() {
				eg.Go(func() error { return nil })
			}
			_ = eg.Wait()
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(g.Len()), "ns/node")
	})
}
