package executor

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A wait before a retry is never negative: jitter on a very long backoff
// (near the longest time.Duration) overflowed the conversion from
// float64 and gave a negative wait, so the node was retried at once.
func TestRetryWaitNeverOverflows(t *testing.T) {
	longest := time.Duration(math.MaxInt64)
	require.Equal(t, longest, RetryPolicy{InitialInterval: longest}.Backoff(2))
	require.Equal(t, longest, RetryPolicy{InitialInterval: time.Hour, MaxInterval: longest}.Backoff(80))
	p := RetryPolicy{InitialInterval: longest, Jitter: 1}.withDefaults()
	for range 200 {
		require.GreaterOrEqual(t, p.wait(2), time.Duration(0))
	}
}
