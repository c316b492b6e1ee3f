package executor_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/progress"
)

// slowPuts is an asset store whose Put takes a while (an upload) and
// honours its context.
type slowPuts struct {
	*executor.MemoryAssets
	took time.Duration
}

func (s slowPuts) Put(ctx context.Context, key string, a executor.Asset) (string, error) {
	t := time.NewTimer(s.took)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	return s.MemoryAssets.Put(ctx, key, a)
}

// A result that its generator returned is stored and committed even when
// the run is cancelled during its upload: it was paid for, and a Resume
// does not make it again (an embedder's review found 10 of 11 such
// results thrown away and paid for twice).
func TestCancelDuringUploadKeepsTheResult(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		assets := slowPuts{MemoryAssets: l.assets, took: 5 * time.Second}
		e, err := executor.New(executor.Options{Generators: l.registry(l), States: l.states, Assets: assets,
			Runs: l.runs, Sink: l})
		require.NoError(t, err)
		r, err := e.Start(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g})
		require.NoError(t, err)
		time.Sleep(22 * time.Second) // the script returned at 20 s; its upload ends at 25 s
		r.Cancel()
		rep, err := r.Wait()
		require.ErrorIs(t, err, executor.ErrCancelled)
		assert.Equal(t, []string{"script"}, rep.Generated)
		assert.NotContains(t, rep.Cancelled, "script")
		l.resetCalls()
		r2, err := e.Resume(context.Background(), l.g, r.ID())
		require.NoError(t, err)
		_, err = r2.Wait()
		require.NoError(t, err)
		assert.Zero(t, l.calls["script"], "the script was made once")
		require.NoError(t, e.Close(context.Background()))
	})
}

// A generator's context ends when its call returns, so a goroutine that
// the generator started to watch it ends too; before, it never did, one
// goroutine leaked a call.
func TestCallContextEndsWithTheCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, err := graph.Build(graph.Lecture(), 30)
		require.NoError(t, err)
		var watching atomic.Int64
		gen := executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
			watching.Add(1)
			go func() {
				<-ctx.Done()
				watching.Add(-1)
			}()
			return executor.Asset{Data: []byte(req.IdempotencyKey), Length: graph.SegmentLength}, nil
		})
		reg := registryFor(g, gen)
		e, err := executor.New(executor.Options{Generators: reg})
		require.NoError(t, err)
		_, err = e.Run(context.Background(), executor.RunRequest{GraphKey: "l", Graph: g})
		require.NoError(t, err)
		require.NoError(t, e.Close(context.Background()))
		synctest.Wait()
		assert.Zero(t, watching.Load(), "watchers of call contexts still waiting")
	})
}

// The Done count of a run's events never goes back, notes from
// generators included, which read it outside the run's lock.
func TestEventsDoneNeverGoesBack(t *testing.T) {
	g, err := graph.Build(graph.Lecture(), 600)
	require.NoError(t, err)
	gen := executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
		req.Progress.Report(executor.Note{Message: "working"})
		return executor.Asset{Data: []byte(req.IdempotencyKey), Length: graph.SegmentLength}, nil
	})
	reg := registryFor(g, gen)
	sink := progress.NewMemory(progress.MemoryOptions{})
	e, err := executor.New(executor.Options{Generators: reg, Sink: sink})
	require.NoError(t, err)
	for i := range 20 {
		rep, err := e.Run(t.Context(), executor.RunRequest{GraphKey: fmt.Sprint("l", i), Graph: g})
		require.NoError(t, err)
		done, n := 0, 0
		require.NoError(t, sink.Replay(t.Context(), rep.Record.ID, 0, func(ev progress.Event) error {
			n++
			if ev.Done < done {
				return fmt.Errorf("run %d: event %d (%s %s) has Done %d after %d", i, ev.Seq, ev.Type, ev.Node, ev.Done, done)
			}
			done = ev.Done
			return nil
		}))
		require.Equal(t, done, g.Len(), "the final event counts every node")
	}
	require.NoError(t, e.Close(t.Context()))
}

// A validator's panic is a PanicError that says the validator panicked.
func TestValidatorPanicSaysSo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 10)
		e := l.executor(executor.Options{Kinds: map[string]executor.KindOptions{
			graph.KindMusic: {Validate: func(executor.Request, executor.Asset) error { panic("boom") }},
		}})
		_, err := l.run(e)
		var pe *executor.PanicError
		require.ErrorAs(t, err, &pe)
		assert.Equal(t, "validator", pe.In)
		assert.ErrorContains(t, err, "validator panicked: boom")
	})
}

// A note sent as its call returns goes out before the node's end event,
// or not at all: a UI never sees a message for a node after it ended.
func TestNoNoteAfterTheNodeEnded(t *testing.T) {
	g, err := graph.Build(graph.Lecture(), 300)
	require.NoError(t, err)
	var wg sync.WaitGroup
	gen := executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
		wg.Add(1)
		sending := make(chan struct{})
		go func() { // notes racing the return
			defer wg.Done()
			for i := range 200 {
				req.Progress.Report(executor.Note{Message: "late"})
				if i == 0 {
					close(sending)
				}
			}
		}()
		<-sending
		return executor.Asset{Data: []byte(req.IdempotencyKey), Length: graph.SegmentLength}, nil
	})
	sink := progress.NewMemory(progress.MemoryOptions{Capacity: 1 << 20})
	e, err := executor.New(executor.Options{Generators: registryFor(g, gen), Sink: sink})
	require.NoError(t, err)
	for i := range 5 {
		rep, err := e.Run(t.Context(), executor.RunRequest{GraphKey: fmt.Sprint("l", i), Graph: g})
		require.NoError(t, err)
		wg.Wait()
		ended := map[string]uint64{}
		require.NoError(t, sink.Replay(t.Context(), rep.Record.ID, 0, func(ev progress.Event) error {
			switch {
			case ev.Type == progress.NodeSucceeded:
				ended[ev.Node] = ev.Seq
			case ev.Type == progress.Message && ended[ev.Node] != 0:
				return fmt.Errorf("run %d: note %d for %s after its end event %d", i, ev.Seq, ev.Node, ended[ev.Node])
			}
			return nil
		}))
	}
	require.NoError(t, e.Close(t.Context()))
}
