package executor_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
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

// The report lists nodes by kind name, then by segment number, so that
// segment[2] comes before segment[10].
func TestReportNaturalOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 120)
		rep, err := l.run(l.executor(executor.Options{}))
		require.NoError(t, err)
		var kinds []string
		for i := range l.g.Kinds() {
			kinds = append(kinds, l.g.KindName(i))
		}
		slices.Sort(kinds)
		var want []string
		for _, k := range kinds {
			ki, _ := l.g.KindIndex(k)
			first, count := l.g.KindNodes(ki)
			for n := first; n < first+graph.Node(count); n++ {
				want = append(want, l.g.NodeID(n))
			}
		}
		assert.Equal(t, want, rep.Generated)
		two := slices.Index(rep.Generated, "asset:video:segment[2]")
		ten := slices.Index(rep.Generated, "asset:video:segment[10]")
		require.True(t, two >= 0 && ten >= 0)
		assert.Less(t, two, ten)
	})
}

// A note sent through a request's reporter after its Generate returned is
// dropped: the worker's reporter may serve another node by then.
func TestNotesAfterReturnDropped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		var mu sync.Mutex
		var kept executor.Reporter
		gen := executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
			mu.Lock()
			switch req.NodeID {
			case "script":
				kept = req.Progress
				req.Progress.Report(executor.Note{Message: "during the call"})
			case "timeline":
				kept.Report(executor.Note{Message: "after the call"})
			}
			mu.Unlock()
			return l.Generate(ctx, req)
		})
		_, err := l.run(l.executor(executor.Options{Generators: l.registry(gen)}))
		require.NoError(t, err)
		kept.Report(executor.Note{Message: "after the run"})
		var msgs []string
		for _, ev := range l.eventsOf(progress.Message) {
			msgs = append(msgs, ev.Node+": "+ev.Message)
		}
		assert.Equal(t, []string{"script: during the call"}, msgs)
	})
}

// Workers reuse a call's state for the next node when the generator never
// asked for ctx.Done. A deadline that falls just as a call returns must
// never cancel the worker's next call: every call here lasts exactly its
// timeout, and none may see its context end before that.
func TestDeadlineAtReturnSparesNextCall(t *testing.T) {
	const timeout = time.Second
	for round := range 5 {
		synctest.Test(t, func(t *testing.T) {
			l := newLab(t, 60)
			var mu sync.Mutex
			var early []string
			gen := executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
				start := time.Now()
				for range 4 {
					time.Sleep(timeout / 4)
					if ctx.Err() != nil { // polled: Done would stop the reuse
						if since := time.Since(start); since < timeout {
							mu.Lock()
							early = append(early, req.NodeID+" after "+since.String())
							mu.Unlock()
						}
						return executor.Asset{}, ctx.Err()
					}
				}
				return executor.Asset{Data: []byte(req.NodeID + strings.Repeat("!", req.Attempt)), Length: 10 * time.Second}, nil
			})
			e := l.executor(executor.Options{Generators: l.registry(gen), Default: executor.KindOptions{
				Timeout: timeout, Retry: executor.RetryPolicy{MaxAttempts: 50, InitialInterval: time.Millisecond}}})
			_, err := l.run(e)
			mu.Lock()
			defer mu.Unlock()
			assert.Empty(t, early, "round %d: calls cancelled before their deadline", round)
			if err != nil {
				// Only deadlines may fail a node here, never anything else.
				var re *executor.RunError
				require.ErrorAs(t, err, &re)
				for _, ne := range re.Failed {
					var te *executor.TimeoutError
					assert.ErrorAs(t, ne, &te)
				}
			}
		})
	}
}

