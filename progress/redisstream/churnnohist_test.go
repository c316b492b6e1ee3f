package redisstream_test

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress/redisstream"
	"github.com/regengraph/regen/progress/sinktest"
)

// Without a History, readers that join the run's shared reader's window
// (small here, so that its base moves) or read Redis first, coming and
// going at every position while events flow, get every event once, in
// order.
func TestChurnWithoutHistory(t *testing.T) {
	s, _ := newStream(t, redisstream.Options{HubBuffer: 8, PageSize: 5, BlockTime: 50 * time.Millisecond})
	run := sinktest.RunID(t)
	const n = 200
	all := churnEvents(run, n)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(5, 6))
	c := newChurn(t, s, run, 30*time.Second)
	for i := 0; i < n; {
		k := min(1+rng.IntN(6), n-i)
		require.NoError(t, s.Publish(ctx, all[i:i+k]...))
		i += k
		for range rng.IntN(3) {
			c.read(uint64(rng.IntN(i+3)), n, rng.IntN(3) == 0)
		}
		time.Sleep(time.Duration(rng.IntN(5)) * time.Millisecond)
	}
	c.wait()
}
