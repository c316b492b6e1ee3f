package redisstream_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/internal/testenv"
	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/redisstream"
	"github.com/regengraph/regen/progress/sinktest"
)

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// newStream returns a Stream on the shared Redis under the test's own key
// prefix, closed (and its keys deleted) when the test ends.
func newStream(t *testing.T, opts redisstream.Options) (*redisstream.Stream, *testenv.Redis) {
	t.Helper()
	r := testenv.NewRedis(t)
	if opts.BlockTime == 0 {
		opts.BlockTime = 100 * time.Millisecond
	}
	return streamOn(t, r, r.Client, opts), r
}

// streamOn returns a Stream through client (a user of the test's own, say)
// under r's key prefix, unless opts has a KeyTemplate, with a quiet
// Logger unless opts has one, closed when the test ends.
func streamOn(t *testing.T, r *testenv.Redis, client redis.UniversalClient, opts redisstream.Options) *redisstream.Stream {
	t.Helper()
	if opts.KeyTemplate == "" {
		opts.KeyTemplate = r.Prefix + redisstream.RunIDPlaceholder
	}
	if opts.Logger == nil {
		opts.Logger = quiet()
	}
	s, err := redisstream.New(client, opts)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	sinktest.Run(t, func(t *testing.T) (progress.Sink, progress.Source) {
		s, _ := newStream(t, redisstream.Options{})
		return s, s
	})
}

// A stream trimmed far below what the kit publishes, with the archive
// beside it, and a hub window small enough that readers fall behind it.
func TestConformanceTrimmedWithHistory(t *testing.T) {
	sinktest.Run(t, func(t *testing.T) (progress.Sink, progress.Source) {
		h := progress.NewMemoryHistory()
		s, _ := newStream(t, redisstream.Options{MaxLen: 200, History: h, PageSize: 50, HubBuffer: 64})
		return progress.NewFanout(progress.NewArchive(h), s), s
	})
}

func TestConformanceHistory(t *testing.T) {
	t.Run("default", func(t *testing.T) {
		sinktest.RunHistory(t, func(t *testing.T) (progress.Sink, progress.Source, progress.History) {
			h := progress.NewMemoryHistory()
			s, _ := newStream(t, redisstream.Options{History: h})
			return s, s, h
		})
	})
	// Trimmed, archived by the sink, with a hub window smaller than a run.
	t.Run("trimmed", func(t *testing.T) {
		sinktest.RunHistory(t, func(t *testing.T) (progress.Sink, progress.Source, progress.History) {
			h := progress.NewMemoryHistory()
			s, _ := newStream(t, redisstream.Options{MaxLen: 50, History: h, PageSize: 20, HubBuffer: 32})
			return progress.NewFanout(progress.NewArchive(h), s), s, h
		})
	})
	// A History without a LastEvent method, as a host's may be.
	t.Run("replay-only History", func(t *testing.T) {
		sinktest.RunHistory(t, func(t *testing.T) (progress.Sink, progress.Source, progress.History) {
			h := &replayOnly{h: progress.NewMemoryHistory()}
			s, _ := newStream(t, redisstream.Options{History: h})
			return s, s, h
		})
	})
}

func TestNewRejectsBadOptions(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer client.Close()
	tests := []struct {
		name string
		opts redisstream.Options
		want string
	}{
		{"no placeholder", redisstream.Options{KeyTemplate: "lecture"}, `key template "lecture" must contain {runId} exactly once`},
		{"two placeholders", redisstream.Options{KeyTemplate: "{runId}:{runId}"}, "exactly once"},
		{"negative MaxLen", redisstream.Options{MaxLen: -1}, "MaxLen is -1"},
		{"negative BlockTime", redisstream.Options{BlockTime: -time.Second}, "BlockTime is -1s"},
		{"sub-ms BlockTime", redisstream.Options{BlockTime: time.Microsecond}, "below Redis's resolution"},
		{"sub-second TTL", redisstream.Options{FinishedTTL: time.Millisecond}, "FinishedTTL 1ms is below 1s"},
		{"sub-second IdleTTL", redisstream.Options{IdleTTL: 500 * time.Millisecond}, "IdleTTL 500ms is below 1s"},
		{"negative MaxBlockingReads", redisstream.Options{MaxBlockingReads: -1}, "MaxBlockingReads is -1"},
		{"negative HistoryPoll", redisstream.Options{HistoryPoll: -time.Second}, "HistoryPoll is -1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := redisstream.New(client, tt.opts)
			assert.ErrorIs(t, err, redisstream.ErrInvalidOptions)
			assert.ErrorContains(t, err, tt.want)
		})
	}
	_, err := redisstream.New(nil, redisstream.Options{})
	assert.ErrorIs(t, err, redisstream.ErrInvalidOptions)
}

func TestKey(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer client.Close()
	s, err := redisstream.New(client, redisstream.Options{})
	require.NoError(t, err)
	defer s.Close()
	assert.Equal(t, "lecture:r1", s.Key("r1"))
	s2, err := redisstream.New(client, redisstream.Options{KeyTemplate: "app:{runId}:events"})
	require.NoError(t, err)
	defer s2.Close()
	assert.Equal(t, "app:r1:events", s2.Key("r1"))
}

func TestPublishWritesExplicitIDs(t *testing.T) {
	s, r := newStream(t, redisstream.Options{})
	ctx := context.Background()
	run := sinktest.RunID(t)
	require.NoError(t, s.Publish(ctx, sinktest.Events(run, 1, 3)...))
	msgs, err := r.Client.XRange(ctx, s.Key(run), "-", "+").Result()
	require.NoError(t, err)
	var ids []string
	for _, m := range msgs {
		ids = append(ids, m.ID)
	}
	assert.Equal(t, []string{"0-1", "0-2", "0-3"}, ids)
	assert.JSONEq(t, mustJSON(t, sinktest.Events(run, 1, 3)[0]), msgs[0].Values["event"].(string))
}

func mustJSON(t *testing.T, e progress.Event) string {
	data, err := e.MarshalJSON()
	require.NoError(t, err)
	return string(data)
}

func TestPublishDuplicates(t *testing.T) {
	s, r := newStream(t, redisstream.Options{})
	ctx := context.Background()
	run := sinktest.RunID(t)
	all := sinktest.Events(run, 1, 8)
	require.NoError(t, s.Publish(ctx, all[:5]...))
	// A retry of 3..5 that also carries 6..8: the duplicates must not cost
	// the new events.
	require.NoError(t, s.Publish(ctx, all[2:]...))
	require.NoError(t, s.Publish(ctx, all[7]))
	n, err := r.Client.XLen(ctx, s.Key(run)).Result()
	require.NoError(t, err)
	assert.Equal(t, int64(8), n)
	assert.Equal(t, sinktest.Span(1, 8), sinktest.Seqs(sinktest.Replay(t, s, run, 0)))
	st := s.Stats()
	assert.Equal(t, uint64(8), st.Published)
	assert.Equal(t, uint64(4), st.Duplicates)
	assert.Zero(t, st.PublishErrors)
}

