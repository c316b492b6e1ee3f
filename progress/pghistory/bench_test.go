package pghistory_test

import (
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/pghistory"
	"github.com/regengraph/regen/progress/sinktest"
)

// BenchmarkAppend appends batches of 64 new events of one run, as a
// progress.Buffered in front of an Archive would: one round trip each.
// It reports ns/event.
func BenchmarkAppend(b *testing.B) {
	for _, mode := range modes {
		b.Run(mode.String(), func(b *testing.B) {
			h, _ := newHistory(b, mode, pghistory.Options{}, nil)
			ctx := b.Context()
			run := sinktest.RunID(b)
			const batch = 64
			var seq uint64
			events := make([]progress.Event, 0, batch)
			n := 0
			for b.Loop() {
				b.StopTimer()
				events = append(events[:0], sinktest.Events(run, seq+1, seq+batch)...)
				seq += batch
				b.StartTimer()
				if err := h.Append(ctx, events...); err != nil {
					b.Fatal(err)
				}
				n += batch
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/event")
		})
	}
}

// BenchmarkReplay replays a 1,000-event run from its start, in pages of
// the default size. It reports ns/event.
func BenchmarkReplay(b *testing.B) {
	for _, mode := range modes {
		for _, page := range []int{0, 100} {
			b.Run(fmt.Sprintf("%v/page=%d", mode, page), func(b *testing.B) {
				benchReplay(b, mode, page)
			})
		}
	}
}

func benchReplay(b *testing.B, mode pgx.QueryExecMode, page int) {
	h, _ := newHistory(b, mode, pghistory.Options{PageSize: page}, nil)
	ctx := b.Context()
	run := sinktest.RunID(b)
	const total = 1000
	if err := h.Append(ctx, sinktest.Events(run, 1, total)...); err != nil {
		b.Fatal(err)
	}
	n := 0
	for b.Loop() {
		got := 0
		if err := h.Replay(ctx, run, 0, func(progress.Event) error { got++; return nil }); err != nil {
			b.Fatal(err)
		}
		if got != total {
			b.Fatalf("replayed %d events, want %d", got, total)
		}
		n += got
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/event")
}
