package redisstream_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/internal/testenv"
	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/redisstream"
	"github.com/regengraph/regen/progress/sinktest"
)

// A Stream sweeps for idle streams soon after it starts, not only
// IdleTTL/4 on: with the default IdleTTL, 72h, a first sweep came 18h
// after a process started, so that hosts whose processes live less (a
// deploy a day, workers that scale down) never swept, and the stream of
// a killed run expired with the events that only it held, which the
// docs said the sweep copies into the History. Here the first sweep
// comes at once (a minute on, outside tests), with an IdleTTL of an hour
// (a sweep every 15 minutes), for a stream with 20 minutes left.
func TestAStreamSweepsSoonAfterItStarts(t *testing.T) {
	redisstream.SetFirstSweep(t, time.Millisecond)
	ctx := context.Background()
	h := progress.NewMemoryHistory()
	opts := redisstream.Options{History: h, IdleTTL: time.Hour, Logger: quiet()}
	worker, r := newStream(t, opts)
	run := sinktest.RunID(t)
	all := sinktest.Events(run, 1, 8) // the worker was killed before its final event
	require.NoError(t, worker.Publish(ctx, all...))
	require.NoError(t, h.Append(ctx, all[:5]...)) // 6..8 died in its queue for the archive
	require.NoError(t, worker.Close())
	require.NoError(t, r.Client.PExpire(ctx, worker.Key(run), 20*time.Minute).Err()) // idle for 40 minutes

	opts.KeyTemplate = r.Prefix + redisstream.RunIDPlaceholder
	restarted, err := redisstream.New(r.Client, opts)
	require.NoError(t, err)
	t.Cleanup(func() { restarted.Close() })
	wait := testenv.Context(t, 10*time.Second)
	for h.Len(run) < 8 {
		require.NoError(t, wait.Err(), "the restarted process did not copy the idle stream into the History")
		time.Sleep(20 * time.Millisecond) // polling the History, bounded by wait
	}
}