func TestPublishMaxLenApproximate(t *testing.T) {
	s, r := newStream(t, redisstream.Options{MaxLen: 100})
	ctx := context.Background()
	run := sinktest.RunID(t)
	for _, batch := range chunk(sinktest.Events(run, 1, 2000), 250) {
		require.NoError(t, s.Publish(ctx, batch...))
	}
	n, err := r.Client.XLen(ctx, s.Key(run)).Result()
	require.NoError(t, err)
	assert.GreaterOrEqual(t, n, int64(100), "MAXLEN ~ keeps at least MaxLen")
	assert.Less(t, n, int64(2000), "and trims")
	last, err := r.Client.XRevRangeN(ctx, s.Key(run), "+", "-", 1).Result()
	require.NoError(t, err)
	assert.Equal(t, "0-2000", last[0].ID)
}

func chunk(events []progress.Event, n int) [][]progress.Event {
	var out [][]progress.Event
	for len(events) > 0 {
		k := min(n, len(events))
		out = append(out, events[:k])
		events = events[k:]
	}
	return out
}

func TestFinishedTTL(t *testing.T) {
	s, r := newStream(t, redisstream.Options{FinishedTTL: time.Minute, IdleTTL: -1})
	ctx := context.Background()
	run := sinktest.RunID(t)
	require.NoError(t, s.Publish(ctx, progress.Event{RunID: run, Seq: 1, Type: progress.RunStarted}))
	ttl, err := r.Client.TTL(ctx, s.Key(run)).Result()
	require.NoError(t, err)
	assert.Equal(t, time.Duration(-1), ttl, "no expiry while the run goes on")
	require.NoError(t, s.Publish(ctx, progress.Event{RunID: run, Seq: 2, Type: progress.RunFinished}))
	ttl, err = r.Client.TTL(ctx, s.Key(run)).Result()
	require.NoError(t, err)
	assert.Greater(t, ttl, 50*time.Second)
	assert.LessOrEqual(t, ttl, time.Minute)
}

// A stream gone while events of its run still come, expired after the
// run's final event (here deleted, as the expiry would) before a late
// retry, or lost by Redis while the run goes on, is created again with
// FinishedTTL: an XADD alone would leave it without an expiry for good.
// A run's first event still creates its stream without one, and streams
// that exist are left as they are.
func TestFinishedTTLOnAStreamCreatedAgain(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		before []uint64 // Seqs published, then the stream is deleted
		final  uint64   // the Seq of the final event, 0 for none
		late   []uint64 // Seqs published after
		want   []uint64 // the stream's entries then
	}{
		{"a late event of a finished run", []uint64{1, 2, 3}, 3, []uint64{2}, []uint64{2}},
		{"a late batch of a finished run", []uint64{1, 2, 3, 4}, 4, []uint64{2, 3}, []uint64{2, 3}},
		{"a late batch with the final event", []uint64{1, 2, 3}, 3, []uint64{2, 3}, []uint64{2, 3}},
		{"a run going on after Redis lost its stream", []uint64{1, 2}, 0, []uint64{3, 4}, []uint64{3, 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, r := newStream(t, redisstream.Options{FinishedTTL: time.Minute, IdleTTL: -1})
			run, other := sinktest.RunID(t), sinktest.RunID(t)+"-b"
			events := func(seqs ...uint64) []progress.Event {
				var out []progress.Event
				for _, seq := range seqs {
					e := sinktest.Events(run, seq, seq)[0]
					if seq == tt.final {
						e.Type = progress.RunFinished
					}
					out = append(out, e)
				}
				return out
			}
			require.NoError(t, s.Publish(ctx, events(tt.before...)...))
			require.NoError(t, s.Publish(ctx, sinktest.Events(other, 1, 1)...))
			require.NoError(t, r.Client.Del(ctx, s.Key(run)).Err())

			// The late events, interleaved with another run's, whose
			// stream exists and has no expiry.
			late := events(tt.late...)
			late = append(late[:1], append(sinktest.Events(other, 2, 2), late[1:]...)...)
			require.NoError(t, s.Publish(ctx, late...))
			ttl, err := r.Client.PTTL(ctx, s.Key(run)).Result()
			require.NoError(t, err)
			assert.Greater(t, ttl, 50*time.Second, "the stream created again expires")
			assert.LessOrEqual(t, ttl, time.Minute)
			assert.Equal(t, tt.want, sinktest.Seqs(sinktest.Replay(t, s, run, 0)))
			ttl, err = r.Client.PTTL(ctx, s.Key(other)).Result()
			require.NoError(t, err)
			assert.Equal(t, time.Duration(-1), ttl, "a stream that exists is left as it was")
			st := s.Stats()
			assert.Equal(t, uint64(len(tt.before)+len(tt.late)+2), st.Published)
			assert.Zero(t, st.PublishErrors)
			assert.Zero(t, st.Duplicates)
		})
	}
}

// A stream created again costs a call one more round trip, a
// transaction; a call to streams that exist, or with a run's first
// event, costs one, as before.
func TestRoundTripsOfAStreamCreatedAgain(t *testing.T) {
	ctx := context.Background()
	s, r := newStream(t, redisstream.Options{FinishedTTL: time.Minute, IdleTTL: -1})
	trips := &roundTrips{}
	r.Client.AddHook(trips)
	run := sinktest.RunID(t)
	all := sinktest.Events(run, 1, 6)
	all[5].Type = progress.RunFinished
	require.NoError(t, s.Publish(ctx, all[:2]...))
	require.NoError(t, s.Publish(ctx, all[2:4]...))
	assert.Equal(t, 2, trips.count(), "round trips of 2 calls to a run's stream")
	require.NoError(t, r.Client.Del(ctx, s.Key(run)).Err())
	require.NoError(t, s.Publish(ctx, all[4:]...))
	assert.Equal(t, 4, trips.count(), "round trips once a call found the stream gone")
	ttl, err := r.Client.TTL(ctx, s.Key(run)).Result()
	require.NoError(t, err)
	assert.Greater(t, ttl, 50*time.Second)
}

// roundTrips counts a client's pipelines, transactions included.
type roundTrips struct {
	mu sync.Mutex
	n  int
}

func (c *roundTrips) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

func (c *roundTrips) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (c *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (c *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.mu.Lock()
		c.n++
		c.mu.Unlock()
		return next(ctx, cmds)
	}
}

// The known bug of a peer's Redis-backed stream: replay, then tail from
// "now", loses what was published in between (or repeats it). Small pages
// and a small hub window put readers on every path: XRANGE pages, the
// shared XREAD, and catching up after falling out of the window.
func TestPublishDuringReplayAndTail(t *testing.T) {
	s, _ := newStream(t, redisstream.Options{PageSize: 7, HubBuffer: 16})
	ctx := context.Background()
	run := sinktest.RunID(t)
	const stored, total = 500, 2000
	all := sinktest.Events(run, 1, total)
	for _, b := range chunk(all[:stored], 100) {
		require.NoError(t, s.Publish(ctx, b...))
	}
	release := make(chan struct{})
	type result struct {
		after uint64
		seqs  []uint64
		err   error
	}
	results := make(chan result, 5)
	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for i, after := range []uint64{0, 0, 250, 499, 500} {
		slow := i == 1 // held until publishing is over: far behind the window
		wg.Go(func() {
			var got []uint64
			err := s.Tail(tctx, run, after, func(e progress.Event) error {
				if slow && e.Seq == 3 {
					<-release
				}
				got = append(got, e.Seq)
				if e.Seq%50 == 0 {
					runtime.Gosched()
				}
				if e.Seq == total {
					return errDone
				}
				return nil
			})
			results <- result{after, got, err}
		})
	}
	for _, e := range all[stored:] {
		require.NoError(t, s.Publish(ctx, e))
	}
	close(release)
	wg.Wait()
	close(results)
	for r := range results {
		assert.ErrorIs(t, r.err, errDone)
		if diff := cmp.Diff(sinktest.Span(r.after+1, total), r.seqs); diff != "" {
			t.Errorf("Tail(%d) (-want +got):\n%s", r.after, diff)
		}
	}
	assert.Zero(t, s.Stats().Skipped)
}

