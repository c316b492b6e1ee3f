package redisstream_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/redisstream"
	"github.com/regengraph/regen/progress/sinktest"
)

// Slow readers far behind a stream that MaxLen trims, and behind the run's
// shared reader's window, get every event once, in order, from Redis and
// the archive.
func TestSlowReadersBehindTrimming(t *testing.T) {
	mem := progress.NewMemoryHistory()
	s, _ := newStream(t, redisstream.Options{History: mem, MaxLen: 10, HubBuffer: 8, PageSize: 7, BlockTime: 50 * time.Millisecond})
	run := sinktest.RunID(t)
	const n = 1500
	all := sinktest.Events(run, 1, n)
	for i := range all {
		all[i].Type = progress.Message
	}
	all[n-1].Type = progress.RunFinished
	ctx := context.Background()
	sink := progress.NewFanout(progress.NewArchive(mem), s)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for r := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			defer cancel()
			after := uint64(r * 100)
			next := after + 1
			errDone := errors.New("done")
			err := s.Tail(rctx, run, after, func(e progress.Event) error {
				if e.Seq != next {
					return fmt.Errorf("reader from %d: got seq %d, want %d", after, e.Seq, next)
				}
				next++
				if r%2 == 0 && e.Seq%50 == 0 {
					time.Sleep(20 * time.Millisecond)
				}
				if e.Type.Final() {
					return errDone
				}
				return nil
			})
			if !errors.Is(err, errDone) {
				errs <- fmt.Errorf("reader from %d: %w (next %d)", after, err, next)
			}
		}()
	}
	for i := 0; i < n; i += 5 {
		require.NoError(t, sink.Publish(ctx, all[i:i+5]...))
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	assert.Zero(t, s.Stats().Skipped)
}
