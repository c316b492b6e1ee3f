package redisstream_test

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/sinktest"
)

// Readers of one run come and go, at every position, while Redis is
// killed and restarted without persistence mid-run: each gets every
// event after its start once, in order, from Redis or the archive.
func TestChurnAcrossARedisRestart(t *testing.T) {
	p := newPrivateStream(t)
	archive := progress.NewBuffered(progress.NewArchive(p.history), progress.BufferedOptions{Logger: quiet()})
	t.Cleanup(func() { archive.Close(context.Background()) })
	p.sink = progress.NewFanout(archive, p.buffered)
	run := sinktest.RunID(t)
	const n = 200
	all := churnEvents(run, n)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 4))
	c := newChurn(t, p.stream, run, 60*time.Second)
	for i := 0; i < n; i++ {
		switch i {
		case 60:
			p.server.Kill()
		case 120:
			p.server.Restart()
		}
		require.NoError(t, p.sink.Publish(ctx, all[i]))
		if rng.IntN(4) == 0 {
			c.readSome(rng, i+1, n)
		}
		time.Sleep(time.Duration(rng.IntN(10)) * time.Millisecond)
	}
	c.wait()
}