var errDone = errors.New("done")

// A trimmed stream: the reader's ID is older than the first entry. The
// archive gives the missing part, then the stream, then live events, with
// an exact sequence and nothing repeated at either seam.
func TestTrimmedStreamFallsBackToHistory(t *testing.T) {
	h := progress.NewMemoryHistory()
	s, r := newStream(t, redisstream.Options{History: h})
	ctx := context.Background()
	run := sinktest.RunID(t)
	sink := progress.NewFanout(progress.NewArchive(h), s)
	all := sinktest.Events(run, 1, 120)
	require.NoError(t, sink.Publish(ctx, all[:100]...))
	require.NoError(t, r.Client.XTrimMaxLen(ctx, s.Key(run), 10).Err())
	first, err := r.Client.XRangeN(ctx, s.Key(run), "-", "+", 1).Result()
	require.NoError(t, err)
	require.Equal(t, "0-91", first[0].ID, "the stream now starts at 91")

	assert.Empty(t, sinktest.Diff(all[5:100], sinktest.Replay(t, s, run, 5)), "Replay(5)")

	tl := sinktest.StartTail(t, s, run, 5)
	tl.Next(t, 95)
	require.NoError(t, sink.Publish(ctx, all[100:]...))
	got := tl.Next(t, 115)
	tl.Stop(t, context.Canceled)
	if diff := sinktest.Diff(all[5:], got); diff != "" {
		t.Fatalf("Tail(5) across archive, stream and live (-want +got):\n%s", diff)
	}
	assert.Zero(t, s.Stats().Skipped)
}

// The stream is gone (expired, or Redis restarted without persistence):
// the archive has the run, then live events continue in a new stream.
func TestGoneStreamFallsBackToHistory(t *testing.T) {
	h := progress.NewMemoryHistory()
	s, _ := newStream(t, redisstream.Options{History: h})
	ctx := context.Background()
	run := sinktest.RunID(t)
	all := sinktest.Events(run, 1, 40)
	require.NoError(t, h.Append(ctx, all[:30]...))

	assert.Equal(t, sinktest.Span(11, 30), sinktest.Seqs(sinktest.Replay(t, s, run, 10)))

	tl := sinktest.StartTail(t, s, run, 10)
	tl.Next(t, 20)
	sink := progress.NewFanout(progress.NewArchive(h), s)
	require.NoError(t, sink.Publish(ctx, all[30:]...))
	got := tl.Next(t, 30)
	tl.Stop(t, context.Canceled)
	assert.Equal(t, sinktest.Span(11, 40), sinktest.Seqs(got))
}

// Without a History, a trimmed part is skipped and counted, never
// delivered out of order.
func TestTrimmedWithoutHistorySkips(t *testing.T) {
	s, r := newStream(t, redisstream.Options{})
	ctx := context.Background()
	run := sinktest.RunID(t)
	require.NoError(t, s.Publish(ctx, sinktest.Events(run, 1, 50)...))
	require.NoError(t, r.Client.XTrimMaxLen(ctx, s.Key(run), 10).Err())
	assert.Equal(t, sinktest.Span(41, 50), sinktest.Seqs(sinktest.Replay(t, s, run, 0)))
	assert.Equal(t, uint64(40), s.Stats().Skipped)
}

func TestCorruptEntrySkipped(t *testing.T) {
	h := progress.NewMemoryHistory()
	s, r := newStream(t, redisstream.Options{History: h})
	ctx := context.Background()
	run := sinktest.RunID(t)
	all := sinktest.Events(run, 1, 5)
	require.NoError(t, h.Append(ctx, all...))
	require.NoError(t, s.Publish(ctx, all[:2]...))
	require.NoError(t, r.Client.XAdd(ctx, &redis.XAddArgs{Stream: s.Key(run), ID: "0-3", Values: []any{"event", "{not json"}}).Err())
	require.NoError(t, s.Publish(ctx, all[3:]...))
	assert.Empty(t, sinktest.Diff(all, sinktest.Replay(t, s, run, 0)), "seq 3 comes from the archive")
	assert.Equal(t, uint64(1), s.Stats().Corrupt)
}

// An entry that holds another run's event (a key that another Stream's
// template also makes, or another writer) is not an event of the run: it
// is skipped as corrupt, the History fills its place, and the readers,
// Replay and Tail alike, go on, rather than fail at it at every try.
func TestEntryOfAnotherRunSkipped(t *testing.T) {
	h := progress.NewMemoryHistory()
	s, r := newStream(t, redisstream.Options{History: h})
	ctx := context.Background()
	run := sinktest.RunID(t)
	all := sinktest.Events(run, 1, 5)
	require.NoError(t, h.Append(ctx, all...))
	require.NoError(t, s.Publish(ctx, all[:2]...))
	foreign := all[2]
	foreign.RunID, foreign.Message = run+"-other", "another tenant's secret"
	data, err := json.Marshal(foreign)
	require.NoError(t, err)
	require.NoError(t, r.Client.XAdd(ctx, &redis.XAddArgs{Stream: s.Key(run), ID: "0-3", Values: []any{"event", string(data)}}).Err())
	require.NoError(t, s.Publish(ctx, all[3:]...))
	assert.Empty(t, sinktest.Diff(all, sinktest.Replay(t, s, run, 0)), "seq 3 comes from the archive")
	assert.Equal(t, uint64(1), s.Stats().Corrupt)

	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var got []progress.Event
	err = s.Tail(tctx, run, 0, func(e progress.Event) error {
		got = append(got, e)
		if len(got) == len(all) {
			return errDone
		}
		return nil
	})
	require.ErrorIs(t, err, errDone)
	assert.Empty(t, sinktest.Diff(all, got), "Tail too")
}

func TestWrongKeyTypeIsAnError(t *testing.T) {
	s, r := newStream(t, redisstream.Options{})
	ctx := context.Background()
	run := sinktest.RunID(t)
	require.NoError(t, r.Client.Set(ctx, s.Key(run), "not a stream", 0).Err())
	err := s.Replay(ctx, run, 0, func(progress.Event) error { return nil })
	assert.ErrorContains(t, err, "WRONGTYPE")
	err = s.Tail(ctx, run, 0, func(progress.Event) error { return nil })
	assert.ErrorContains(t, err, "WRONGTYPE", "a permanent error ends Tail instead of retrying forever")
	err = s.Publish(ctx, sinktest.Events(run, 1, 2)...)
	assert.ErrorContains(t, err, "redisstream: publish: 2 of 2 events not written")
	st := s.Stats()
	assert.Equal(t, uint64(1), st.PublishErrors)
	assert.Equal(t, uint64(2), st.Dropped)
}

