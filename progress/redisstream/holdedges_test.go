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

// Readers that connect during a hold at each position around the gap
// (6 and 7 missing; below it, at its last event before, at its last
// event, right after it, past it) get every event after their position
// once, in order, none skipped, once the History has the gap's events.
func TestReadersAroundAHeldGap(t *testing.T) {
	for _, after := range []uint64{4, 5, 7, 8, 9} {
		t.Run(fmt.Sprint(after), func(t *testing.T) {
			x := holdingRecent(t)
			r := sinktest.StartTail(t, x.s, x.run, after)
			if after >= 7 {
				r.Expect(t, sinktest.Span(after+1, 10))
			} else {
				r.Expect(t, sinktest.Span(after+1, 5))
			}
			require.NoError(t, x.mem.Append(context.Background(), x.all[5:]...))
			if after < 7 {
				r.Expect(t, sinktest.Span(6, 10))
			}
			x.tl.Expect(t, sinktest.Span(6, 10))
			r.Stop(t, context.Canceled)
			x.tl.Stop(t, context.Canceled)
			assert.Zero(t, x.s.Stats().Skipped)
		})
	}
}

// Close during a hold stops the run's shared reader, and the reader
// waiting at the gap returns.
func TestCloseDuringAHold(t *testing.T) {
	x := holdingRecent(t)
	require.NoError(t, x.s.Close())
	err := x.tl.Stop(t, context.Canceled)
	assert.True(t, errors.Is(err, redisstream.ErrClosed) || errors.Is(err, context.Canceled), "%v", err)
	assert.Zero(t, x.s.Stats().Runs)
}

// A hold whose entries after the gap end with the run's final event ends
// after HistoryPoll once its reader has left: the run's shared reader
// stops, and the gap counts as skipped.
func TestHoldEndsAfterTheFinalEvent(t *testing.T) {
	mem := progress.NewMemoryHistory()
	s, _ := newStream(t, redisstream.Options{History: mem, HistoryPoll: 300 * time.Millisecond, RetryDelay: 20 * time.Millisecond})
	ctx := context.Background()
	run := sinktest.RunID(t)
	all := recent(sinktest.Events(run, 1, 10))
	all[9].Type = progress.RunFinished
	require.NoError(t, progress.NewFanout(progress.NewArchive(mem), s).Publish(ctx, all[:5]...))
	tl := sinktest.StartTail(t, s, run, 0)
	tl.Expect(t, sinktest.Span(1, 5))
	require.Eventually(t, func() bool { return s.Stats().Runs == 1 }, 10*time.Second, time.Millisecond)
	require.NoError(t, s.Publish(ctx, all[7:]...))
	tl.Expect(t, sinktest.Span(8, 10))
	tl.Stop(t, context.Canceled)
	require.Eventually(t, func() bool { return s.Stats().Runs == 0 }, 10*time.Second, 10*time.Millisecond)
	st := s.Stats()
	assert.Equal(t, uint64(2), st.Skipped)
	assert.Zero(t, st.Readers)
}

// Fifty readers join at every position and leave during a hold, while
// others stay: each gets what follows its position in order, with no
// duplicate and no gap, and those that stay get the gap's events once
// the History has them.
func TestManyReadersDuringAHold(t *testing.T) {
	x := holdingRecent(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var tls []*sinktest.Tailer
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			after := uint64(i % 11)
			ctx, cancel := context.WithCancel(context.Background())
			var got []uint64
			done := make(chan error, 1)
			go func() {
				done <- x.s.Tail(ctx, x.run, after, func(e progress.Event) error { got = append(got, e.Seq); return nil })
			}()
			time.Sleep(time.Duration(i%7) * 10 * time.Millisecond)
			cancel()
			<-done
			// whatever it got is in order, with no duplicate and no gap
			for j := range got {
				want := after + uint64(j) + 1
				if got[j] != want {
					t.Errorf("reader after %d got %v", after, got)
					break
				}
			}
		}()
		if i%2 == 0 {
			tl := sinktest.StartTail(t, x.s, x.run, uint64(i%11))
			mu.Lock()
			tls = append(tls, tl)
			mu.Unlock()
		}
	}
	wg.Wait()
	require.NoError(t, x.mem.Append(context.Background(), x.all[5:]...))
	for i, tl := range tls {
		a := uint64((2 * i) % 11)
		if a < 10 {
			tl.Expect(t, sinktest.Span(a+1, 10))
		}
		tl.Stop(t, context.Canceled)
	}
	x.tl.Expect(t, sinktest.Span(6, 10))
	x.tl.Stop(t, context.Canceled)
	assert.Zero(t, x.s.Stats().Skipped)
	assert.Zero(t, x.s.Stats().Readers)
}
