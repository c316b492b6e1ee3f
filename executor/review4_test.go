package executor_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/progress"
)

// Tests from a fourth review of the run loop and its scheduling.

// TestReview4EventInvariants runs lectures with random failures,
// panics, timeouts, bulk calls and cancels, in both modes, and checks
// the events against the report: each planned node settles at most once
// (exactly once unless cancelled), the report's lists are the events',
// Done never goes back and ends at the nodes settled, and each stage
// starts and finishes at most once, in order.
func TestReview4EventInvariants(t *testing.T) {
	for i := range 24 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { review4Stress(t, i) })
		})
	}
}

func review4Stress(t *testing.T, i int) {
	l := newLab(t, 60)
	rng := rand.New(rand.NewPCG(uint64(i), 4))
	var rmu sync.Mutex
	roll := func(n int) int {
		rmu.Lock()
		defer rmu.Unlock()
		return rng.IntN(n)
	}
	ignore := i%3 == 0
	slow := func(ctx context.Context) {
		d := time.Duration(roll(4000)) * time.Millisecond
		if ignore {
			time.Sleep(d)
			return
		}
		select {
		case <-time.After(d):
		case <-ctx.Done():
		}
	}
	single := executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
		slow(ctx)
		switch roll(20) {
		case 0:
			panic("boom")
		case 1:
			return executor.Asset{}, executor.Permanent(errors.New("no"))
		case 2, 3:
			return executor.Asset{}, errors.New("flaky")
		}
		a := executor.Asset{Data: defaultData(req)}
		if req.ID.Kind == graph.KindNarration {
			a.Length = 10 * time.Second
		}
		return a, nil
	})
	b := &batchFunc{lab: l, fn: func(ctx context.Context, reqs []executor.Request) []executor.Outcome {
		slow(ctx)
		if roll(10) == 0 {
			panic("bulk boom")
		}
		out := okOutcomes(reqs)
		for k, r := range reqs {
			if r.ID.Kind == graph.KindNarration {
				out[k].Asset.Length = 10 * time.Second
			}
			if roll(5) == 0 {
				out[k] = executor.Outcome{Err: errors.New("partial")}
			}
		}
		return out
	}}
	reg := l.registry(single)
	bulk := &struct {
		executor.Generator
		*batchFunc
	}{single, b}
	reg[graph.KindImage], reg[graph.KindNarration] = bulk, bulk
	mode := executor.Dataflow
	if i%2 == 1 {
		mode = executor.Staged
	}
	opts := executor.Options{Generators: reg, Mode: mode, Workers: i % 4, Grace: time.Second,
		Default: executor.KindOptions{Timeout: 3 * time.Second,
			Retry: executor.RetryPolicy{InitialInterval: 100 * time.Millisecond, MaxAttempts: 3}}}
	if i%5 == 1 {
		img, err := l.g.Lookup("asset:image:segment[0]")
		require.NoError(t, err)
		key, _ := l.g.BatchKey(l.g.KindOf(img))
		opts.Rates = map[string]executor.Rate{key: {Starts: 2, Per: time.Second}}
		opts.Limits = map[string]int{key: 2}
	}
	e := l.executor(opts)
	if i%3 == 1 {
		time.AfterFunc(time.Duration(roll(8000))*time.Millisecond, func() {
			_, err := e.Edit(context.Background(), l.g, "lecture", "asset:image:segment[1]", "script")
			assert.NoError(t, err)
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if i%4 == 2 {
		time.AfterFunc(time.Duration(roll(10000))*time.Millisecond, cancel)
	}
	run, err := e.Start(ctx, executor.RunRequest{GraphKey: "lecture", Graph: l.g})
	require.NoError(t, err)
	rep, err := run.Wait()
	require.NotNil(t, rep)
	cancelled := rep.Record.Status == executor.RunCancelled
	if !cancelled && rep.Record.Status == executor.RunFailed {
		var re *executor.RunError
		require.ErrorAs(t, err, &re)
	}
	plan := run.Plan()

	l.mu.Lock()
	evs := slices.Clone(l.events)
	l.mu.Unlock()
	settledBy := map[string]progress.Type{}
	byType := map[progress.Type][]string{}
	lastDone := 0
	stageStarted, stageFinished := map[int]bool{}, map[int]bool{}
	lastFinished := -1
	started := map[string]bool{} // nodes that got node.started
	for _, ev := range evs {
		require.GreaterOrEqual(t, ev.Done, lastDone, "Done went back at %+v", ev)
		lastDone = ev.Done
		// The order the package doc promises a node's events.
		if ev.Node != "" {
			_, settled := settledBy[ev.Node]
			require.False(t, settled, "event after node %s settled: %+v", ev.Node, ev)
		}
		switch ev.Type {
		case progress.NodeStarted:
			require.False(t, started[ev.Node], "node %s started twice", ev.Node)
			require.True(t, stageStarted[ev.Stage], "node %s started before its stage %d", ev.Node, ev.Stage)
			require.Equal(t, 1, ev.Attempt, "node.started of %s", ev.Node)
			started[ev.Node] = true
		case progress.NodeRetrying, progress.Message:
			require.True(t, started[ev.Node], "%s of node %s before node.started", ev.Type, ev.Node)
		}
		switch ev.Type {
		case progress.NodeSucceeded, progress.NodeSuperseded, progress.NodeCancelled:
			require.True(t, started[ev.Node], "%s of node %s, which never started", ev.Type, ev.Node)
		case progress.NodeUnchanged, progress.NodeSkipped:
			require.False(t, started[ev.Node], "%s of node %s, which started", ev.Type, ev.Node)
		}
		switch ev.Type {
		case progress.NodeSucceeded, progress.NodeUnchanged, progress.NodeFailed, progress.NodeSkipped,
			progress.NodeSuperseded, progress.NodeCancelled:
			prev, twice := settledBy[ev.Node]
			require.False(t, twice, "node %s settled twice: %s then %s", ev.Node, prev, ev.Type)
			settledBy[ev.Node] = ev.Type
			byType[ev.Type] = append(byType[ev.Type], ev.Node)
		case progress.StageStarted:
			require.False(t, stageStarted[ev.Stage], "stage %d started twice", ev.Stage)
			stageStarted[ev.Stage] = true
		case progress.StageFinished:
			require.False(t, stageFinished[ev.Stage], "stage %d finished twice", ev.Stage)
			require.True(t, stageStarted[ev.Stage], "stage %d finished before it started", ev.Stage)
			require.Equal(t, lastFinished+1, ev.Stage, "stages finish in order")
			lastFinished = ev.Stage
			stageFinished[ev.Stage] = true
		}
	}
	last := evs[len(evs)-1]
	require.True(t, last.Type.Final(), "last event %+v", last)
	assert.Equal(t, len(settledBy), last.Done, "final Done")
	if !cancelled {
		assert.Equal(t, plan.Len(), len(settledBy), "every planned node settles once")
		assert.Len(t, stageFinished, len(plan.Stages), "every stage finishes")
	}
	same := func(want []string, typ progress.Type) {
		t.Helper()
		got := slices.Clone(byType[typ])
		slices.Sort(got)
		want = slices.Clone(want)
		slices.Sort(want)
		if len(want) == 0 {
			want = nil
		}
		assert.Equal(t, want, got, "%s", typ)
	}
	same(rep.Generated, progress.NodeSucceeded)
	same(rep.Unchanged, progress.NodeUnchanged)
	same(rep.Failed, progress.NodeFailed)
	same(rep.Skipped, progress.NodeSkipped)
	same(rep.Superseded, progress.NodeSuperseded)
	same(rep.Cancelled, progress.NodeCancelled)
	// A skipped node depends, directly or not, on a failed one.
	failedSet := map[graph.Node]bool{}
	for _, id := range append(append(slices.Clone(rep.Failed), rep.Superseded...), "asset:image:segment[1]", "script") {
		n, err := l.g.Lookup(id)
		require.NoError(t, err)
		failedSet[n] = true
	}
	for _, id := range rep.Skipped {
		n, err := l.g.Lookup(id)
		require.NoError(t, err)
		assert.True(t, dependsOnAny(l.g, n, failedSet), "%s skipped, but no upstream failed", id)
	}
}

func dependsOnAny(g *graph.Graph, n graph.Node, set map[graph.Node]bool) bool {
	for _, d := range g.Deps(n) {
		if set[d] || dependsOnAny(g, d, set) {
			return true
		}
	}
	return false
}

// A cancelled run whose generator ignores its context gives its calls'
// room under Options.Limits back at once: a run on another key that
// shares the limit goes on while the hung call still runs.
func TestReview4CancelFreesSharedLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 10)
		img, err := l.g.Lookup("asset:image:segment[0]")
		require.NoError(t, err)
		key, _ := l.g.BatchKey(l.g.KindOf(img))
		release := make(chan struct{})
		var hung sync.Once
		gen := executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
			if req.ID.Kind == graph.KindImage && req.GraphKey == "a" {
				first := false
				hung.Do(func() { first = true })
				if first {
					<-release // ignores ctx
				}
			}
			return l.Generate(ctx, req)
		})
		e := l.executor(executor.Options{Generators: l.registry(gen), Limits: map[string]int{key: 1},
			Grace: time.Second})
		ctx, cancel := context.WithCancel(context.Background())
		a, err := e.Start(ctx, executor.RunRequest{GraphKey: "a", Graph: l.g})
		require.NoError(t, err)
		time.Sleep(time.Minute) // the image call hangs, holding the limit
		cancel()
		_, err = a.Wait()
		require.ErrorIs(t, err, executor.ErrCancelled)
		rep, err := e.Run(context.Background(), executor.RunRequest{GraphKey: "b", Graph: l.g})
		require.NoError(t, err)
		assert.Contains(t, rep.Generated, "asset:image:segment[0]")
		close(release)
	})
}