// slowTail starts a Tail of run from the start whose callback blocks on
// the event with Seq at, like a slow browser. It returns once that event
// is held; release lets the reader go and waits for it to end.
func slowTail(t *testing.T, s *redisstream.Stream, run string, at uint64) (release func()) {
	t.Helper()
	hold, held := make(chan struct{}), make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		_ = s.Tail(ctx, run, 0, func(e progress.Event) error {
			if e.Seq == at {
				close(held)
				<-hold
			}
			return nil
		})
	})
	select {
	case <-held:
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatalf("the slow reader never got seq %d", at)
	}
	return func() {
		close(hold)
		cancel()
		wg.Wait()
	}
}

func TestStatsReadersRunsLag(t *testing.T) {
	s, _ := newStream(t, redisstream.Options{})
	ctx := context.Background()
	run := sinktest.RunID(t)
	require.NoError(t, s.Publish(ctx, sinktest.Events(run, 1, 5)...))

	fast := sinktest.StartTail(t, s, run, 0)
	fast.Next(t, 5)
	published := make(chan error, 1)
	go func() {
		// Once the slow reader holds seq 6, which is only after this.
		published <- s.Publish(ctx, sinktest.Events(run, 6, 30)...)
	}()
	release := slowTail(t, s, run, 6)
	require.NoError(t, <-published)
	fast.Next(t, 30)
	st := s.Stats()
	assert.Equal(t, 2, st.Readers)
	assert.Equal(t, 1, st.Runs, "one reading goroutine for the run, whatever the readers")
	assert.Equal(t, uint64(25), st.Lag, "the slow reader delivered 5 of 30")
	release()
	fast.Stop(t, context.Canceled)
	assert.Equal(t, 0, s.Stats().Readers)
}

// A reader still catching up from Redis counts the whole page it read as
// seen, so a slow callback in the middle of that page shows as lag.
func TestStatsLagWhileCatchingUp(t *testing.T) {
	s, _ := newStream(t, redisstream.Options{})
	run := sinktest.RunID(t)
	require.NoError(t, s.Publish(context.Background(), sinktest.Events(run, 1, 30)...))
	release := slowTail(t, s, run, 6)
	defer release()
	assert.Equal(t, uint64(25), s.Stats().Lag, "30 read, 5 delivered")
}

func TestCloseEndsTails(t *testing.T) {
	r := testenv.NewRedis(t)
	s, err := redisstream.New(r.Client, redisstream.Options{KeyTemplate: r.Prefix + "{runId}", BlockTime: 50 * time.Millisecond, Logger: quiet()})
	require.NoError(t, err)
	run := sinktest.RunID(t)
	done := make(chan error, 1)
	started := make(chan struct{})
	go func() {
		done <- s.Tail(context.Background(), run, 0, func(progress.Event) error {
			close(started)
			return nil
		})
	}()
	require.NoError(t, s.Publish(context.Background(), sinktest.Events(run, 1, 1)...))
	<-started
	require.NoError(t, s.Close())
	select {
	case err := <-done:
		assert.ErrorIs(t, err, redisstream.ErrClosed)
	case <-time.After(10 * time.Second):
		t.Fatal("Tail did not end after Close")
	}
	assert.ErrorIs(t, s.Publish(context.Background(), sinktest.Events(run, 2, 2)...), redisstream.ErrClosed)
	assert.ErrorIs(t, s.Replay(context.Background(), run, 0, func(progress.Event) error { return nil }), redisstream.ErrClosed)
}

