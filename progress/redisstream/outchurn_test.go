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
	"github.com/regengraph/regen/progress/sinktest"
)

// Readers of one run come and go, at every position, while Redis is
// killed and restarted without persistence mid-run: each gets every
// event after its start once, in order, from Redis or the archive.
func TestChurnAcrossARedisRestart(t *testing.T) {
	p := newPrivateStream(t)
	archive := progress.NewBuffered(progress.NewArchive(p.history), progress.BufferedOptions{Logger: quiet()})
	t.Cleanup(func() { archive.Close(context.Background()) })
	p.sink = progress.NewFanout(archive, p.buffered)
	run := sinktest.RunID(t)
	const n = 200
	all := sinktest.Events(run, 1, n)
	for i := range all {
		all[i].Type = progress.Message
	}
	all[n-1].Type = progress.RunFinished
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 4))
	errs := make(chan error, 256)
	var readers sync.WaitGroup
	startReader := func(after, leaveAt uint64) {
		readers.Add(1)
		go func() {
			defer readers.Done()
			rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			defer cancel()
			next := after + 1
			errDone := errors.New("done")
			err := p.stream.Tail(rctx, run, after, func(e progress.Event) error {
				if e.Seq != next {
					return fmt.Errorf("got seq %d, want %d", e.Seq, next)
				}
				next++
				if e.Seq == leaveAt || e.Type.Final() {
					return errDone
				}
				return nil
			})
			if !errors.Is(err, errDone) {
				errs <- fmt.Errorf("reader from %d (leaving at %d): %w (next %d)", after, leaveAt, err, next)
			}
		}()
	}
	for i := 0; i < n; i++ {
		switch i {
		case 60:
			p.server.Kill()
		case 120:
			p.server.Restart()
		}
		require.NoError(t, p.sink.Publish(ctx, all[i]))
		if rng.IntN(4) == 0 {
			after := uint64(rng.IntN(i + 2))
			leave := uint64(n)
			if rng.IntN(2) == 0 {
				leave = after + 1 + uint64(rng.IntN(n-int(after)))
			}
			startReader(after, leave)
		}
		time.Sleep(time.Duration(rng.IntN(10)) * time.Millisecond)
	}
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	assert.Zero(t, p.stream.Stats().Skipped)
}
