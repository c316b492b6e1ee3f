package redisstream_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/redisstream"
	"github.com/regengraph/regen/progress/sinktest"
)

// A callback's error ends Replay and Tail, which return it as it is,
// whether the event came from Redis or from the History, as
// progress.Source says. Before, an event read from the History (the
// run's stream gone, or a fill) brought the callback's error back
// wrapped ("redisstream: replay ...", "redisstream: tail ..."), one
// read from Redis bare.
func TestCallbackErrorComesBackAsItIs(t *testing.T) {
	stop := errors.New("the reader stops here")
	for _, tc := range readerCases {
		t.Run(tc.name, func(t *testing.T) {
			hist := progress.NewMemoryHistory()
			s, _ := newStream(t, redisstream.Options{History: hist})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			run := sinktest.RunID(t)
			read := tc.reader(ctx, t, s, hist, run)
			var got []uint64
			err := read(ctx, run, 0, func(e progress.Event) error {
				got = append(got, e.Seq)
				return stop
			})
			assert.Equal(t, stop, err)
			assert.Equal(t, []uint64{1}, got)
		})
	}
}

// readerCase is a reader of a run whose events 1..3 the History holds,
// and Redis too where inRedis: the Stream's Replay, or its Tail where
// tail.
type readerCase struct {
	name    string
	inRedis bool
	tail    bool
}

// readerCases are the four readerCases: Replay and Tail, each of a run
// in Redis and of one in the History alone.
var readerCases = []readerCase{
	{"replay from redis", true, false},
	{"replay from the history", false, false},
	{"tail from redis", true, true},
	{"tail from the history", false, true},
}

// reader appends events 1..3 of run to h, and publishes them to s too
// where c.inRedis, within ctx; it returns s's Replay, or its Tail where
// c.tail.
func (c readerCase) reader(ctx context.Context, t *testing.T, s *redisstream.Stream, h progress.History, run string) func(context.Context, string, uint64, func(progress.Event) error) error {
	t.Helper()
	events := sinktest.Events(run, 1, 3)
	require.NoError(t, h.Append(ctx, events...))
	if c.inRedis {
		require.NoError(t, s.Publish(ctx, events...))
	}
	if c.tail {
		return s.Tail
	}
	return s.Replay
}