func TestPublishRespectsContext(t *testing.T) {
	s, _ := newStream(t, redisstream.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.Publish(ctx, sinktest.Events(sinktest.RunID(t), 1, 3)...)
	assert.ErrorIs(t, err, context.Canceled)
}

func ExampleStream_Key() {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer client.Close()
	s, _ := redisstream.New(client, redisstream.Options{KeyTemplate: "app:{runId}:progress"})
	defer s.Close()
	fmt.Println(s.Key("run-42"))
	// Output: app:run-42:progress
}

// Redis never got the end of the run (its Publish failed and Buffered gave
// up), the archive did: a reader that is tailing finds it there at its
// next poll of the History.
func TestTailPollsHistory(t *testing.T) {
	h := progress.NewMemoryHistory()
	s, _ := newStream(t, redisstream.Options{History: h, HistoryPoll: 20 * time.Millisecond, Logger: quiet()})
	ctx := context.Background()
	run := sinktest.RunID(t)
	all := sinktest.Events(run, 1, 10)
	all[9].Type = progress.RunFinished
	require.NoError(t, progress.NewFanout(progress.NewArchive(h), s).Publish(ctx, all[:5]...))
	tl := sinktest.StartTail(t, s, run, 0)
	tl.Next(t, 5)
	require.NoError(t, h.Append(ctx, all[5:]...))
	got := tl.Next(t, 10)
	tl.Stop(t, context.Canceled)
	require.Equal(t, sinktest.Span(1, 10), sinktest.Seqs(got))
}

// Redis lags the archive (Buffered publishes asynchronously). Reader A
// joins when the archive has the whole run and Redis half of it; slow
// reader B, held at seq 60 meanwhile, then joins the run's shared reader
// below A's position, and Redis catches up in two steps. B must get every
// event, once: the shared reader starts where Redis ended and takes the
// archive's events into its window, and a reader below the window fills
// from the archive before it jumps.
func TestSlowReaderJoinsBelowTheSharedReader(t *testing.T) {
	h := progress.NewMemoryHistory()
	s, _ := newStream(t, redisstream.Options{History: snapshotHistory{h}, HistoryPoll: time.Hour, Logger: quiet()})
	ctx := context.Background()
	run := sinktest.RunID(t)
	all := sinktest.Events(run, 1, 100)
	all[99].Type = progress.RunFinished
	require.NoError(t, progress.NewFanout(progress.NewArchive(h), s).Publish(ctx, all[:50]...))
	require.NoError(t, h.Append(ctx, all[50:60]...)) // archived; Redis lags

	hold, held, at95 := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var bGot []uint64
	bDone := make(chan error, 1)
	bctx, bcancel := context.WithTimeout(ctx, 20*time.Second)
	defer bcancel()
	go func() {
		bDone <- s.Tail(bctx, run, 0, func(e progress.Event) error {
			bGot = append(bGot, e.Seq)
			switch e.Seq {
			case 60:
				close(held)
				<-hold
			case 95:
				close(at95)
			case 100:
				return errDone
			}
			return nil
		})
	}()
	<-held
	require.NoError(t, h.Append(ctx, all[60:]...)) // the archive has the whole run
	a := sinktest.StartTail(t, s, run, 0)
	a.Next(t, 100)
	require.NoError(t, s.Publish(ctx, all[50:95]...)) // Redis catches up partly
	close(hold)
	<-at95                                          // B has read Redis up to its end
	require.NoError(t, s.Publish(ctx, all[95:]...)) // then Redis catches up fully
	require.ErrorIs(t, <-bDone, errDone, "B got %d events", len(bGot))
	require.Equal(t, sinktest.Span(1, 100), bGot)
	a.Stop(t, context.Canceled)
}

// snapshotHistory reads like a database: one query, then its rows.
type snapshotHistory struct{ *progress.MemoryHistory }

func (h snapshotHistory) Replay(ctx context.Context, run string, after uint64, fn func(progress.Event) error) error {
	var rows []progress.Event
	if err := h.MemoryHistory.Replay(ctx, run, after, func(e progress.Event) error {
		rows = append(rows, e)
		return nil
	}); err != nil {
		return err
	}
	for _, e := range rows {
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

// A run's shared reader that stopped for good (its stream became a string)
// is not handed to a new reader while an old one still holds it: the new
// one gets a new shared reader, which finds the stream repaired.
func TestFailedSharedReaderIsReplaced(t *testing.T) {
	s, r := newStream(t, redisstream.Options{BlockTime: 20 * time.Millisecond, Logger: quiet()})
	ctx := context.Background()
	run := sinktest.RunID(t)
	ev := sinktest.Events(run, 1, 3)

	// A is on the shared reader, held in its callback.
	hold, held := make(chan struct{}), make(chan struct{})
	aDone := make(chan error, 1)
	go func() {
		aDone <- s.Tail(ctx, run, 0, func(progress.Event) error {
			close(held)
			<-hold
			return errDone
		})
	}()
	require.Eventually(t, func() bool { return s.Stats().Runs == 1 }, 10*time.Second, 5*time.Millisecond)
	require.NoError(t, s.Publish(ctx, ev[0]))
	<-held

	// The stream becomes a string: the shared reader's next XREAD fails
	// for good. Then the stream is repaired.
	require.NoError(t, r.Client.Del(ctx, s.Key(run)).Err())
	require.NoError(t, r.Client.Set(ctx, s.Key(run), "not a stream", 0).Err())
	time.Sleep(200 * time.Millisecond) // ten BlockTimes: ordering only
	require.NoError(t, r.Client.Del(ctx, s.Key(run)).Err())
	require.NoError(t, s.Publish(ctx, ev[:2]...))

	// C replays 1 and 2, then follows: seq 3 comes from a shared reader.
	got2 := make(chan struct{})
	cDone := make(chan error, 1)
	go func() {
		cDone <- s.Tail(ctx, run, 0, func(e progress.Event) error {
			switch e.Seq {
			case 2:
				close(got2)
			case 3:
				return errDone
			}
			return nil
		})
	}()
	select {
	case <-got2:
	case err := <-cDone:
		t.Fatalf("C ended before seq 2: %v", err)
	}
	require.NoError(t, s.Publish(ctx, ev[2]))
	require.ErrorIs(t, <-cDone, errDone)
	close(hold)
	require.ErrorIs(t, <-aDone, errDone)
}

// countingHistory counts the History's Replay calls that have returned.
type countingHistory struct {
	*progress.MemoryHistory
	replays atomic.Int64
	active  atomic.Int64 // Replays under way
}

func (h *countingHistory) Replay(ctx context.Context, run string, after uint64, fn func(progress.Event) error) error {
	h.active.Add(1)
	defer h.active.Add(-1)
	defer h.replays.Add(1) // before active drops
	return h.MemoryHistory.Replay(ctx, run, after, fn)
}

// settled returns the count of Replays once none is under way: a reader
// delivers a Replay's events before the Replay returns and is counted,
// so a count read as soon as the events arrive may miss it.
func (h *countingHistory) settled(t *testing.T) int64 {
	t.Helper()
	require.Eventually(t, func() bool { return h.active.Load() == 0 }, 10*time.Second, time.Millisecond,
		"a History Replay that does not return")
	return h.replays.Load()
}

// pollCase returns a stream whose History counts its reads, and the n
// events of a new run, the last one final if final.
func pollCase(t *testing.T, opts redisstream.Options, n uint64, final bool) (*countingHistory, *redisstream.Stream, []progress.Event) {
	t.Helper()
	h := &countingHistory{MemoryHistory: progress.NewMemoryHistory()}
	opts.History, opts.Logger = h, quiet()
	s, _ := newStream(t, opts)
	all := sinktest.Events(sinktest.RunID(t), 1, n)
	if final {
		all[n-1].Type = progress.RunFinished
	}
	return h, s, all
}

// onShared starts a Tail that takes the run's first n events and waits
// until it follows the run's shared reader.
func onShared(t *testing.T, s *redisstream.Stream, run string, n int) *sinktest.Tailer {
	t.Helper()
	tl := sinktest.StartTail(t, s, run, 0)
	tl.Next(t, n)
	require.Eventually(t, func() bool { return s.Stats().Runs == 1 }, 10*time.Second, time.Millisecond)
	return tl
}

// A reader with nothing more to receive, because it delivered the run's
// final event or starts at or past it, holds no shared reader: no XREAD,
// no poll of the History, however long it stays connected. Its Tail still
// lasts until its context ends, as a Source's must.
func TestReaderAtTheEndHoldsNoSharedReader(t *testing.T) {
	tests := []struct {
		name  string
		after uint64
		gone  bool // the stream expired: only the History has the run
	}{
		{"from the start", 0, false},
		{"before the final event", 3, false},
		{"at the final event", 5, false},
		{"past the final event", 9, false},
		{"from the start, stream gone", 0, true},
		{"at the final event, stream gone", 5, true},
		{"past the final event, stream gone", 9, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &countingHistory{MemoryHistory: progress.NewMemoryHistory()}
			s, r := newStream(t, redisstream.Options{History: h, HistoryPoll: 10 * time.Millisecond, BlockTime: 10 * time.Millisecond})
			ctx, run := context.Background(), sinktest.RunID(t)
			all := sinktest.Events(run, 1, 5)
			all[4].Type = progress.RunFinished
			require.NoError(t, progress.NewFanout(progress.NewArchive(h), s).Publish(ctx, all...))
			if tt.gone {
				require.NoError(t, r.Client.Del(ctx, s.Key(run)).Err())
			}
			cmds := testenv.CountCommands(r.Client)
			tl := sinktest.StartTail(t, s, run, tt.after)
			if tt.after < 5 {
				tl.Expect(t, sinktest.Span(tt.after+1, 5))
				if tt.gone {
					// The History's Replay delivered them; it is counted
					// once it returns.
					require.Eventually(t, func() bool { return h.replays.Load() >= 1 }, 10*time.Second, time.Millisecond)
				}
			} else {
				// The reader has read Redis after its replay: it looked
				// for the run's end, or a shared reader polls.
				require.Eventually(t, func() bool { return cmds.Count("xrange", "xrevrange", "xread") > 1 }, 10*time.Second, time.Millisecond)
			}
			replays := h.replays.Load()
			time.Sleep(100 * time.Millisecond) // ordering only: ten polls, were a shared reader polling
			assert.Zero(t, s.Stats().Runs, "a shared reader is running for a reader at the end")
			assert.Zero(t, cmds.Count("xread"), "XREAD for a reader at the end")
			assert.Equal(t, replays, h.replays.Load(), "the History is polled for a reader at the end")
			assert.Equal(t, 1, s.Stats().Readers)
			cause := errors.New("left")
			assert.ErrorIs(t, tl.Stop(t, cause), cause, "Tail lasts until its context ends")
		})
	}
}

// A reader that follows the shared reader lets go of it once it has the
// final event: the shared reader stops, the reader stays.
func TestReaderLetsGoOfTheSharedReaderAtTheFinalEvent(t *testing.T) {
	s, _ := newStream(t, redisstream.Options{})
	ctx, run := context.Background(), sinktest.RunID(t)
	all := sinktest.Events(run, 1, 5)
	all[4].Type = progress.RunFinished
	require.NoError(t, s.Publish(ctx, all[:3]...))
	tl := onShared(t, s, run, 3)
	require.NoError(t, s.Publish(ctx, all[3:]...))
	tl.Expect(t, []uint64{4, 5})
	require.Eventually(t, func() bool { return s.Stats().Runs == 0 }, 10*time.Second, time.Millisecond,
		"the run's shared reader still runs after its only reader got the final event")
	assert.Equal(t, 1, s.Stats().Readers)
	assert.ErrorIs(t, tl.Stop(t, context.Canceled), context.Canceled)
}

// Close ends a reader at the run's end, which holds no shared reader, as
// it ends every other.
func TestCloseEndsReaderAtTheEnd(t *testing.T) {
	s, r := newStream(t, redisstream.Options{})
	ctx, run := context.Background(), sinktest.RunID(t)
	all := sinktest.Events(run, 1, 5)
	all[4].Type = progress.RunFinished
	require.NoError(t, s.Publish(ctx, all...))
	cmds := testenv.CountCommands(r.Client)
	done := make(chan error, 1)
	go func() { done <- s.Tail(ctx, run, 5, func(progress.Event) error { return nil }) }()
	require.Eventually(t, func() bool { return cmds.Count("xrange", "xrevrange", "xread") > 1 }, 10*time.Second, time.Millisecond)
	require.NoError(t, s.Close())
	select {
	case err := <-done:
		assert.ErrorIs(t, err, redisstream.ErrClosed)
	case <-time.After(10 * time.Second):
		t.Fatal("Tail did not end after Close")
	}
}

// The History lacks seq 6 (its Append failed) and is ahead of Redis, which
// lags behind a Buffered. A poll that finds the gap must not pass over it
// at once: Redis then gets 6 to 10, and the reader must get 6.
func TestHistoryPollWaitsForAGap(t *testing.T) {
	h, s, all := pollCase(t, redisstream.Options{HistoryPoll: 2 * time.Second}, 10, true)
	ctx, run := context.Background(), all[0].RunID
	require.NoError(t, progress.NewFanout(progress.NewArchive(h), s).Publish(ctx, all[:5]...))
	tl := onShared(t, s, run, 5)
	waitPoll(t, h, 1) // the reader's read and the shared reader's first poll are done
	polls := h.replays.Load()
	require.NoError(t, h.Append(ctx, all[6:]...))  // 7..10 archived, 6 not
	waitPoll(t, h, polls)                          // one poll (at most) has seen the gap
	require.NoError(t, s.Publish(ctx, all[5:]...)) // Redis catches up: 6..10
	tl.Expect(t, sinktest.Span(6, 10))
	tl.Stop(t, context.Canceled)
}

// A gap that neither Redis nor the History fills is passed over at the
// poll after the one that found it: the reader gets the run's end.
func TestHistoryPollPassesOverALastingGap(t *testing.T) {
	h := progress.NewMemoryHistory()
	s, _ := newStream(t, redisstream.Options{History: h, HistoryPoll: 20 * time.Millisecond, Logger: quiet()})
	ctx := context.Background()
	run := sinktest.RunID(t)
	all := sinktest.Events(run, 1, 10)
	all[9].Type = progress.RunFinished
	require.NoError(t, progress.NewFanout(progress.NewArchive(h), s).Publish(ctx, all[:5]...))
	tl := onShared(t, s, run, 5)
	require.NoError(t, h.Append(ctx, all[6:]...)) // 6 is nowhere
	tl.Expect(t, sinktest.Span(7, 10))
	tl.Stop(t, context.Canceled)
	assert.Equal(t, uint64(1), s.Stats().Skipped)
}

// A poll shorter than BlockTime is not held up by a blocked XREAD: the
// History's events arrive long before the 20 s block would end (and long
// before the Tailer gives up, at 15 s).
func TestHistoryPollShorterThanBlockTime(t *testing.T) {
	h := progress.NewMemoryHistory()
	s, _ := newStream(t, redisstream.Options{History: h, HistoryPoll: 20 * time.Millisecond,
		BlockTime: 20 * time.Second, Logger: quiet()})
	ctx := context.Background()
	run := sinktest.RunID(t)
	all := sinktest.Events(run, 1, 10) // no final event: the poll goes on, and Close does not wait 20 s
	require.NoError(t, progress.NewFanout(progress.NewArchive(h), s).Publish(ctx, all[:5]...))
	tl := onShared(t, s, run, 5)
	time.Sleep(100 * time.Millisecond) // ordering only: the shared reader is blocked in XREAD
	require.NoError(t, h.Append(ctx, all[5:]...))
	tl.Expect(t, sinktest.Span(6, 10))
	tl.Stop(t, context.Canceled)
}

// waitPoll waits until the History has been read again since n reads.
func waitPoll(t *testing.T, h *countingHistory, n int64) {
	t.Helper()
	require.Eventually(t, func() bool { return h.replays.Load() > n }, 10*time.Second, time.Millisecond,
		"the shared reader never polled the History")
}

// B follows the shared reader at seq 5; the end of the run reaches only
// the History. A joins late and delivers the final event from its own
// read of the History: that must not stop the shared reader's poll before
// its window has the end, or B would never get it.
func TestFinalEventOfOneReaderDoesNotStarveAnother(t *testing.T) {
	h, s, all := pollCase(t, redisstream.Options{HistoryPoll: time.Second}, 10, true)
	ctx, run := context.Background(), all[0].RunID
	require.NoError(t, progress.NewFanout(progress.NewArchive(h), s).Publish(ctx, all[:5]...))
	b := onShared(t, s, run, 5)
	waitPoll(t, h, 1)                             // the shared reader's first poll is done
	require.NoError(t, h.Append(ctx, all[5:]...)) // Redis never gets 6..10
	a := sinktest.StartTail(t, s, run, 0)
	a.Next(t, 10)
	b.Expect(t, sinktest.Span(6, 10))
	a.Stop(t, context.Canceled)
	b.Stop(t, context.Canceled)
}

// The shared reader starts at 0, before the run reaches Redis, and a poll
// finds the History without seq 1: it must wait a poll for Redis too.
func TestHistoryPollWaitsForAGapAtTheStart(t *testing.T) {
	h, s, all := pollCase(t, redisstream.Options{HistoryPoll: time.Second}, 5, false)
	ctx, run := context.Background(), all[0].RunID
	tl := sinktest.StartTail(t, s, run, 0)
	require.Eventually(t, func() bool { return s.Stats().Runs == 1 }, 10*time.Second, time.Millisecond)
	waitPoll(t, h, 1)
	n := h.replays.Load()
	require.NoError(t, h.Append(ctx, all[1:]...)) // 2..5; 1 not yet
	waitPoll(t, h, n)
	require.NoError(t, s.Publish(ctx, all...)) // Redis gets 1..5
	tl.Expect(t, sinktest.Span(1, 5))
	tl.Stop(t, context.Canceled)
}

// A poll that passes over a gap it waited for stops at the next one,
// which it has not waited for: Redis then delivers the event in it.
func TestHistoryPollWaitsForEachGap(t *testing.T) {
	h, s, all := pollCase(t, redisstream.Options{HistoryPoll: time.Second}, 10, false)
	ctx, run := context.Background(), all[0].RunID
	require.NoError(t, progress.NewFanout(progress.NewArchive(h), s).Publish(ctx, all[:5]...))
	tl := onShared(t, s, run, 5)
	waitPoll(t, h, 1)
	n := h.replays.Load()
	require.NoError(t, h.Append(ctx, all[6:8]...)) // 7, 8: 6 is lost for good
	waitPoll(t, h, n)
	n = h.replays.Load()
	require.NoError(t, h.Append(ctx, all[9])) // 10; 9 not yet
	waitPoll(t, h, n)
	require.NoError(t, s.Publish(ctx, all[8:]...)) // Redis gets 9 and 10
	tl.Expect(t, []uint64{7, 8, 9, 10})
	tl.Stop(t, context.Canceled)
}

// A reader that joins while the History is ahead of Redis with a gap
// reads the History only up to the gap: Redis then delivers the missing
// event, and the reader gets it.
func TestJoiningReaderWaitsForAGap(t *testing.T) {
	h := progress.NewMemoryHistory()
	s, _ := newStream(t, redisstream.Options{History: h, HistoryPoll: time.Hour, Logger: quiet()})
	ctx := context.Background()
	run := sinktest.RunID(t)
	all := sinktest.Events(run, 1, 10)
	require.NoError(t, progress.NewFanout(progress.NewArchive(h), s).Publish(ctx, all[:5]...))
	require.NoError(t, h.Append(ctx, all[6:]...)) // 7..10; 6 not yet
	tl := onShared(t, s, run, 5)
	require.NoError(t, s.Publish(ctx, all[5:]...)) // Redis gets 6..10
	tl.Expect(t, sinktest.Span(6, 10))
	tl.Stop(t, context.Canceled)
}

// replayOnly is a History without a LastEvent method, that counts the
// events it replays.
type replayOnly struct {
	h    progress.History
	read atomic.Int64
}

func (r *replayOnly) Append(ctx context.Context, events ...progress.Event) error {
	return r.h.Append(ctx, events...)
}

func (r *replayOnly) Replay(ctx context.Context, run string, after uint64, fn func(progress.Event) error) error {
	return r.h.Replay(ctx, run, after, func(e progress.Event) error {
		r.read.Add(1)
		return fn(e)
	})
}

// LastEvent finds the run's newest event with one lookup in Redis, and
// in the History beyond it: a History without a LastEvent method is read
// only past the stream's newest entry.
func TestLastEvent(t *testing.T) {
	tests := []struct {
		name     string
		redis    [2]uint64 // seqs published to Redis, from..to; {0, 0} for none
		archived uint64    // the History has 1..archived
		final    bool      // the run's last event (seq 10) is final
		corrupt  bool      // a corrupt entry 0-11 tops the stream
		want     uint64    // 0: no event
		maxRead  int64     // events a History without LastEvent may replay
	}{
		{"unknown run", [2]uint64{}, 0, false, false, 0, 0},
		{"stream and History alike", [2]uint64{1, 10}, 10, false, false, 10, 0},
		{"History ahead of the stream", [2]uint64{1, 6}, 10, false, false, 10, 4},
		{"stream ahead of the History", [2]uint64{1, 10}, 6, false, false, 10, 0},
		{"stream gone", [2]uint64{}, 10, false, false, 10, 10},
		{"trimmed stream", [2]uint64{8, 10}, 10, false, false, 10, 0},
		{"final entry spares the History", [2]uint64{1, 10}, 10, true, false, 10, 0},
		{"corrupt newest entry skipped", [2]uint64{1, 10}, 10, false, true, 10, 0},
	}
	for _, tt := range tests {
		for _, lookup := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/History LastEvent %v", tt.name, lookup), func(t *testing.T) {
				mh := progress.NewMemoryHistory()
				ro := &replayOnly{h: mh}
				var hist progress.History = ro
				if lookup {
					hist = mh
				}
				s, r := newStream(t, redisstream.Options{History: hist})
				ctx, run := context.Background(), sinktest.RunID(t)
				all := sinktest.Events(run, 1, 10)
				if tt.final {
					all[9].Type = progress.RunFinished
				}
				require.NoError(t, mh.Append(ctx, all[:tt.archived]...))
				if tt.redis[0] != 0 {
					require.NoError(t, s.Publish(ctx, all[tt.redis[0]-1:tt.redis[1]]...))
				}
				if tt.corrupt {
					require.NoError(t, r.Client.XAdd(ctx, &redis.XAddArgs{Stream: s.Key(run), ID: "0-11", Values: []any{"event", "{"}}).Err())
				}
				e, ok, err := s.LastEvent(ctx, run)
				require.NoError(t, err)
				assert.Equal(t, tt.want != 0, ok)
				if tt.want != 0 {
					assert.Empty(t, sinktest.Diff(all[tt.want-1:tt.want], []progress.Event{e}))
				}
				assert.LessOrEqual(t, ro.read.Load(), tt.maxRead, "events read from a History without LastEvent")
			})
		}
	}
}

