package redisstream_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/internal/testenv"
	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/redisstream"
	"github.com/regengraph/regen/progress/sinktest"
)

// An entry that another writer added to a run's stream with an ID of its
// own (XADD key * ...), not of the form 0-<seq>, is corrupt like any
// entry that is not an event: the run's shared reader skips it once and
// goes on blocking in XREAD, rather than read it again at once, forever.
func TestSharedReaderDoesNotSpinOnAForeignEntryID(t *testing.T) {
	s, r := newStream(t, redisstream.Options{BlockTime: 100 * time.Millisecond})
	ctx, run := context.Background(), sinktest.RunID(t)
	all := sinktest.Events(run, 1, 3)
	require.NoError(t, s.Publish(ctx, all...))
	tl := sinktest.StartTail(t, s, run, 0)
	tl.Expect(t, sinktest.Span(1, 3))
	require.Eventually(t, func() bool { return s.Stats().Runs == 1 }, 10*time.Second, time.Millisecond)

	require.NoError(t, r.Client.XAdd(ctx, &redis.XAddArgs{Stream: s.Key(run), ID: "*", Values: []any{"other", "writer"}}).Err())
	cmds := testenv.CountCommands(r.Client)
	time.Sleep(time.Second)
	// One XREAD a BlockTime, give or take: 10 in a second.
	assert.LessOrEqual(t, cmds.Count("xread"), 30, "XREADs in 1s with a BlockTime of 100ms")
	assert.LessOrEqual(t, s.Stats().Corrupt, uint64(3), "the foreign entry is counted once per read of it")
	tl.Stop(t, nil)
}

// A page of XRANGE full of such entries does not hold Replay, nor a
// Tail's replay, at the same place forever: no event of the run can
// follow an entry whose ID is above every 0-<seq>.
func TestReplayEndsAtForeignEntries(t *testing.T) {
	h := progress.NewMemoryHistory()
	s, r := newStream(t, redisstream.Options{PageSize: 2, History: h})
	ctx, run := context.Background(), sinktest.RunID(t)
	all := sinktest.Events(run, 1, 5)
	require.NoError(t, h.Append(ctx, all...))
	require.NoError(t, s.Publish(ctx, all[:3]...))
	for range 3 {
		require.NoError(t, r.Client.XAdd(ctx, &redis.XAddArgs{Stream: s.Key(run), ID: "*", Values: []any{"other", "writer"}}).Err())
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var got []progress.Event
	err := s.Replay(rctx, run, 0, func(e progress.Event) error {
		got = append(got, e)
		return nil
	})
	require.NoError(t, err, "Replay")
	assert.Empty(t, sinktest.Diff(all, got), "4 and 5 come from the History")

	tl := sinktest.StartTail(t, s, run, 0)
	tl.Expect(t, sinktest.Span(1, 5))
	tl.Stop(t, nil)
}

// Redis refuses every 0-<seq> after such an entry with the error of a
// duplicate; Publish must not count the run's new events as duplicates
// and return nil, which hides their loss from a Buffered sink's fallback
// and from its caller: it fails, naming the entry.
func TestPublishAfterAForeignEntryFails(t *testing.T) {
	s, r := newStream(t, redisstream.Options{})
	ctx, run := context.Background(), sinktest.RunID(t)
	all := sinktest.Events(run, 1, 5)
	require.NoError(t, s.Publish(ctx, all[:3]...))
	require.NoError(t, r.Client.XAdd(ctx, &redis.XAddArgs{Stream: s.Key(run), ID: "*", Values: []any{"other", "writer"}}).Err())
	err := s.Publish(ctx, all[3:]...)
	require.Error(t, err, "events 4 and 5 were not written")
	assert.ErrorContains(t, err, "2 of 2 events not written")
	st := s.Stats()
	assert.Equal(t, uint64(0), st.Duplicates)
	assert.Equal(t, uint64(2), st.Dropped)
	// A true duplicate is still one, without error.
	require.NoError(t, s.Publish(ctx, all[1]))
	assert.Equal(t, uint64(1), s.Stats().Duplicates)
}