func TestMemoryAssetsReuseDeletedSlots(t *testing.T) {
	ctx := context.Background()
	m := executor.NewMemoryAssets()
	a, err := m.Put(ctx, "a", executor.Asset{Data: []byte("A")})
	require.NoError(t, err)
	b, err := m.Put(ctx, "b", executor.Asset{Data: []byte("B")})
	require.NoError(t, err)
	require.True(t, m.Delete(a))
	c, err := m.Put(ctx, "c", executor.Asset{Data: []byte("C")})
	require.NoError(t, err)
	assert.Equal(t, 2, m.Len())
	for ref, want := range map[string]string{b: "B", c: "C"} {
		got, err := m.Get(ctx, ref)
		require.NoError(t, err)
		assert.Equal(t, want, string(got.Data), ref)
	}
	_, err = m.Get(ctx, a)
	require.ErrorIs(t, err, executor.ErrNotFound)
	ok, err := m.Exists(ctx, a)
	require.NoError(t, err)
	assert.False(t, ok)
	// Putting the deleted key again brings it back, beside the others.
	_, err = m.Put(ctx, "a", executor.Asset{Data: []byte("A2")})
	require.NoError(t, err)
	got, err := m.Get(ctx, a)
	require.NoError(t, err)
	assert.Equal(t, "A2", string(got.Data))
	assert.Equal(t, 3, m.Len())
	// Enough assets to fill several chunks keep their own data.
	for i := range 300 {
		_, err := m.Put(ctx, string(rune('x'+i%3))+strings.Repeat("k", i), executor.Asset{Data: []byte{byte(i)}})
		require.NoError(t, err)
	}
	for i := range 300 {
		got, err := m.Get(ctx, "mem:"+string(rune('x'+i%3))+strings.Repeat("k", i))
		require.NoError(t, err)
		assert.Equal(t, []byte{byte(i)}, got.Data)
	}
}

// Every event carries the run's counts, and the final one counts each
// settled node once, with Converge too; events after the first settled
// node carry an ETA, and so does run.started when kinds have estimates.
func TestEventCountsAndETA(t *testing.T) {
	for _, converge := range []int{0, 1, 2} {
		t.Run(fmt.Sprint("converge ", converge), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, 30)
				gen := executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
					req.Progress.Report(executor.Note{Message: "working"})
					return l.Generate(ctx, req)
				})
				e := l.executor(executor.Options{Generators: l.registry(gen), Converge: converge,
					Default: executor.KindOptions{Estimate: time.Second}})
				_, err := l.run(e)
				require.NoError(t, err)
				final := l.eventsOf(progress.RunFinished)
				require.Len(t, final, 1)
				assert.Equal(t, l.g.Len(), final[0].Total)
				assert.Equal(t, final[0].Total, final[0].Done, "the final event counts each node once")
				started := l.eventsOf(progress.RunStarted)
				require.Len(t, started, 1)
				assert.Positive(t, started[0].ETA, "run.started has the planner's bound")
				msgs := l.eventsOf(progress.Message)
				require.Len(t, msgs, l.g.Len())
				for _, ev := range msgs {
					assert.Equal(t, l.g.Len(), ev.Total, "%s: total", ev.Node)
					assert.LessOrEqual(t, ev.Done, ev.Total, "%s: done", ev.Node)
				}
				for _, typ := range []progress.Type{progress.NodeStarted, progress.Message, progress.StageStarted} {
					for _, ev := range l.eventsOf(typ) {
						if ev.Done > 0 && ev.Done < ev.Total {
							assert.Positive(t, ev.ETA, "%s %s: an ETA once nodes settle", typ, ev.Node)
						}
					}
				}
			})
		})
	}
}

// A convergence round starts with its plan's bound as the ETA (from the
// durations seen so far, or the estimates), not with the last round's 0.
func TestConvergeRoundHasAnETA(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		var e *executor.Executor
		gen := l.onceAt("asset:video:segment[0]", func() {
			_, err := e.Edit(context.Background(), l.g, "lecture", "asset:music")
			assert.NoError(t, err)
		})
		e = l.executor(executor.Options{Generators: l.registry(gen), Converge: 1,
			Default: executor.KindOptions{Estimate: time.Second}})
		rep, err := l.run(e)
		require.NoError(t, err)
		require.Equal(t, 2, rep.Rounds)
		var round []progress.Event
		for _, ev := range l.eventsOf(progress.Message) {
			if strings.HasPrefix(ev.Message, "Round 2") {
				round = append(round, ev)
			}
		}
		require.Len(t, round, 1)
		assert.Positive(t, round[0].ETA, "the second round's bound")
		final := l.eventsOf(progress.RunFinished)
		require.Len(t, final, 1)
		assert.Equal(t, final[0].Total, final[0].Done)
	})
}