func TestLastEventErrors(t *testing.T) {
	broken := errors.New("db down")
	s, r := newStream(t, redisstream.Options{History: brokenHistory{broken}})
	ctx, run := context.Background(), sinktest.RunID(t)
	_, _, err := s.LastEvent(ctx, run)
	assert.ErrorIs(t, err, broken)
	assert.ErrorContains(t, err, "history: db down")
	require.NoError(t, r.Client.Set(ctx, s.Key(run), "not a stream", 0).Err())
	_, _, err = s.LastEvent(ctx, run)
	assert.ErrorContains(t, err, "WRONGTYPE")
	_, _, err = s.LastEvent(ctx, "")
	assert.ErrorIs(t, err, progress.ErrInvalidEvent)
	require.NoError(t, s.Close())
	_, _, err = s.LastEvent(ctx, run)
	assert.ErrorIs(t, err, redisstream.ErrClosed)
}

// brokenHistory fails every call with err.
type brokenHistory struct{ err error }

func (b brokenHistory) Append(context.Context, ...progress.Event) error { return b.err }

func (b brokenHistory) Replay(context.Context, string, uint64, func(progress.Event) error) error {
	return b.err
}

// IdleTTL expires the stream of a run that never publishes its final
// event (its process crashed, or that publish failed): each publish sets
// the expiry again, and a final event's FinishedTTL takes over, in the
// same call too; without FinishedTTL the last publish's IdleTTL stands.
func TestIdleTTL(t *testing.T) {
	ctx := context.Background()
	ttlOf := func(t *testing.T, r *testenv.Redis, key string) time.Duration {
		t.Helper()
		ttl, err := r.Client.TTL(ctx, key).Result()
		require.NoError(t, err)
		return ttl
	}
	between := func(t *testing.T, ttl, lo, hi time.Duration, msg string) {
		t.Helper()
		assert.Greater(t, ttl, lo, msg)
		assert.LessOrEqual(t, ttl, hi, msg)
	}
	t.Run("with FinishedTTL", func(t *testing.T) {
		s, r := newStream(t, redisstream.Options{IdleTTL: time.Hour, FinishedTTL: time.Minute})
		run := sinktest.RunID(t)
		require.NoError(t, s.Publish(ctx, progress.Event{RunID: run, Seq: 1, Type: progress.RunStarted}))
		between(t, ttlOf(t, r, s.Key(run)), 59*time.Minute, time.Hour, "a run under way expires once idle")
		require.NoError(t, s.Publish(ctx, progress.Event{RunID: run, Seq: 2, Type: progress.NodeStarted, Node: "script"},
			progress.Event{RunID: run, Seq: 3, Type: progress.RunFinished}))
		between(t, ttlOf(t, r, s.Key(run)), 50*time.Second, time.Minute, "the final event's FinishedTTL wins in its call")

		other := sinktest.RunID(t) + "-b"
		require.NoError(t, s.Publish(ctx, progress.Event{RunID: other, Seq: 1, Type: progress.RunStarted},
			progress.Event{RunID: run, Seq: 4, Type: progress.Message, Message: "late"}))
		between(t, ttlOf(t, r, s.Key(other)), 59*time.Minute, time.Hour, "each stream of a call gets its expiry")
	})
	t.Run("alone", func(t *testing.T) {
		s, r := newStream(t, redisstream.Options{IdleTTL: time.Hour, FinishedTTL: -1})
		run := sinktest.RunID(t)
		require.NoError(t, s.Publish(ctx, progress.Event{RunID: run, Seq: 1, Type: progress.RunStarted},
			progress.Event{RunID: run, Seq: 2, Type: progress.RunFinished},
			progress.Event{RunID: run, Seq: 3, Type: progress.Message, Message: "late"}))
		between(t, ttlOf(t, r, s.Key(run)), 59*time.Minute, time.Hour, "with a negative FinishedTTL a final event's call sets IdleTTL")
	})
	t.Run("off", func(t *testing.T) {
		s, r := newStream(t, redisstream.Options{IdleTTL: -1})
		run := sinktest.RunID(t)
		require.NoError(t, s.Publish(ctx, progress.Event{RunID: run, Seq: 1, Type: progress.RunStarted}))
		assert.Equal(t, time.Duration(-1), ttlOf(t, r, s.Key(run)), "no expiry with a negative IdleTTL")
	})
}

