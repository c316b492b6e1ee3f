package progress_test

import (
	"context"
	"testing"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/sinktest"
)

// BenchmarkBufferedPublish measures Buffered.Publish, the executor's hot
// path: one event per call, to a downstream sink that takes everything at
// once, from one goroutine and from several.
func BenchmarkBufferedPublish(b *testing.B) {
	nop := progress.SinkFunc(func(context.Context, ...progress.Event) error { return nil })
	ctx := context.Background()
	b.Run("serial", func(b *testing.B) {
		buf := progress.NewBuffered(nop, progress.BufferedOptions{Logger: quiet()})
		defer buf.Close(ctx)
		events := sinktest.Events("r", 1, 1024)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			_ = buf.Publish(ctx, events[i%len(events)])
		}
	})
	b.Run("parallel", func(b *testing.B) {
		buf := progress.NewBuffered(nop, progress.BufferedOptions{Logger: quiet()})
		defer buf.Close(ctx)
		events := sinktest.Events("r", 1, 1024)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for i := 0; pb.Next(); i++ {
				_ = buf.Publish(ctx, events[i%len(events)])
			}
		})
	})
}
