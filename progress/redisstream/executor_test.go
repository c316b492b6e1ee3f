package redisstream_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/internal/fake"
	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/sinktest"
)

// lectureRun runs a 60-second lecture through the real executor,
// publishing to sink. hook runs once the run has settled half its nodes.
func lectureRun(t *testing.T, sink progress.Sink, runID string, hook func()) *executor.Report {
	t.Helper()
	g, err := graph.Build(graph.Lecture(), 60)
	require.NoError(t, err)
	f := fake.New(fake.Options{Seed: 3, Default: 2 * time.Millisecond})
	var once sync.Once
	hooked := progress.SinkFunc(func(ctx context.Context, evs ...progress.Event) error {
		for _, e := range evs {
			if hook != nil && e.Total > 0 && e.Done >= e.Total/2 {
				once.Do(hook)
			}
		}
		return sink.Publish(ctx, evs...)
	})
	e, err := executor.New(executor.Options{Generators: f.Registry(), Sink: hooked})
	require.NoError(t, err)
	rep, err := e.Run(context.Background(), executor.RunRequest{GraphKey: runID, Graph: g, RunID: runID})
	require.NoError(t, err, "a progress outage never fails the run")
	require.Len(t, rep.Generated, g.Len())
	return rep
}

// requireWholeRun checks a run's events: 1..N without a gap, run.started
// first and run.finished last.
func requireWholeRun(t *testing.T, got []progress.Event) {
	t.Helper()
	require.NotEmpty(t, got)
	assert.Equal(t, sinktest.Span(1, uint64(len(got))), sinktest.Seqs(got))
	assert.Equal(t, progress.RunStarted, got[0].Type)
	assert.Equal(t, progress.RunFinished, got[len(got)-1].Type)
}

func TestExecutorRunWithRedisDownAtStart(t *testing.T) {
	p := newPrivateStream(t)
	p.server.Kill()
	run := sinktest.RunID(t)
	lectureRun(t, p.sink, run, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, p.buffered.Close(ctx))
	bs := p.buffered.Stats()
	assert.Positive(t, bs.Errors)
	assert.Zero(t, bs.Published)
	assert.Positive(t, bs.Fallback, "the events went to the slog fallback")
	assert.Contains(t, p.logs.String(), "msg=run.finished")

	// Redis comes back empty; a reader gets the whole run from the archive.
	p.server.Restart()
	requireWholeRun(t, sinktest.Replay(t, p.stream, run, 0))
}

func TestExecutorRunWithRedisRestartMidRun(t *testing.T) {
	p := newPrivateStream(t)
	run := sinktest.RunID(t)
	tl := sinktest.StartTail(t, p.stream, run, 0)
	lectureRun(t, p.sink, run, func() {
		p.server.Kill()
		p.server.Restart()
	})
	require.NoError(t, p.buffered.Flush(context.Background()))
	n := p.history.Len(run)
	got := tl.Next(t, n)
	tl.Stop(t, context.Canceled)
	requireWholeRun(t, got)
	// Publishing resumed after the restart.
	assert.Positive(t, p.buffered.Stats().Published)
}
