package pgstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/internal/testenv"
)

// A run that a pass resumed and that is still running at the next pass
// is not resumed twice: its record says running, but its key is locked
// by the resuming run's lock, so the next pass skips it, and the key has
// the run left behind and its one resume only. The pass said
// SkippedLocked, as of a run of another live process: a host's metric of
// the runs that other processes hold counted this process's own; it
// says SkippedRunningHere.
func TestMaintainNextPassSkipsTheRunItResumed(t *testing.T) {
	t.Parallel() // its own schema
	s, _ := newStore(t)
	ctx := testenv.Context(t, 60*time.Second)
	g := build(t, 30)
	key := testenv.UniqueName(t)
	leftRunning(t, ctx, s, "dead", key, g, time.Now().Add(-time.Minute))
	slow := newProvider()
	started, release := slow.holdKind(graph.KindVideo)
	e := newExecutor(t, s, slow.registry())
	passes, stop := maintaining(t, ctx, s, e, pgstore.MaintainOptions{Every: time.Millisecond})
	p := next(t, ctx, passes)
	require.NoError(t, p.Err)
	require.Equal(t, []outcome{{"dead", pgstore.Resumed}}, outcomes(p.LeftRunning))
	resuming := p.LeftRunning[0].Run
	select {
	case <-started:
	case <-ctx.Done():
		t.Fatal("the resumed run did not start its videos")
	}
	for range 3 {
		p = next(t, ctx, passes)
		require.NoError(t, p.Err)
		assert.Equal(t, []outcome{{resuming.ID(), pgstore.SkippedRunningHere}}, outcomes(p.LeftRunning),
			"the run resumed, still running here")
		assert.Zero(t, p.Count(pgstore.SkippedLocked))
	}
	close(release)
	rep, err := resuming.Wait()
	require.NoError(t, err)
	assert.Equal(t, executor.RunSucceeded, rep.Record.Status)
	require.ErrorIs(t, stop(context.Canceled), context.Canceled)
	runs, err := s.ListRuns(ctx, key)
	require.NoError(t, err)
	assert.Len(t, runs, 2, "the run left behind and its one resume")
}

// Two processes that run Maintain on one schema at once, each with its
// pool and executor, resume each run left running and each run cut by
// a shutdown once, between them.
func TestMaintainTwoProcessesAtOnce(t *testing.T) {
	t.Parallel() // its own schema
	_, pg := newStore(t)
	ctx := testenv.Context(t, 120*time.Second)
	g := build(t, 10)
	name := testenv.UniqueName(t)
	type process struct {
		s      *pgstore.Store
		passes <-chan pgstore.Pass
		stop   func(error) error
	}
	var procs [2]process
	for i := range procs {
		s, _ := otherProcess(t, pg, pgx.QueryExecModeCacheStatement)
		e := newExecutor(t, s, newProvider().registry())
		procs[i].s = s
		procs[i].passes, procs[i].stop = maintaining(t, ctx, s, e, pgstore.MaintainOptions{Every: time.Millisecond,
			ResumeCodes: []string{"shutdown"}})
	}
	const runs = 6
	base := time.Now().Add(-time.Hour)
	var keys []string
	for i := range runs {
		k := fmt.Sprintf("%s-%d", name, i)
		keys = append(keys, k)
		if i%2 == 0 {
			leftRunning(t, ctx, procs[0].s, fmt.Sprintf("r%d", i), k, g, base.Add(time.Duration(i)*time.Second))
		} else {
			cancelledRun(t, ctx, procs[0].s, fmt.Sprintf("r%d", i), k, "shutdown", g, base.Add(time.Duration(i)*time.Second))
		}
	}
	resumed := map[string]int{}
	var waits []pgstore.Recovery
	done := func() bool { // each key's newest record ended well
		for _, k := range keys {
			recs, err := procs[0].s.ListRuns(ctx, k)
			require.NoError(t, err)
			if len(recs) < 2 || recs[len(recs)-1].Status != executor.RunSucceeded {
				return false
			}
		}
		return true
	}
	take := func(p pgstore.Pass) {
		require.NoError(t, p.Err)
		for _, r := range append(p.LeftRunning, p.Cancelled...) {
			switch r.Outcome {
			case pgstore.Resumed:
				resumed[r.Record.ID]++
				waits = append(waits, r)
			case pgstore.SkippedLocked, pgstore.SkippedNotRunning, pgstore.SkippedSuperseded, pgstore.SkippedRunningHere:
			default:
				t.Errorf("run %s: %v: %v", r.Record.ID, r.Outcome, r.Err)
			}
		}
	}
	for !done() {
		select {
		case p := <-procs[0].passes:
			take(p)
		case p := <-procs[1].passes:
			take(p)
		case <-ctx.Done():
			t.Fatalf("the runs were not all resumed: %v", context.Cause(ctx))
		}
	}
	// A pass that resumed a run may report it after the run ended: take
	// each process's passes until one that began after every run had
	// ended, which resumed nothing; a process reports its passes in turn.
	ended := time.Now()
	for i := range procs {
		for {
			p := next(t, ctx, procs[i].passes)
			take(p)
			if p.Started.After(ended) {
				break
			}
		}
	}
	for _, r := range waits {
		_, err := r.Wait()
		require.NoError(t, err)
	}
	for i := range procs {
		require.ErrorIs(t, procs[i].stop(context.Canceled), context.Canceled)
	}
	for i, k := range keys {
		assert.Equal(t, 1, resumed[fmt.Sprintf("r%d", i)], "resumes of run r%d", i)
		recs, err := procs[0].s.ListRuns(ctx, k)
		require.NoError(t, err)
		assert.Len(t, recs, 2, "key %s: the run and its one resume", k)
	}
}
