package pgstore_test

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor/pgstore"
)

// An Every near the longest Duration (a host's way to make only the
// start-up pass) overflowed in the jitter: Every plus up to a fifth of
// it wrapped around to a negative wait, so that about half the waits
// were none and the passes ran back to back, hammering the database.
// The waits stay within the longest Duration.
func TestMaintainJitterOfAHugeEvery(t *testing.T) {
	for _, every := range []time.Duration{math.MaxInt64, math.MaxInt64 - 1, math.MaxInt64 / 5 * 4, 200 * 365 * 24 * time.Hour} {
		for range 200 {
			d := pgstore.Jitter(every)
			require.GreaterOrEqual(t, d, every-every/5, "Every %d", every)
			require.LessOrEqual(t, d, every+min(every/5, math.MaxInt64-every), "Every %d", every)
		}
	}
}
