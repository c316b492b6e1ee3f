package executor

import (
	"context"
	"math"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A call takes the starts of all its nodes at once, or none: a call of 3
// nodes that finds 2 starts free waits until 3 are, and its stamps are
// then all the moment it starts.
func TestQuotaTakesACallsStartsAtOnce(t *testing.T) {
	t0 := time.Unix(1000, 0)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	q := newQuotas(map[string]Rate{"k": {Starts: 4, Per: 300 * time.Millisecond}})["k"]
	_, ok := q.take(ms(0), 2)
	require.True(t, ok)
	_, ok = q.take(ms(30), 1)
	require.True(t, ok)
	at, ok := q.take(ms(40), 3)
	require.False(t, ok, "3 starts with 1 free")
	assert.Equal(t, ms(300), at, "when the two starts at 0 leave the window")
	_, ok = q.take(ms(300), 3)
	require.True(t, ok)
	at, ok = q.take(ms(310), 1)
	require.False(t, ok)
	assert.Equal(t, ms(330), at, "the start at 30 leaves first")
	at, ok = q.take(ms(330), 2)
	require.False(t, ok)
	assert.Equal(t, ms(600), at, "the call's starts are stamped 300, all of them")
}

// The calls waiting for a quota take their turns in the order they came:
// a bulk call is not starved by single calls that need one start each.
func TestQuotaServesCallsInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newQuotas(map[string]Rate{"k": {Starts: 3, Per: time.Second}})["k"]
		ctx := context.Background()
		require.NoError(t, awaitErr(q, ctx, 1)) // at 0
		time.Sleep(500 * time.Millisecond)
		require.NoError(t, awaitErr(q, ctx, 2)) // at 0.5s: full
		var mu sync.Mutex
		var order []string
		var wg sync.WaitGroup
		wg.Go(func() {
			assert.NoError(t, awaitErr(q, ctx, 3))
			mu.Lock()
			order = append(order, "bulk")
			mu.Unlock()
		})
		synctest.Wait()
		for range 3 {
			wg.Go(func() {
				assert.NoError(t, awaitErr(q, ctx, 1))
				mu.Lock()
				order = append(order, "single")
				mu.Unlock()
			})
			synctest.Wait()
		}
		wg.Wait()
		assert.Equal(t, []string{"bulk", "single", "single", "single"}, order)
	})
}

// A call that gives up its wait (its run cancelled) takes nothing and
// hands its turn on.
func TestQuotaWaitEndsWithContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newQuotas(map[string]Rate{"k": {Starts: 1, Per: time.Hour}})["k"]
		require.NoError(t, awaitErr(q, context.Background(), 1))
		ctx, cancel := context.WithCancel(context.Background())
		errs := make(chan error, 1)
		go func() { errs <- awaitErr(q, ctx, 1) }()
		synctest.Wait()
		cancel()
		require.ErrorIs(t, <-errs, context.Canceled)
		assert.Empty(t, q.queue)
		time.Sleep(time.Hour)
		require.NoError(t, awaitErr(q, context.Background(), 1), "the start was not taken")
	})
}

// A quota kept the last rate.Starts starts, however long ago they were:
// with a large Starts (a quota of a million an hour), a long-lived
// executor held every start it ever made, up to Starts of them. It now
// keeps the starts still in the window alone.
func TestQuotaKeepsOnlyTheStartsInItsWindow(t *testing.T) {
	q := newQuotas(map[string]Rate{"k": {Starts: math.MaxInt, Per: time.Second}})["k"]
	t0 := time.Unix(1000, 0)
	for i := range 10000 {
		_, ok := q.take(t0.Add(time.Duration(i)*500*time.Millisecond), 3)
		require.True(t, ok)
	}
	assert.LessOrEqual(t, len(q.starts), 6, "the starts of the last second")
	assert.LessOrEqual(t, cap(q.starts), 64)
}

// The window rule holds however the starts came, the window not yet
// full or full, calls of one and of several: checked against every
// window of the starts taken.
func TestQuotaWindowRule(t *testing.T) {
	const per = 100 * time.Millisecond
	t0 := time.Unix(1000, 0)
	for _, starts := range []int{1, 2, 3, 5} {
		q := newQuotas(map[string]Rate{"k": {Starts: starts, Per: per}})["k"]
		var taken []time.Time
		now := t0
		for i := range 300 {
			n := 1 + i*7%starts
			at, ok := q.take(now, n)
			if !ok {
				require.True(t, at.After(now), "starts %d: retry at %v, now %v", starts, at, now)
				now = at
				_, ok = q.take(now, n)
				require.True(t, ok, "starts %d: at the time given", starts)
			}
			for range n {
				taken = append(taken, now)
			}
			now = now.Add(time.Duration(i*13%40) * time.Millisecond)
		}
		for i := range taken {
			in := 0
			for j := i; j < len(taken) && taken[j].Sub(taken[i]) < per; j++ {
				in++
			}
			require.LessOrEqual(t, in, starts, "starts %d: window from %v", starts, taken[i].Sub(t0))
		}
	}
}

// awaitErr is q.await's error alone.
func awaitErr(q *quota, ctx context.Context, n int) error {
	_, err := q.await(ctx, n)
	return err
}

// Starts given back (their call was never made) free the quota at once:
// the call waiting for them starts then, not when they would have left
// the window; the window rule still holds for the starts kept.
func TestQuotaGiveBackWakesTheNextCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newQuotas(map[string]Rate{"k": {Starts: 3, Per: time.Hour}})["k"]
		ctx := context.Background()
		_, err := q.await(ctx, 1) // kept
		require.NoError(t, err)
		time.Sleep(time.Minute)
		unused, err := q.await(ctx, 2)
		require.NoError(t, err)
		t0 := time.Now()
		done := make(chan taken)
		go func() {
			tk, err := q.await(ctx, 2)
			assert.NoError(t, err)
			done <- tk
		}()
		synctest.Wait()
		unused.giveBack()
		tk := <-done
		assert.Equal(t, t0, tk.at, "the call started when the starts were given back")
		assert.Len(t, q.starts, 3, "the start kept and the call's two")
		at, ok := q.take(time.Now(), 1)
		require.False(t, ok, "the window is full")
		assert.Equal(t, t0.Add(-time.Minute).Add(time.Hour), at, "the kept start leaves first")
		tk.giveBack()
		tk.giveBack() // a second time gives nothing more back
		assert.Len(t, q.starts, 1, "the kept start alone")
	})
}
