package schedule_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor/schedule"
)

// A running node's "callNodes" past the plan's nodes was taken when
// MaxBatch allowed it (a host's "no cap" of math.MaxInt): a snapshot of
// a call that no machine of the plan makes restored, and on 64-bit hosts
// a count of 2^32 + 1 nodes was kept as 1 (an int32), so that the
// restored machine's snapshot did not write back the bytes it was
// restored from, and a count of 2^31 was kept negative. Restore now
// refuses a call of more nodes than the plan has.
func TestReview6RestoreRefusesACallOfMoreNodesThanThePlan(t *testing.T) {
	p := lecturePlan(t, 20)
	cfg := schedule.Config{MaxBatch: int(^uint(0) >> 1)}
	m := newMachine(t, p, cfg)
	st, ok := m.Next(t0)
	require.True(t, ok)
	s := m.Snapshot()
	for _, n := range []float64{float64(p.Len() + 1), 1 << 31, 1<<32 + 1} {
		if n > float64(cfg.MaxBatch) {
			continue // a 32-bit int
		}
		bad := editSnapshot(t, s, func(f obj) {
			r := f["running"].([]any)[0].(obj)
			require.Equal(t, float64(st.Node), r["node"])
			r["callNodes"] = n
		})
		_, err := schedule.Restore(p, cfg, bad)
		requireSnapshotError(t, err, false, "want 1 to")
	}
}