// An event that Redis refuses because the stream already holds a newer
// one (a late or repeated publish, such as the events of a Buffered
// fallback written again after the run ended) is no publish to the
// stream: it leaves the expiry alone, and the FinishedTTL of the run's
// final event stands. Only the stream's newest event, published again (a
// retry whose reply was lost), sets it again.
func TestIdleTTLLeftAloneByAStaleEvent(t *testing.T) {
	ctx := context.Background()
	s, r := newStream(t, redisstream.Options{IdleTTL: time.Hour, FinishedTTL: time.Minute})
	run, other := sinktest.RunID(t), sinktest.RunID(t)+"-b"
	ttlOf := func(key string) time.Duration {
		t.Helper()
		ttl, err := r.Client.TTL(ctx, key).Result()
		require.NoError(t, err)
		return ttl
	}
	all := sinktest.Events(run, 1, 3)
	all[2].Type = progress.RunFinished
	require.NoError(t, s.Publish(ctx, all...))
	require.LessOrEqual(t, ttlOf(s.Key(run)), time.Minute)

	require.NoError(t, s.Publish(ctx, all[1]))
	assert.LessOrEqual(t, ttlOf(s.Key(run)), time.Minute, "an event below the stream's newest leaves FinishedTTL")
	require.NoError(t, s.Publish(ctx, all[0], progress.Event{RunID: other, Seq: 1, Type: progress.RunStarted}, all[1]))
	assert.LessOrEqual(t, ttlOf(s.Key(run)), time.Minute, "interleaved with another run's")
	assert.Greater(t, ttlOf(s.Key(other)), 59*time.Minute)

	// A run under way: its newest event again sets IdleTTL again.
	require.NoError(t, r.Client.Expire(ctx, s.Key(other), time.Minute).Err())
	require.NoError(t, s.Publish(ctx, progress.Event{RunID: other, Seq: 1, Type: progress.RunStarted}))
	assert.Greater(t, ttlOf(s.Key(other)), 59*time.Minute, "the newest event published again")
	assert.Equal(t, uint64(4), s.Stats().Duplicates)
}

