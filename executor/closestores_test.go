package executor_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
)

// closeWatch wraps a lab's stores and records every call made after
// Close returned, or still in flight then: a host closes its stores'
// connections once Close returns. It can hold the nth call named hold
// (such as "GetRun crashed") until release is closed, and closes held
// when that call begins.
type closeWatch struct {
	states executor.StateStore
	assets executor.AssetStore
	runs   executor.RunStore

	hold    string
	holdNth int
	held    chan struct{}
	release chan struct{}

	mu     sync.Mutex
	seen   int      // calls named hold
	in     int      // calls in flight
	closed bool     // Close returned
	late   []string // calls in flight when Close returned, or made after
}

func (w *closeWatch) enter(call string) func() {
	w.mu.Lock()
	if w.closed {
		w.late = append(w.late, call)
	}
	w.in++
	hold := false
	if call == w.hold {
		w.seen++
		hold = w.seen == w.holdNth
	}
	w.mu.Unlock()
	if hold {
		close(w.held)
		<-w.release
	}
	return func() {
		w.mu.Lock()
		w.in--
		w.mu.Unlock()
	}
}

// closeReturned is called as soon as Close returns.
func (w *closeWatch) closeReturned() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	if w.in > 0 {
		w.late = append(w.late, fmt.Sprintf("%d call(s) in flight when Close returned", w.in))
	}
}

func (w *closeWatch) lateCalls() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.late
}

func (w *closeWatch) GetRun(ctx context.Context, id string) (executor.Record, error) {
	defer w.enter("GetRun " + id)()
	return w.runs.GetRun(ctx, id)
}

func (w *closeWatch) PutRun(ctx context.Context, r executor.Record) error {
	defer w.enter(fmt.Sprintf("PutRun %s (%s)", r.ID, r.Status))()
	return w.runs.PutRun(ctx, r)
}

func (w *closeWatch) ListRuns(ctx context.Context, key string) ([]executor.Record, error) {
	defer w.enter("ListRuns " + key)()
	return w.runs.ListRuns(ctx, key)
}

func (w *closeWatch) Load(ctx context.Context, key string) (executor.Snapshot, error) {
	defer w.enter("Load " + key)()
	return w.states.Load(ctx, key)
}

func (w *closeWatch) Commit(ctx context.Context, key string, expect int64, changes []executor.Change) (int64, error) {
	defer w.enter("Commit " + key)()
	return w.states.Commit(ctx, key, expect, changes)
}

func (w *closeWatch) Put(ctx context.Context, key string, a executor.Asset) (string, error) {
	defer w.enter("Put " + key)()
	return w.assets.Put(ctx, key, a)
}

func (w *closeWatch) Get(ctx context.Context, ref string) (executor.Asset, error) {
	defer w.enter("Get " + ref)()
	return w.assets.Get(ctx, ref)
}

func (w *closeWatch) Exists(ctx context.Context, ref string) (bool, error) {
	defer w.enter("Exists " + ref)()
	return w.assets.Exists(ctx, ref)
}

// A Resume of a crashed run records it as interrupted after its own run
// has started, and that record was written outside the runs that Close
// waits for: when the resuming run ended at once (nothing was left to
// make), Close returned, the host closed its stores, and the executor
// then wrote the crashed run's record (a pgstore user saw "pool closed"
// logged, and the record said "running" for good). Nor did Close wait
// for a Resume reading the run's record. Close now waits for both, and
// a Resume that it overtook returns ErrClosed: no store call is made
// once Close has returned.
func TestCloseWaitsForAResumesStoreCalls(t *testing.T) {
	for _, tc := range []struct {
		name    string
		holdNth int // which GetRun of the crashed run is held while Close is called
		wantErr error
	}{
		{"the read of the run's record", 1, executor.ErrClosed},
		{"the record of the run as interrupted", 2, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				l := newLab(t, 30)
				w := &closeWatch{states: l.states, assets: l.assets, runs: l.runs, hold: "GetRun crashed",
					holdNth: tc.holdNth, held: make(chan struct{}), release: make(chan struct{})}
				e, err := executor.New(executor.Options{Generators: l.registry(l), States: w, Assets: w, Runs: w})
				require.NoError(t, err)
				rep, err := e.Run(ctx, executor.RunRequest{GraphKey: "lecture", Graph: l.g})
				require.NoError(t, err)
				// A run that crashed once every node was made: its resume
				// has nothing to make, and ends at once.
				crashed := rep.Record
				crashed.ID, crashed.Status, crashed.EndedAt = "crashed", executor.RunRunning, crashed.StartedAt
				require.NoError(t, l.runs.PutRun(ctx, crashed))

				resumed := make(chan error, 1)
				go func() {
					r, err := e.Resume(ctx, l.g, "crashed")
					if err == nil {
						_, err = r.Wait()
					}
					resumed <- err
				}()
				<-w.held
				closed := make(chan error, 1)
				go func() {
					err := e.Close(ctx)
					w.closeReturned()
					closed <- err
				}()
				synctest.Wait() // Close returned, or waits for the Resume
				close(w.release)
				require.NoError(t, <-closed)
				err = <-resumed
				if tc.wantErr != nil {
					require.ErrorIs(t, err, tc.wantErr)
				} else {
					require.NoError(t, err)
					rec, err := l.runs.GetRun(ctx, "crashed")
					require.NoError(t, err)
					assert.Equal(t, executor.RunInterrupted, rec.Status)
				}
				assert.Empty(t, w.lateCalls(), "store calls once Close returned")
			})
		})
	}
}

// Edit and Plan went on calling the stores after Close: one under way
// when Close was called made its calls after Close returned (a host's
// request handler, still running at shutdown, hit the stores it had
// closed), and one called after Close made them all. Close now waits
// for those under way, and a closed executor refuses them with
// ErrClosed, before any store call.
func TestCloseWaitsForEditAndPlan(t *testing.T) {
	for _, tc := range []struct {
		name string
		call func(e *executor.Executor, l *lab) error
	}{
		{"Edit", func(e *executor.Executor, l *lab) error {
			_, err := e.Edit(context.Background(), l.g, "lecture", "script")
			return err
		}},
		{"Plan", func(e *executor.Executor, l *lab) error {
			_, _, err := e.Plan(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, 30)
				w := &closeWatch{states: l.states, assets: l.assets, runs: l.runs, hold: "Load lecture", holdNth: 1,
					held: make(chan struct{}), release: make(chan struct{})}
				e, err := executor.New(executor.Options{Generators: l.registry(l), States: w, Assets: w, Runs: w})
				require.NoError(t, err)
				called := make(chan error, 1)
				go func() { called <- tc.call(e, l) }()
				<-w.held
				closed := make(chan error, 1)
				go func() {
					err := e.Close(context.Background())
					w.closeReturned()
					closed <- err
				}()
				synctest.Wait() // Close returned, or waits for the call
				close(w.release)
				require.NoError(t, <-closed)
				require.NoError(t, <-called, "a call under way when Close was called ends as it would have")
				require.ErrorIs(t, tc.call(e, l), executor.ErrClosed, "a call after Close")
				assert.Empty(t, w.lateCalls(), "store calls once Close returned")
			})
		})
	}
}
