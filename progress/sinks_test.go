package progress_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/internal/testenv"
	"github.com/regengraph/regen/progress"
)

func TestSlog(t *testing.T) {
	tests := []struct {
		name  string
		opts  progress.SlogOptions
		event progress.Event
		want  string
	}{
		{
			name: "node event",
			event: progress.Event{RunID: "r", GraphKey: "g", Seq: 3, Type: progress.NodeFailed, Node: "video:segment[2]", Kind: "video", BatchKey: "video",
				Round: 2, Stage: 1, StageDone: 2, StageTotal: 3, BatchDone: 1, BatchTotal: 3, Attempt: 3, Error: "boom", Done: 4, Total: 9, ETA: 2 * time.Second},
			want: "level=INFO msg=node.failed runId=r seq=3 graphKey=g node=video:segment[2] kind=video batchKey=video round=2 stage=1 stageDone=2 stageTotal=3 batchDone=1 batchTotal=3 attempt=3 error=boom done=4 total=9 eta=2s\n",
		},
		{
			// Non-empty, as the JSON form's etaMs, which writes it: an
			// emitter's bug shows in the log too.
			name:  "a negative ETA",
			event: progress.Event{RunID: "r", Seq: 5, Type: progress.Message, Stage: progress.NoStage, Total: 9, ETA: -1500 * time.Millisecond},
			want:  "level=INFO msg=message runId=r seq=5 done=0 total=9 eta=-1.5s\n",
		},
		{
			name:  "a stage's start: stageDone 0 left out",
			event: progress.Event{RunID: "r", Seq: 2, Type: progress.StageStarted, Round: 1, Stage: 0, StageTotal: 1, Message: "Stage 0: Generating 1 script node", Total: 9},
			want:  "level=INFO msg=stage.started runId=r seq=2 round=1 stage=0 stageTotal=1 message=\"Stage 0: Generating 1 script node\" done=0 total=9\n",
		},
		{
			name:  "run event at a chosen level",
			opts:  progress.SlogOptions{Level: slog.LevelWarn},
			event: progress.Event{RunID: "r", Seq: 9, Type: progress.RunFailed, Stage: progress.NoStage, Message: "2 nodes failed"},
			want:  "level=WARN msg=run.failed runId=r seq=9 message=\"2 nodes failed\" done=0 total=0\n",
		},
		{
			name: "a run's final event with its counts",
			event: progress.Event{RunID: "r", Seq: 12, Type: progress.RunFailed, Stage: progress.NoStage, Done: 4, Total: 4,
				Counts: &progress.Counts{Generated: 1, Unchanged: 1, Failed: 1, Skipped: 1}},
			want: "level=INFO msg=run.failed runId=r seq=12 done=4 total=4 counts.generated=1 counts.unchanged=1 counts.failed=1 counts.skipped=1 counts.superseded=0 counts.cancelled=0 counts.dirty=0\n",
		},
		{
			name: "a drained run's final event: its cancel code and what it left dirty",
			event: progress.Event{RunID: "r", Seq: 13, Type: progress.RunCancelled, Stage: progress.NoStage, Done: 2, Total: 4,
				CancelledBy: "drain", Counts: &progress.Counts{Generated: 2, Cancelled: 1, Dirty: 2}},
			want: "level=INFO msg=run.cancelled runId=r seq=13 done=2 total=4 counts.generated=2 counts.unchanged=0 counts.failed=0 counts.skipped=0 counts.superseded=0 counts.cancelled=1 counts.dirty=2 cancelledBy=drain\n",
		},
		{
			name: "run.started with the outline of its plan",
			event: progress.Event{RunID: "r", Seq: 1, Type: progress.RunStarted, Stage: progress.NoStage, Total: 5,
				Plan: &progress.Outline{Stages: []progress.OutlineStage{
					{Nodes: 1, Groups: []progress.OutlineGroup{{Kind: "script", Nodes: 1}}},
					{Nodes: 4, Groups: []progress.OutlineGroup{{Kind: "asset:image", BatchKey: "asset:image", Nodes: 3, Concurrency: 5},
						{Kind: "asset:music", Nodes: 1}}},
				}}},
			want: "level=INFO msg=run.started runId=r seq=1 done=0 total=5 plan.stages=2 plan.groups=3\n",
		},
		{
			name:  "the final event of a run found interrupted",
			event: progress.Event{RunID: "r", Seq: 4, Type: progress.RunCancelled, Stage: progress.NoStage, Message: "interrupted", Done: 2, Total: 9, ResumedBy: "r2"},
			want:  "level=INFO msg=run.cancelled runId=r seq=4 message=interrupted done=2 total=9 resumedBy=r2\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			h := slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: dropTime})
			require.NoError(t, progress.NewSlog(slog.New(h), tt.opts).Publish(context.Background(), tt.event))
			assert.Equal(t, tt.want, buf.String())
		})
	}
}

func TestSlogBelowLevelWritesNothing(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	require.NoError(t, progress.NewSlog(logger, progress.SlogOptions{}).Publish(context.Background(), progress.Event{RunID: "r", Seq: 1}))
	assert.Empty(t, buf.String())
}

func dropTime(_ []string, a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}

func TestFanout(t *testing.T) {
	ctx := context.Background()
	a, c := progress.NewMemory(progress.MemoryOptions{}), progress.NewMemory(progress.MemoryOptions{})
	failing := progress.SinkFunc(func(context.Context, ...progress.Event) error { return errors.New("down") })
	f := progress.NewFanout(a, failing, c)
	err := f.Publish(ctx, progress.Event{RunID: "r", Seq: 1, Type: progress.RunStarted})
	assert.EqualError(t, err, "sink 1: down")
	assert.Equal(t, 1, a.Stats().Events, "sink 0 got the event")
	assert.Equal(t, 1, c.Stats().Events, "sink 2 got the event despite sink 1's failure")
	assert.NoError(t, progress.NewFanout().Publish(ctx, progress.Event{RunID: "r", Seq: 1}))
	assert.Panics(t, func() { progress.NewFanout(nil) })
}

// A sink that panics fails alone, like one that returns an error: the
// sinks after it still get the event, and the panic is its error.
func TestFanoutSinkPanics(t *testing.T) {
	ctx := context.Background()
	a, c := progress.NewMemory(progress.MemoryOptions{}), progress.NewMemory(progress.MemoryOptions{})
	f := progress.NewFanout(a, panicky{}, c)
	var err error
	assert.NotPanics(t, func() { err = f.Publish(ctx, progress.Event{RunID: "r", Seq: 1, Type: progress.RunStarted}) })
	assert.EqualError(t, err, "sink 1: sink panicked: sink bug")
	assert.Equal(t, 1, a.Stats().Events, "sink 0 got the event")
	assert.Equal(t, 1, c.Stats().Events, "sink 2 got the event despite sink 1's panic")
}

// A nil logger is slog's default one.
func TestSlogNilLoggerIsTheDefault(t *testing.T) {
	buf := testenv.DefaultLog(t)
	require.NoError(t, progress.NewSlog(nil, progress.SlogOptions{}).Publish(context.Background(),
		progress.Event{RunID: "r", Seq: 1, Type: progress.RunStarted}))
	assert.Contains(t, buf.String(), "msg=run.started runId=r seq=1")
}
