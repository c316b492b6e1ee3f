package redisstream_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/internal/testenv"
	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/pghistory"
	"github.com/regengraph/regen/progress/redisstream"
	"github.com/regengraph/regen/progress/sinktest"
)

// interruptedEnd is the final event that the executor publishes for run,
// found interrupted after its newest event last, and resumed by run by
// (executor's endInterrupted).
func interruptedEnd(last progress.Event, by string) progress.Event {
	return progress.Event{RunID: last.RunID, GraphKey: last.GraphKey, Seq: last.Seq + 1,
		Time: last.Time.Add(time.Minute), Type: progress.RunCancelled, Stage: progress.NoStage,
		Message: "interrupted: it ended without recording its outcome; resumed by run " + by,
		Error:   "regen: run cancelled: run " + last.RunID + ": interrupted",
		Done:    last.Done, Total: last.Total, ResumedBy: by}
}

// newPgHistory returns a migrated pghistory History in a schema private
// to the test, dropped when it ends.
func newPgHistory(t *testing.T) progress.History {
	t.Helper()
	pg := testenv.NewPostgres(t)
	h, err := pghistory.New(pg.Pool, pghistory.Options{Schema: pg.Schema})
	require.NoError(t, err)
	require.NoError(t, h.Migrate(context.Background()))
	return h
}

// The README's wiring publishes through a Fanout of two Buffered sinks,
// one over the Stream and one over an Archive of the History that the
// Stream reads gaps from. A worker killed with events still queued in
// the archive's Buffered lost them from the History, though they reached
// Redis; the run's resume then published its final event (run.cancelled,
// ResumedBy set) to both, numbered after the newest event of either. So
// the History held 1..5 and 9, Redis 1..9, and once the stream expired
// (FinishedTTL) or was trimmed, every reader skipped 6..8 (counted in
// Stats.Skipped), although readers are meant to resume without gaps.
// Now the Stream, publishing that final event, copies what the run's
// stream holds into the History (in pages), which ignores what it has.
func TestInterruptedRunsEventsReachTheHistory(t *testing.T) {
	memory := func(*testing.T) progress.History { return progress.NewMemoryHistory() }
	tests := []struct {
		name       string
		newHistory func(t *testing.T) progress.History
		pageSize   int64
		archived   uint64 // the History holds 1..archived before the resume
		trimmedTo  uint64 // if set, the stream holds trimmedTo..8 then
		lost       uint64 // the events that reached neither in the end
	}{
		{"memory", memory, 0, 5, 0, 0},
		{"memory, pages of 3", memory, 3, 5, 0, 0},
		{"pghistory", newPgHistory, 0, 5, 0, 0},
		{"pghistory, pages of 3", newPgHistory, 3, 5, 0, 0},
		// Redis trimmed what the History has: the rest is copied.
		{"trimmed stream", memory, 0, 5, 4, 0},
		// Redis trimmed 4 and 5 too, which the History lacks: only what
		// the stream still holds can be copied.
		{"trimmed past the history", memory, 0, 3, 6, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.newHistory(t)
			s, r := newStream(t, redisstream.Options{History: h, PageSize: tt.pageSize, FinishedTTL: time.Hour})
			ctx, run := context.Background(), sinktest.RunID(t)
			all := sinktest.Events(run, 1, 8)
			all = append(all, interruptedEnd(all[7], run+"-resume"))

			// The killed worker: 1..8 reached Redis, 1..archived the
			// History.
			require.NoError(t, s.Publish(ctx, all[:8]...))
			require.NoError(t, h.Append(ctx, all[:tt.archived]...))
			if tt.trimmedTo != 0 {
				require.NoError(t, r.Client.XTrimMinID(ctx, s.Key(run), fmt.Sprintf("0-%d", tt.trimmedTo)).Err())
			}
			// The resume, through the Fanout: the Stream's sink, then the
			// archive's.
			require.NoError(t, s.Publish(ctx, all[8]))
			require.NoError(t, h.Append(ctx, all[8]))
			// FinishedTTL runs out.
			require.NoError(t, r.Client.Del(ctx, s.Key(run)).Err())

			want := all
			if tt.lost != 0 {
				want = append(slices.Clone(all[:tt.archived]), all[tt.trimmedTo-1:]...)
			}
			got := sinktest.Replay(t, s, run, 0)
			assert.Empty(t, sinktest.Diff(want, got), "a reader replaying the run from the History")
			assert.Equal(t, tt.lost, s.Stats().Skipped, "events skipped")
			assert.Zero(t, s.Stats().CopyErrors)
		})
	}
}