// pipelineCounter counts the commands of the pipelines a client sends, by
// name.
type pipelineCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *pipelineCounter) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (c *pipelineCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (c *pipelineCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.mu.Lock()
		for _, cmd := range cmds {
			c.n[cmd.Name()]++
		}
		c.mu.Unlock()
		return next(ctx, cmds)
	}
}

// A call whose events of several runs are interleaved (a Buffered sink
// shared by the runs under way batches their events as they come) sets
// each stream's expiry once, after its last event, not once for each
// change of run: 2 runs of 10 events each, alternating, made 20 expiries
// where 2 do. A final event's FinishedTTL stands against a later event of
// its run in the call, whichever runs' events come between.
func TestIdleTTLOnceAStreamInAnInterleavedCall(t *testing.T) {
	ctx := context.Background()
	s, r := newStream(t, redisstream.Options{IdleTTL: time.Hour, FinishedTTL: time.Minute})
	cmds := &pipelineCounter{n: map[string]int{}}
	r.Client.AddHook(cmds)
	a, b := sinktest.RunID(t)+"-a", sinktest.RunID(t)+"-b"
	var events []progress.Event
	for seq := uint64(1); seq <= 10; seq++ {
		events = append(events, sinktest.Events(a, seq, seq)[0], sinktest.Events(b, seq, seq)[0])
	}
	require.NoError(t, s.Publish(ctx, events...))
	cmds.mu.Lock()
	assert.Equal(t, 2, cmds.n["eval"]+cmds.n["expire"], "expiries of a call with 2 runs: %v", cmds.n)
	cmds.mu.Unlock()

	fin := sinktest.Events(a, 11, 12)
	fin[0].Type = progress.RunFinished
	require.NoError(t, s.Publish(ctx, fin[0], sinktest.Events(b, 11, 11)[0], fin[1]))
	ttl, err := r.Client.TTL(ctx, s.Key(a)).Result()
	require.NoError(t, err)
	assert.LessOrEqual(t, ttl, time.Minute, "FinishedTTL stands")
}

// A call that writes an event of a run sets the run's IdleTTL even when
// the call's last event of the run is refused as older than the stream's
// newest, which the call itself just wrote: Publish takes the events of
// a call in any order. The stream of a run that then crashes must still
// expire.
func TestIdleTTLSetByAWrittenEventBeforeARefusedOne(t *testing.T) {
	ctx := context.Background()
	s, r := newStream(t, redisstream.Options{IdleTTL: time.Hour})
	run := sinktest.RunID(t)
	events := sinktest.Events(run, 1, 6)
	require.NoError(t, s.Publish(ctx, events[:4]...))
	require.NoError(t, r.Client.Persist(ctx, s.Key(run)).Err())

	require.NoError(t, s.Publish(ctx, events[5], events[2])) // 6 written, 3 refused
	ttl, err := r.Client.TTL(ctx, s.Key(run)).Result()
	require.NoError(t, err)
	assert.Greater(t, ttl, 59*time.Minute, "IdleTTL after seq 6 was written")
	assert.Equal(t, uint64(5), s.Stats().Published)
	assert.Equal(t, uint64(1), s.Stats().Duplicates)
}
