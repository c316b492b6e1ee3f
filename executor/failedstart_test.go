package executor_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
)

// failingStart makes the Start of run ID "refused" fail in one of its
// store calls: its first PutRun (refused, or its context ended by the
// caller meanwhile), or the commit of its plan.
type failingStart struct {
	executor.StateStore
	executor.RunStore
	mu     sync.Mutex
	how    string             // "put", "put-cancel", "commit" or "commit-put": what fails
	cancel context.CancelFunc // the Start's context, for "put-cancel"
	armed  bool               // the commit fails (set by the refused run's first PutRun)
}

func (f *failingStart) PutRun(ctx context.Context, rec executor.Record) error {
	if rec.ID != "refused" {
		return f.RunStore.PutRun(ctx, rec)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.how == "put":
		return executor.Permanent(errors.New("runs table: disk quota exceeded"))
	case f.how == "put-cancel":
		f.cancel() // the client that called Start went away
		return ctx.Err()
	case rec.Status == executor.RunRunning:
		f.armed = true
	case f.how == "commit-put":
		// The record of the failure is lost too: the record stays
		// running, as after a crash between the record and the commit.
		return executor.Permanent(errors.New("runs table: disk quota exceeded"))
	}
	return f.RunStore.PutRun(ctx, rec)
}

func (f *failingStart) Commit(ctx context.Context, key string, expect int64, changes []executor.Change) (int64, error) {
	f.mu.Lock()
	armed := f.armed
	f.armed = false
	f.mu.Unlock()
	if armed {
		return 0, executor.Permanent(errors.New("states table: disk quota exceeded"))
	}
	return f.StateStore.Commit(ctx, key, expect, changes)
}

// A Start that failed once its plan was committed (its record refused by
// the run store, its context ended during that PutRun) had made its graph
// the key's already: a run of the key's graph in progress then stopped
// as cancelled with ErrGraphReplaced, an Edit with that graph was refused
// as not the key's, and no record of a run of the new graph existed to
// resume. The record is now stored before anything is committed: a Start
// that cannot store it changes nothing, and one whose commit fails after
// it records the run as failed. A record left running (its update failed
// too, or a crash) is of a run that committed nothing: a Resume of it is
// refused while the key's graph is another.
func TestFailedStartChangesNothing(t *testing.T) {
	for _, how := range []string{"put", "put-cancel", "commit", "commit-put"} {
		t.Run(how, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				l := newLab(t, 60)
				g4, err := graph.Build(graph.Lecture(), 40)
				require.NoError(t, err)
				f := &failingStart{StateStore: l.states, RunStore: l.runs, how: how}
				e, err := executor.New(executor.Options{Generators: l.registry(l), States: f, Assets: l.assets, Runs: f})
				require.NoError(t, err)
				defer func() { require.NoError(t, e.Close(ctx)) }()

				a, err := e.Start(ctx, executor.RunRequest{GraphKey: "lecture", Graph: l.g, RunID: "a"})
				require.NoError(t, err)
				time.Sleep(time.Second) // run A's scripts take 20 s
				before := l.snapshot()

				sctx, cancel := context.WithCancel(ctx)
				defer cancel()
				f.mu.Lock()
				f.cancel = cancel
				f.mu.Unlock()
				_, err = e.Start(sctx, executor.RunRequest{GraphKey: "lecture", Graph: g4, RunID: "refused"})
				require.Error(t, err)
				if how == "put-cancel" {
					assert.ErrorIs(t, err, executor.ErrCancelled)
				}
				assert.Equal(t, before, l.snapshot(), "a Start that failed changed the key's states")

				rec, gerr := l.runs.GetRun(ctx, "refused")
				switch how {
				case "put", "put-cancel":
					assert.ErrorIs(t, gerr, executor.ErrNotFound, "a record of a run that could not be recorded")
				case "commit":
					require.NoError(t, gerr)
					assert.Equal(t, executor.RunFailed, rec.Status, "the record of a Start that failed")
					assert.Contains(t, rec.Error, "disk quota exceeded")
					assert.False(t, rec.EndedAt.IsZero())
				case "commit-put":
					require.NoError(t, gerr)
					require.Equal(t, executor.RunRunning, rec.Status)
				}

				rep, err := a.Wait()
				require.NoError(t, err, "run A was stopped by a Start that failed")
				assert.Equal(t, executor.RunSucceeded, rep.Record.Status)
				assert.Empty(t, rep.Dirty)
				_, err = e.Edit(ctx, l.g, "lecture", "asset:narration:segment[0]")
				require.NoError(t, err, "the key's graph is run A's")

				if how == "commit-put" {
					// Found running at a restart: the key's graph is not its.
					_, err := e.Resume(ctx, g4, "refused")
					require.ErrorIs(t, err, executor.ErrGraphReplaced)
					_, err = e.Edit(ctx, l.g, "lecture", "asset:narration:segment[1]")
					require.NoError(t, err, "a refused Resume made its graph the key's")
				}
			})
		})
	}
}
