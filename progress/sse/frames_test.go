package sse_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/sse"
)

// versions is a Source whose every Tail delivers events 1 to 3 of the run
// asked for, with a message that names the run and the Tail's number (as
// a host that reused a run ID would), then waits for the client to leave.
type versions struct{ tails atomic.Int32 }

func (v *versions) events(runID string, tail int32) []progress.Event {
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	var out []progress.Event
	for seq := uint64(1); seq <= 3; seq++ {
		out = append(out, progress.Event{RunID: runID, Seq: seq, Time: t0, Type: progress.NodeSucceeded, Node: "n",
			Stage: progress.NoStage, Message: fmt.Sprintf("%s, tail %d", runID, tail)})
	}
	return out
}

func (v *versions) Replay(context.Context, string, uint64, func(progress.Event) error) error {
	return nil
}

func (v *versions) Tail(ctx context.Context, runID string, after uint64, fn func(progress.Event) error) error {
	for _, e := range v.events(runID, v.tails.Add(1)) {
		if err := fn(e); err != nil {
			return err
		}
	}
	<-ctx.Done()
	return context.Cause(ctx)
}

// The handler shares each event's encoding among its streams, but a
// stream never gets another run's event, nor an earlier version of an
// event with the same run ID and Seq: each stream here gets the frames of
// the events its own Tail delivered.
func TestHandlerFramesAreTheStreamsOwn(t *testing.T) {
	src := &versions{}
	h, err := sse.NewHandler(src, sse.HandlerOptions{Authorize: byPath, Logger: quiet()})
	require.NoError(t, err)
	server := httptest.NewServer(h)
	t.Cleanup(server.Close)
	for i, run := range []string{"r1", "r2", "r1", "r1", "r2"} {
		s := openRaw(t, server.URL+"/runs/"+run, nil)
		got := s.lines(t, 2+3*3)
		want := []string{"retry: 3000", ""}
		for _, e := range src.events(run, int32(i+1)) {
			want = append(want, frame(t, e)...)
		}
		require.Equal(t, want, got, "stream %d, of run %s:\n%s", i+1, run, strings.Join(got, "\n"))
	}
}
