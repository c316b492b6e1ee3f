package redisstream_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
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

// pickyHistory is a History that refuses, as invalid, the events it
// cannot hold (as a host's History refuses a message too long for its
// column, or pghistory a Seq over its bigint): one such event refuses the
// whole Append, as every History does. While down, it fails every Append.
type pickyHistory struct {
	progress.History
	refuse []uint64 // the Seqs it cannot hold
	down   atomic.Bool
}

func (h *pickyHistory) Append(ctx context.Context, events ...progress.Event) error {
	if h.down.Load() {
		return errAppendDown
	}
	for _, e := range events {
		if slices.Contains(h.refuse, e.Seq) {
			return fmt.Errorf("%w: run %q seq %d: its message is too long for this history", progress.ErrInvalidEvent, e.RunID, e.Seq)
		}
	}
	return h.History.Append(ctx, events...)
}

// The copy of an interrupted run's stream into the History copies every
// event that the stream holds and the History can keep, in order, with
// its Seq, whatever its neighbours; it passes over the entries that are
// no events of the run, and the events the History refuses as invalid,
// and counts (Stats.Corrupt) and logs them. Before, an event the History
// refused failed the Append of its whole page, and every retry of it, so
// that nothing of the page was copied (and, once the stream expired, the
// retry logged it gone); and the corrupt entries the copy passed over
// were neither counted nor logged.
func TestInterruptedCopyPassesOverBadEntries(t *testing.T) {
	memory := func(*testing.T) progress.History { return progress.NewMemoryHistory() }
	tests := []struct {
		name       string
		newHistory func(t *testing.T) progress.History
		pageSize   int64
		corrupt    []uint64 // the Seqs whose entries are not events
		refused    []uint64 // the Seqs whose events the History refuses
		downFirst  bool     // the History is down at the final event: the retry copies
	}{
		{"corrupt entries", memory, 0, []uint64{3, 6}, nil, false},
		{"corrupt entries, pghistory", newPgHistory, 0, []uint64{3, 6}, nil, false},
		{"corrupt entries, pages of 3", memory, 3, []uint64{3, 4, 6}, nil, false},
		{"an event the history refuses", memory, 0, nil, []uint64{5}, false},
		{"events the history refuses, pghistory, pages of 3", newPgHistory, 3, []uint64{6}, []uint64{4, 7, 8}, false},
		{"an event the history refuses, copied by the retry", memory, 0, []uint64{3}, []uint64{5}, true},
		// Nothing that the History can keep: the stream is not gone, as
		// the retry logged it.
		{"nothing to copy, by the retry", memory, 0, []uint64{1, 2, 3, 4, 5, 6, 7, 8}, []uint64{9}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &pickyHistory{History: tt.newHistory(t), refuse: tt.refused}
			logs := &testenv.LogBuffer{}
			s, r := newStream(t, redisstream.Options{History: h, PageSize: tt.pageSize, FinishedTTL: time.Hour,
				RetryDelay: 5 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(logs, nil))})
			ctx, run := context.Background(), sinktest.RunID(t)
			all := sinktest.Events(run, 1, 8)
			all = append(all, interruptedEnd(all[7], run+"-resume"))

			// The killed worker: 1..8 reached Redis, some of them as
			// entries that are no events; 1 and 2 the History.
			for _, e := range all[:8] {
				if slices.Contains(tt.corrupt, e.Seq) {
					require.NoError(t, r.Client.XAdd(ctx, &redis.XAddArgs{Stream: s.Key(run), ID: fmt.Sprintf("0-%d", e.Seq),
						Values: []any{"event", "{not json"}}).Err())
					continue
				}
				require.NoError(t, s.Publish(ctx, e))
			}
			require.NoError(t, h.Append(ctx, all[:2]...))
			// The resume.
			h.down.Store(tt.downFirst)
			require.NoError(t, s.Publish(ctx, all[8]))
			if tt.downFirst {
				require.Equal(t, 1, s.Stats().Copying, "copies waiting for a retry")
				h.down.Store(false)
				wait := testenv.Context(t, 10*time.Second)
				for s.Stats().Copying != 0 {
					require.NoError(t, wait.Err(), "the retry never ended")
					time.Sleep(time.Millisecond) // polling real I/O, bounded by wait
				}
			}

			var want []progress.Event
			for _, e := range all {
				if e.Seq <= 2 || !slices.Contains(tt.corrupt, e.Seq) && !slices.Contains(tt.refused, e.Seq) {
					want = append(want, e)
				}
			}
			var got []progress.Event
			require.NoError(t, h.Replay(ctx, run, 0, func(e progress.Event) error {
				got = append(got, e)
				return nil
			}))
			assert.Empty(t, sinktest.Diff(want, got), "the events in the History")
			st := s.Stats()
			reads := 1 // of each corrupt entry, each counted
			if tt.downFirst {
				reads = 2 // the failed try read them too
			}
			assert.Equal(t, uint64(reads*len(tt.corrupt)+len(tt.refused)), st.Corrupt, "corrupt entries and refused events counted")
			if tt.downFirst {
				assert.Equal(t, uint64(1), st.CopyErrors, "the first try only")
			} else {
				assert.Zero(t, st.CopyErrors)
			}
			assert.Zero(t, st.Copying)
			if len(tt.corrupt) > 0 {
				assert.Contains(t, logs.String(), "skipping corrupt stream entry")
			}
			if len(tt.refused) > 0 {
				assert.Contains(t, logs.String(), "the history refused, as invalid, events of a run's stream copied to it")
			}
			assert.Contains(t, logs.String(), "but for its corrupt entries and the events the history refused")
			assert.NotContains(t, logs.String(), "stream is gone")
		})
	}
}