// callCounter counts the calls made to a History.
type callCounter struct {
	*progress.MemoryHistory
	appends, replays, lasts atomic.Int64
}

func (h *callCounter) Append(ctx context.Context, events ...progress.Event) error {
	h.appends.Add(1)
	return h.MemoryHistory.Append(ctx, events...)
}

func (h *callCounter) Replay(ctx context.Context, run string, after uint64, fn func(progress.Event) error) error {
	h.replays.Add(1)
	return h.MemoryHistory.Replay(ctx, run, after, fn)
}

func (h *callCounter) LastEvent(ctx context.Context, run string) (progress.Event, bool, error) {
	h.lasts.Add(1)
	return h.MemoryHistory.LastEvent(ctx, run)
}

// The copy is made for a run that ends interrupted only: the final event
// of a run that ended by itself (no ResumedBy) costs the History nothing
// and Redis no read, as before. (The last row shows what the counters
// see of a copy.)
func TestOnlyAnInterruptedRunsFinalEventIsCopied(t *testing.T) {
	tests := []struct {
		name        string
		typ         progress.Type
		resumedBy   string
		finishedTTL time.Duration
		wantXRange  int
		wantAppends int64
	}{
		{"finished", progress.RunFinished, "", 0, 0, 0},
		{"failed", progress.RunFailed, "", 0, 0, 0},
		{"cancelled", progress.RunCancelled, "", 0, 0, 0},
		{"finished, FinishedTTL", progress.RunFinished, "", time.Hour, 0, 0},
		{"cancelled, FinishedTTL", progress.RunCancelled, "", time.Hour, 0, 0},
		{"interrupted", progress.RunCancelled, "r2", time.Hour, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &callCounter{MemoryHistory: progress.NewMemoryHistory()}
			s, r := newStream(t, redisstream.Options{History: h, FinishedTTL: tt.finishedTTL})
			ctx, run := context.Background(), sinktest.RunID(t)
			all := sinktest.Events(run, 1, 9)
			all[8].Type, all[8].Stage, all[8].ResumedBy = tt.typ, progress.NoStage, tt.resumedBy
			require.NoError(t, s.Publish(ctx, all[:8]...))

			cmds := testenv.CountCommands(r.Client)
			require.NoError(t, s.Publish(ctx, all[8]))
			assert.Equal(t, tt.wantXRange, cmds.Count("xrange"), "XRANGE calls")
			assert.Equal(t, tt.wantAppends, h.appends.Load(), "History appends")
			assert.Zero(t, h.replays.Load()+h.lasts.Load(), "History reads")
			assert.Equal(t, 9*int(tt.wantAppends), h.Len(run), "events copied to the History")
			assert.Zero(t, s.Stats().CopyErrors)
		})
	}
}

// failingHistory is a History whose Append fails while down.
type failingHistory struct {
	*progress.MemoryHistory
	down atomic.Bool
}

var errAppendDown = errors.New("append: history is down")

func (h *failingHistory) Append(ctx context.Context, events ...progress.Event) error {
	if h.down.Load() {
		return errAppendDown
	}
	return h.MemoryHistory.Append(ctx, events...)
}

