package redisstream_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/redisstream"
	"github.com/regengraph/regen/progress/sinktest"
)

// Without a History, readers that join the run's shared reader's window
// (small here, so that its base moves) or read Redis first, coming and
// going at every position while events flow, get every event once, in
// order.
func TestChurnWithoutHistory(t *testing.T) {
	s, _ := newStream(t, redisstream.Options{HubBuffer: 8, PageSize: 5, BlockTime: 50 * time.Millisecond})
	run := sinktest.RunID(t)
	const n = 200
	all := sinktest.Events(run, 1, n)
	for i := range all {
		all[i].Type = progress.Message
	}
	all[n-1].Type = progress.RunFinished
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(5, 6))
	errs := make(chan error, 256)
	var readers sync.WaitGroup
	for i := 0; i < n; {
		k := min(1+rng.IntN(6), n-i)
		require.NoError(t, s.Publish(ctx, all[i:i+k]...))
		i += k
		for range rng.IntN(3) {
			after := uint64(rng.IntN(i + 3))
			slow := rng.IntN(3) == 0
			readers.Add(1)
			go func() {
				defer readers.Done()
				rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				defer cancel()
				next := after + 1
				errDone := errors.New("done")
				err := s.Tail(rctx, run, after, func(e progress.Event) error {
					if e.Seq != next {
						return fmt.Errorf("got seq %d, want %d", e.Seq, next)
					}
					next++
					if slow {
						time.Sleep(time.Millisecond)
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
		time.Sleep(time.Duration(rng.IntN(5)) * time.Millisecond)
	}
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	assert.Zero(t, s.Stats().Skipped)
}
