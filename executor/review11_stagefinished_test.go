package executor_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/progress"
)

// stallVideo is a bulk generator whose video calls wait for their
// context to end; the lecture's "k" video calls then take a moment to
// return what they have (nothing), within the bulk call's grace.
type stallVideo struct{ started chan string }

func (s stallVideo) Generate(ctx context.Context, req executor.Request) (executor.Asset, error) {
	a := executor.Asset{Data: defaultData(req)}
	if req.ID.Kind == graph.KindNarration {
		a.Length = 10 * time.Second
	}
	if req.ID.Kind == graph.KindMusic {
		return executor.Asset{}, executor.Permanent(errors.New("no music"))
	}
	if req.ID.Kind != graph.KindVideo {
		return a, nil
	}
	s.started <- req.GraphKey
	<-ctx.Done()
	if req.GraphKey == "k" {
		time.Sleep(100 * time.Millisecond)
	}
	return executor.Asset{}, ctx.Err()
}

func (s stallVideo) GenerateBatch(ctx context.Context, reqs []executor.Request) []executor.Outcome {
	out := make([]executor.Outcome, len(reqs))
	for i, req := range reqs {
		out[i].Asset, out[i].Err = s.Generate(ctx, req)
	}
	return out
}

// A cancel that lets a stage's node go unstarted (it waited for room
// under Options.Limits, held by another run) while another node of the
// stage was in a bulk call, which returns in its grace, after the
// unstarted one was let go: the stage has not finished, as one of its
// nodes never settled, so it gets no stage.finished (the package doc's
// Progress). It got one, its StageDone 1 of its StageTotal 2, as the
// scheduling machine counts the node let go as settled. Nor does the
// timeline's stage after it, whose one node was skipped (the music
// failed) before the cancel: stages finish in order.
func TestReview11CancelLeavesUnfinishedStageWithoutStageFinished(t *testing.T) {
	defer goleak.VerifyNone(t)
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		short, err := graph.Build(graph.Lecture(), 10)
		require.NoError(t, err)
		g, err := graph.Build(graph.Lecture(), 20)
		require.NoError(t, err)
		gen := stallVideo{started: make(chan string, 4)}
		mem := progress.NewMemory(progress.MemoryOptions{})
		e, err := executor.New(executor.Options{Generators: registryFor(g, gen), Sink: mem, MaxBatch: 1,
			Limits: map[string]int{graph.KindVideo: 2}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		require.NoError(t, err)
		defer func() { require.NoError(t, e.Close(ctx)) }()

		// Run "k2" holds one of the two video calls the limit allows.
		other, err := e.Start(ctx, executor.RunRequest{GraphKey: "k2", Graph: short})
		require.NoError(t, err)
		require.Equal(t, "k2", <-gen.started)
		r, err := e.Start(ctx, executor.RunRequest{GraphKey: "k", Graph: g})
		require.NoError(t, err)
		require.Equal(t, "k", <-gen.started) // one video node in its call
		synctest.Wait()                      // the other waits for room
		r.Cancel()
		rep, err := r.Wait()
		require.ErrorIs(t, err, executor.ErrCancelled)
		require.Len(t, rep.Cancelled, 1)
		other.Cancel()
		other.Wait()

		var evs []progress.Event
		require.NoError(t, mem.Replay(ctx, r.ID(), 0, func(ev progress.Event) error { evs = append(evs, ev); return nil }))
		n, err := g.Lookup(graph.ID{Kind: graph.KindVideo, Segment: 0}.String())
		require.NoError(t, err)
		video, _ := r.Plan().StageOf(n)
		skipped := false
		for _, ev := range evs {
			skipped = skipped || ev.Type == progress.NodeSkipped && ev.Node == graph.KindTimeline
			if ev.Stage < video {
				continue
			}
			require.NotEqual(t, progress.StageFinished, ev.Type,
				"stage %d finished with %d of its %d nodes settled, the video stage unfinished: %+v", ev.Stage, ev.StageDone, ev.StageTotal, ev)
		}
		require.True(t, skipped, "the timeline was skipped")
		require.Equal(t, progress.NodeCancelled, evs[len(evs)-2].Type)
		require.Equal(t, progress.RunCancelled, evs[len(evs)-1].Type)
	})
}