// A History that fails the copy fails neither the publish of the
// interrupted run's final event nor loses it: the event is in Redis,
// Publish returns nil (so a Buffered neither retries it nor counts it
// dropped), and the failure is logged and counted in Stats.CopyErrors.
func TestFailedCopyKeepsTheFinalEvent(t *testing.T) {
	h := &failingHistory{MemoryHistory: progress.NewMemoryHistory()}
	logs := &testenv.LogBuffer{}
	s, _ := newStream(t, redisstream.Options{History: h, RetryDelay: time.Hour, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	ctx, run := context.Background(), sinktest.RunID(t)
	all := sinktest.Events(run, 1, 8)
	all = append(all, interruptedEnd(all[7], run+"-resume"))
	require.NoError(t, s.Publish(ctx, all[:8]...))
	require.NoError(t, h.Append(ctx, all[:5]...))

	h.down.Store(true)
	require.NoError(t, s.Publish(ctx, all[8]), "the final event's publish")
	st := s.Stats()
	assert.Equal(t, uint64(9), st.Published)
	assert.Zero(t, st.PublishErrors)
	assert.Zero(t, st.Dropped)
	assert.Equal(t, uint64(1), st.CopyErrors)
	assert.Equal(t, 1, st.Copying, "copies waiting for a retry")
	assert.Contains(t, logs.String(), errAppendDown.Error())
	assert.Empty(t, sinktest.Diff(all, sinktest.Replay(t, s, run, 0)), "the run read from Redis")
}

// A copy that the History failed is retried in the background, until
// it succeeds or finds nothing left to copy, and Close ends the retries:
// before, the copy was tried once, and a History down at that moment
// (its database restarting) lost the events only the stream held for
// good, once the stream expired.
func TestFailedCopyIsRetried(t *testing.T) {
	tests := []struct {
		name     string
		then     func(t *testing.T, s *redisstream.Stream, r *testenv.Redis, h *failingHistory, run string)
		archived uint64 // the History holds 1..archived in the end
		wantLog  string
	}{
		{"until the history is back", func(t *testing.T, _ *redisstream.Stream, _ *testenv.Redis, h *failingHistory, _ string) {
			h.down.Store(false)
		}, 9, "copied the stream of an interrupted run to the history"},
		{"until the stream is gone", func(t *testing.T, s *redisstream.Stream, r *testenv.Redis, h *failingHistory, run string) {
			require.NoError(t, r.Client.Del(context.Background(), s.Key(run)).Err())
			h.down.Store(false)
		}, 5, "the run's stream is gone"},
		{"until Close", func(t *testing.T, s *redisstream.Stream, _ *testenv.Redis, _ *failingHistory, _ string) {
			require.NoError(t, s.Close())
		}, 5, "the Stream was closed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &failingHistory{MemoryHistory: progress.NewMemoryHistory()}
			logs := &testenv.LogBuffer{}
			s, r := newStream(t, redisstream.Options{History: h, RetryDelay: 5 * time.Millisecond,
				Logger: slog.New(slog.NewTextHandler(logs, nil))})
			ctx, run := context.Background(), sinktest.RunID(t)
			all := sinktest.Events(run, 1, 8)
			all = append(all, interruptedEnd(all[7], run+"-resume"))
			require.NoError(t, s.Publish(ctx, all[:8]...))
			require.NoError(t, h.Append(ctx, all[:5]...))
			h.down.Store(true)
			require.NoError(t, s.Publish(ctx, all[8]))
			require.Equal(t, 1, s.Stats().Copying, "copies waiting for a retry")

			tt.then(t, s, r, h, run)
			wait := testenv.Context(t, 10*time.Second)
			for s.Stats().Copying != 0 {
				require.NoError(t, wait.Err(), "the retry never ended")
				time.Sleep(time.Millisecond) // polling real I/O, bounded by wait
			}
			assert.Equal(t, int(tt.archived), h.Len(run), "events in the History")
			assert.GreaterOrEqual(t, s.Stats().CopyErrors, uint64(1))
			assert.Contains(t, logs.String(), tt.wantLog)
		})
	}
}
