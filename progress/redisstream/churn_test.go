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

// Readers of one run come and go, at every position, while events flow:
// Redis misses some batches (Publish failed, the Buffered's fallback took
// them) that the History, a moment behind Redis, gets. Each reader gets
// every event after its start once, in order, and none is skipped.
func TestChurnAcrossHeldGaps(t *testing.T) {
	mem := progress.NewMemoryHistory()
	s, _ := newStream(t, redisstream.Options{History: mem, HistoryPoll: 5 * time.Second, RetryDelay: 5 * time.Millisecond, BlockTime: 50 * time.Millisecond})
	run := sinktest.RunID(t)
	const n = 240
	all := recent(churnEvents(run, n))
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	c := newChurn(t, s, run, 30*time.Second)
	var archived sync.WaitGroup
	for i := 0; i < n; {
		k := min(1+rng.IntN(4), n-i)
		batch := all[i : i+k]
		if rng.IntN(6) != 0 || batch[k-1].Type.Final() {
			require.NoError(t, s.Publish(ctx, batch...))
		}
		archived.Add(1)
		delay := time.Duration(10+rng.IntN(30)) * time.Millisecond
		go func() {
			defer archived.Done()
			time.Sleep(delay)
			_ = mem.Append(ctx, batch...)
		}()
		i += k
		for range rng.IntN(3) {
			c.readSome(rng, i, n)
		}
		time.Sleep(time.Duration(rng.IntN(8)) * time.Millisecond)
	}
	archived.Wait()
	c.wait()
}

// churnEvents returns n message events of run, the last one its final
// run.finished.
func churnEvents(run string, n uint64) []progress.Event {
	all := sinktest.Events(run, 1, n)
	for i := range all {
		all[i].Type = progress.Message
	}
	all[n-1].Type = progress.RunFinished
	return all
}

// churn is the readers of a churn test: each tails run on s from its
// start, and checks that it gets every event after it once, in order,
// until it leaves or gets the final event.
type churn struct {
	t       *testing.T
	s       *redisstream.Stream
	run     string
	limit   time.Duration // each reader's
	errs    chan error
	readers sync.WaitGroup
}

func newChurn(t *testing.T, s *redisstream.Stream, run string, limit time.Duration) *churn {
	return &churn{t: t, s: s, run: run, limit: limit, errs: make(chan error, 1024)}
}

// read starts a reader from after that leaves once it has delivered
// leaveAt (or the final event), sleeping a millisecond an event if slow.
func (c *churn) read(after, leaveAt uint64, slow bool) {
	c.readers.Add(1)
	go func() {
		defer c.readers.Done()
		rctx, cancel := context.WithTimeout(context.Background(), c.limit)
		defer cancel()
		next := after + 1
		errDone := errors.New("done")
		err := c.s.Tail(rctx, c.run, after, func(e progress.Event) error {
			if e.Seq != next {
				return fmt.Errorf("got seq %d, want %d", e.Seq, next)
			}
			next++
			if slow {
				time.Sleep(time.Millisecond)
			}
			if e.Seq == leaveAt || e.Type.Final() {
				return errDone
			}
			return nil
		})
		if !errors.Is(err, errDone) {
			c.errs <- fmt.Errorf("reader from %d (leaving at %d): %w (next %d)", after, leaveAt, err, next)
		}
	}()
}

// readSome starts a reader from a random seq up to upTo, that leaves
// at a random later seq half of the time, of a run of n events.
func (c *churn) readSome(rng *rand.Rand, upTo, n int) {
	after := uint64(rng.IntN(upTo + 1))
	leave := uint64(n)
	if rng.IntN(2) == 0 {
		leave = after + 1 + uint64(rng.IntN(n-int(after)))
	}
	c.read(after, leave, false)
}

// wait waits for the readers, and fails the test with their errors and
// if the Stream skipped any event.
func (c *churn) wait() {
	c.readers.Wait()
	close(c.errs)
	for err := range c.errs {
		c.t.Error(err)
	}
	assert.Zero(c.t, c.s.Stats().Skipped)
}
