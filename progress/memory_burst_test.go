package progress_test

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/sinktest"
)

// Readers of a run whose clients are slow, here blocked in their
// callback at the start of a burst of events, must not each hold a copy
// of a large part of the burst meanwhile: memory per reader stays small,
// whatever the size of the burst.
func TestMemoryReadersOfABurstHoldLittleEach(t *testing.T) {
	const readers, burst = 100, 500
	m := progress.NewMemory(progress.MemoryOptions{})
	ctx, run := context.Background(), sinktest.RunID(t)
	all := sinktest.Events(run, 1, burst+1)
	require.NoError(t, m.Publish(ctx, all[0]))
	hold1, hold2 := make(chan struct{}), make(chan struct{})
	var at1, at2 sync.WaitGroup
	at1.Add(readers)
	at2.Add(readers)
	errEnd := errors.New("end")
	done := make(chan error, readers)
	for range readers {
		go func() {
			done <- m.Tail(ctx, run, 0, func(e progress.Event) error {
				switch e.Seq {
				case 1: // before the burst
					at1.Done()
					<-hold1
				case 2: // a slow client, at the start of the burst
					at2.Done()
					<-hold2
				case burst + 1:
					return errEnd
				}
				return nil
			})
		}()
	}
	at1.Wait()
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	require.NoError(t, m.Publish(ctx, all[1:]...))
	close(hold1)
	at2.Wait()
	perReader := float64(heap()-before) / readers
	t.Logf("%d readers held at the start of a burst of %d events: %.0f bytes each, the ring included", readers, burst, perReader)
	close(hold2)
	for i := range readers {
		select {
		case err := <-done:
			require.ErrorIs(t, err, errEnd)
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of %d readers did not receive the whole burst", readers-i, readers)
		}
	}
	assert.Less(t, perReader, 16e3, "bytes held per reader of a burst of %d events", burst)
}
