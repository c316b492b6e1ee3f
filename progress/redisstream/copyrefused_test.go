package redisstream_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/internal/testenv"
	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/redisstream"
	"github.com/regengraph/regen/progress/sinktest"
)

// A copy of an interrupted run's stream into the History whose XRANGE
// the Redis user's ACL refuses (NOPERM: a configuration error, which no
// retry cures) is not retried: it is counted and logged once, naming the
// refusal. Before, it was retried in the background for an hour, a
// failed try counted and an XRANGE sent every 30s, and Stats.Copying
// counted it as a copy that a retry may yet make. So too a retry whose
// XRANGE the ACL refuses (the ACL changed since the first try) ends.
func TestACopyThatRedisRefusesIsNotRetried(t *testing.T) {
	for _, tc := range []struct {
		name string
		// refuse makes Redis refuse the copy's XRANGE, before the final
		// event's Publish if first, else after it, as the copy is retried
		// for a History that failed it.
		first bool
	}{{"at the first try", true}, {"at a retry", false}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			r := testenv.NewRedis(t)
			client := aclUser(t, r, "+@stream", "+@connection")
			refuse := func() {
				require.NoError(t, r.Client.Do(ctx, "ACL", "SETUSER", client.Options().Username, "-xrange").Err())
			}
			h := &failingHistory{MemoryHistory: progress.NewMemoryHistory()}
			logs := &testenv.LogBuffer{}
			// No TTLs: no script, whose XRANGE the ACL would refuse too.
			s, err := redisstream.New(client, redisstream.Options{KeyTemplate: r.Prefix + redisstream.RunIDPlaceholder,
				History: h, FinishedTTL: -1, IdleTTL: -1, RetryDelay: 5 * time.Millisecond,
				Logger: slog.New(slog.NewTextHandler(logs, nil))})
			require.NoError(t, err)
			t.Cleanup(func() { s.Close() })
			run := sinktest.RunID(t)
			all := sinktest.Events(run, 1, 8)
			all = append(all, interruptedEnd(all[7], run+"-resume"))
			require.NoError(t, s.Publish(ctx, all[:8]...))

			if tc.first {
				refuse()
			} else {
				h.down.Store(true)
			}
			require.NoError(t, s.Publish(ctx, all[8]), "the final event's publish")
			if !tc.first {
				require.Equal(t, 1, s.Stats().Copying, "copies waiting for a retry")
				refuse()
				h.down.Store(false)
			}
			wait := testenv.Context(t, 10*time.Second)
			for s.Stats().Copying != 0 {
				require.NoError(t, wait.Err(), "a copy that Redis refuses is retried")
				time.Sleep(time.Millisecond) // polling real I/O, bounded by wait
			}
			assert.Contains(t, logs.String(), "NOPERM")
			assert.Contains(t, logs.String(), "not retried")
			assert.Zero(t, h.Len(run), "events in the History")
		})
	}
}
