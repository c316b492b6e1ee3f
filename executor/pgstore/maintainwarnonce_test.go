package pgstore_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/internal/testenv"
)

// A run whose graphOf kept failing (no template of the host builds its
// graph any more, say) was warned of at every pass, every Every, for as
// long as the process lived: log noise that buried the other warnings.
// It is now warned of once, and again only after a pass in which its
// graphOf succeeded; the passes in between log it at debug level.
func TestMaintainWarnsOnceOfARunWhoseGraphOfKeepsFailing(t *testing.T) {
	t.Parallel() // its own schema
	ctx, s, e := leftOrphan(t)
	errNoTemplate := errors.New("no template builds it")
	var calls atomic.Int32
	graphOf := func(executor.Record) (*graph.Graph, error) {
		if calls.Add(1) == 4 {
			return build(t, 10), nil // it succeeds, but Resume refuses the graph: the run is left again
		}
		return nil, errNoTemplate
	}
	logger, logs := debugLogger()
	passes, stop := maintainingWith(t, ctx, s, e, graphOf, pgstore.MaintainOptions{Every: time.Millisecond, Logger: logger})
	for i := 1; i <= 6; i++ {
		r := notResumed(t, ctx, passes, i)
		var ge *pgstore.GraphOfError
		require.Equal(t, i != 4, errors.As(r.Err, &ge), "pass %d: %v", i, r.Err)
	}
	done := errors.New("done")
	require.ErrorIs(t, stop(done), done)
	warned, debug := countLevels(logs, func(line string) bool {
		return strings.Contains(line, errNoTemplate.Error())
	})
	assert.Equal(t, 2, warned, "warnings of the failing graphOf: at pass 1, and at pass 5 after pass 4's graphOf succeeded\n%s", logs)
	assert.Equal(t, 3, debug, "passes 2, 3 and 6, at debug level")
}

// A run whose Resume kept refusing it for good (graphOf builds a graph
// that is not the run's: Resume's ErrInvalidRequest) was warned of at
// every pass too, as a graphOf that failed was. It is now warned of once,
// and again only after a pass in which it was not refused so; the passes
// in between log it at debug level.
func TestMaintainWarnsOnceOfARunThatResumeKeepsRefusing(t *testing.T) {
	t.Parallel() // its own schema
	ctx, s, e := leftOrphan(t)
	errNoTemplate := errors.New("no template builds it")
	var calls atomic.Int32
	graphOf := func(executor.Record) (*graph.Graph, error) {
		if calls.Add(1) == 4 {
			return nil, errNoTemplate // another failure, which is warned of
		}
		return build(t, 10), nil // not the run's graph: Resume refuses it
	}
	logger, logs := debugLogger()
	passes, stop := maintainingWith(t, ctx, s, e, graphOf, pgstore.MaintainOptions{Every: time.Millisecond, Logger: logger})
	for i := 1; i <= 6; i++ {
		r := notResumed(t, ctx, passes, i)
		require.Equal(t, i != 4, errors.Is(r.Err, executor.ErrInvalidRequest), "pass %d: %v", i, r.Err)
	}
	done := errors.New("done")
	require.ErrorIs(t, stop(done), done)
	warned, debug := countLevels(logs, func(line string) bool {
		return strings.Contains(line, "orphan") && strings.Contains(line, "could not resume")
	})
	assert.Equal(t, 3, warned, "warnings: Resume's refusal at pass 1, graphOf's failure at pass 4, the refusal again at pass 5\n%s", logs)
	assert.Equal(t, 3, debug, "passes 2, 3 and 6, at debug level")
}

// The runs warned of once were forgotten only after a pass whose steps
// all succeeded: while a step failed at every pass (a Pruner, say), a
// run that left the listing stayed remembered (the state grew with every
// such run for as long as the process lived), and one that came back
// with the same failure was never warned of again. A step that succeeds
// now forgets the runs it no longer lists, whatever the other steps did.
func TestMaintainForgetsAWarnedRunThatLeftTheListingWhileAStepFails(t *testing.T) {
	t.Parallel() // its own schema
	ctx, s, e := leftOrphan(t)
	setStatus := func(status executor.RunStatus) {
		rec, err := s.GetRun(ctx, "orphan")
		require.NoError(t, err)
		rec.Status = status
		require.NoError(t, s.PutRun(ctx, rec))
	}
	errNoTemplate := errors.New("no template builds it")
	var calls atomic.Int32
	graphOf := func(executor.Record) (*graph.Graph, error) {
		if calls.Add(1) == 1 {
			setStatus(executor.RunCancelled) // not listed at pass 2
		}
		return nil, errNoTemplate
	}
	errPrune := errors.New("prune failed")
	var prunes atomic.Int32
	pruner := pgstore.PrunerFunc(func(context.Context, time.Duration) (int64, error) {
		if prunes.Add(1) == 2 {
			setStatus(executor.RunRunning) // listed again at pass 3
		}
		return 0, errPrune
	})
	logger, logs := debugLogger()
	passes, stop := maintainingWith(t, ctx, s, e, graphOf, pgstore.MaintainOptions{Every: time.Millisecond,
		Retain: time.Hour, PruneEvery: time.Nanosecond, Pruners: []pgstore.Pruner{pruner}, Logger: logger})
	for i, want := range []int{1, 0, 1} {
		p := next(t, ctx, passes)
		require.ErrorIs(t, p.Err, errPrune, "pass %d", i+1)
		require.Len(t, p.LeftRunning, want, "pass %d", i+1)
	}
	done := errors.New("done")
	require.ErrorIs(t, stop(done), done)
	warned, _ := countLevels(logs, func(line string) bool {
		return strings.Contains(line, errNoTemplate.Error())
	})
	assert.Equal(t, 2, warned, "warnings of the failing graphOf: at pass 1, and at pass 3, the run back in the listing\n%s", logs)
}

// leftOrphan returns a store in a schema of the test's own, with the
// record of a run "orphan" of a graph of 30 s that a dead process left
// running a minute ago, an executor on it, and a context of a minute.
func leftOrphan(t *testing.T) (context.Context, *pgstore.Store, *executor.Executor) {
	t.Helper()
	s, _ := newStore(t)
	ctx := testenv.Context(t, 60*time.Second)
	leftRunning(t, ctx, s, "orphan", testenv.UniqueName(t), build(t, 30), time.Now().Add(-time.Minute))
	return ctx, s, newExecutor(t, s, newProvider().registry())
}

// debugLogger returns a logger that writes every level, debug on, as
// text to the buffer it returns.
func debugLogger() (*slog.Logger, *testenv.LogBuffer) {
	logs := new(testenv.LogBuffer)
	return slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), logs
}

// notResumed reads pass i of passes, requires that it succeeded and left
// the one run, not resumed, and returns that run's Recovery.
func notResumed(t *testing.T, ctx context.Context, passes <-chan pgstore.Pass, i int) pgstore.Recovery {
	t.Helper()
	p := next(t, ctx, passes)
	require.NoError(t, p.Err)
	require.Len(t, p.LeftRunning, 1)
	r := p.LeftRunning[0]
	require.Equal(t, pgstore.NotResumed, r.Outcome, "pass %d", i)
	return r
}

// countLevels counts the lines of logs that match, at level WARN and at
// level DEBUG.
func countLevels(logs *testenv.LogBuffer, match func(line string) bool) (warned, debug int) {
	for line := range strings.Lines(logs.String()) {
		if !match(line) {
			continue
		}
		switch {
		case strings.Contains(line, "level=WARN"):
			warned++
		case strings.Contains(line, "level=DEBUG"):
			debug++
		}
	}
	return warned, debug
}
