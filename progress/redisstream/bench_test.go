package redisstream_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/internal/testenv"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/redisstream"
	"github.com/regengraph/regen/progress/sinktest"
)

// BenchmarkPublish measures publish throughput to the real local Redis:
// one XADD round trip per event, pipelined batches, and a Buffered sink
// fed one event per call (the executor's pattern), which batches what
// accumulates during each round trip.
func BenchmarkPublish(b *testing.B) {
	for _, bc := range []struct {
		name  string
		batch int
	}{{"single", 1}, {"batch=64", 64}, {"batch=256", 256}} {
		b.Run(bc.name, func(b *testing.B) {
			s, _ := newBenchStream(b)
			run := sinktest.RunID(b)
			events := sinktest.Events(run, 1, uint64(b.N))
			ctx := context.Background()
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < len(events); i += bc.batch {
				if err := s.Publish(ctx, events[i:min(i+bc.batch, len(events))]...); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
		})
	}
	b.Run("buffered", func(b *testing.B) {
		s, _ := newBenchStream(b)
		buf := progress.NewBuffered(s, progress.BufferedOptions{Logger: quiet(), QueueSize: 1 << 20})
		run := sinktest.RunID(b)
		events := sinktest.Events(run, 1, uint64(b.N))
		ctx := context.Background()
		b.ResetTimer()
		start := time.Now()
		for _, e := range events {
			_ = buf.Publish(ctx, e)
		}
		require.NoError(b, buf.Close(ctx))
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
		b.StopTimer()
		st := buf.Stats()
		if st.Published != uint64(b.N) {
			b.Fatalf("published %d of %d (stats %+v)", st.Published, b.N, st)
		}
		b.ReportMetric(float64(b.N)/float64(st.Batches), "events/batch")
	})
}

func newBenchStream(b *testing.B) (*redisstream.Stream, string) {
	b.Helper()
	r := testenv.NewRedis(b)
	s, err := redisstream.New(r.Client, redisstream.Options{KeyTemplate: r.Prefix + redisstream.RunIDPlaceholder, Logger: quiet()})
	require.NoError(b, err)
	b.Cleanup(func() { s.Close() })
	return s, r.Prefix
}
