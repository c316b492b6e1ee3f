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
	for _, tc := range []struct {
		name    string
		inRedis bool
		tail    bool
	}{
		{"replay from redis", true, false},
		{"replay from the history", false, false},
		{"tail from redis", true, true},
		{"tail from the history", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hist := progress.NewMemoryHistory()
			s, _ := newStream(t, redisstream.Options{History: hist})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			run := sinktest.RunID(t)
			events := sinktest.Events(run, 1, 3)
			require.NoError(t, hist.Append(ctx, events...))
			if tc.inRedis {
				require.NoError(t, s.Publish(ctx, events...))
			}
			read := s.Replay
			if tc.tail {
				read = s.Tail
			}
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
