package pgstore_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/internal/testenv"
)

// poolStore returns a store on the schema with a pool of its own, as
// another process of the host has; configure, if not nil, changes the
// pool's configuration first.
func poolStore(t *testing.T, schema string, configure func(*pgxpool.Config)) *pgstore.Store {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(testenv.PostgresURL())
	require.NoError(t, err)
	if configure != nil {
		configure(cfg)
	}
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	s, err := pgstore.New(pool, pgstore.Options{Schema: schema})
	require.NoError(t, err)
	return s
}

// gates holds calls of a provider: the n-th call of a node, named
// "id#n", signals held and waits for its release.
type gates struct {
	mu    sync.Mutex
	calls map[string]int
	held  map[string]chan struct{}
	free  map[string]chan struct{}
}

func newGates(names ...string) *gates {
	g := &gates{calls: map[string]int{}, held: map[string]chan struct{}{}, free: map[string]chan struct{}{}}
	for _, n := range names {
		g.held[n], g.free[n] = make(chan struct{}), make(chan struct{})
	}
	return g
}

func (g *gates) hook(ctx context.Context, req executor.Request) error {
	g.mu.Lock()
	g.calls[req.NodeID]++
	name := fmt.Sprintf("%s#%d", req.NodeID, g.calls[req.NodeID])
	held, free := g.held[name], g.free[name]
	g.mu.Unlock()
	if held != nil {
		close(held)
		select {
		case <-free:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return jitter(ctx, req)
}

func (g *gates) wait(t *testing.T, name string) {
	t.Helper()
	select {
	case <-g.held[name]:
	case <-time.After(60 * time.Second):
		t.Fatalf("%s was not called within 60s", name)
	}
}

func (g *gates) release(name string) { close(g.free[name]) }

// TestOpsNewerGraphWins runs a lecture the way a production host does
// when its user changes it while it is made: an older run, from one
// executor with its own pool, makes its timeline (a user edits a
// narration meanwhile); a newer run of another graph on the same key (the
// lecture made longer, or shorter), or of the same graph after the host
// deleted the lecture, runs from another executor with its own pool. The
// older run stops with ErrGraphReplaced and commits nothing more: the
// store ends as the newer run left it, the newest graph's, whole and
// current; a newer run cancelled is resumed, and the older run still
// stops.
func TestOpsNewerGraphWins(t *testing.T) {
	t.Parallel() // each test has its own schema
	for _, tc := range []struct {
		name         string
		older, newer int
		converge     bool // the older run has Options.Converge, and is in its second round
		deleted      bool // the host deletes the graph before the newer run
		cancel       bool // the newer run is cancelled, then resumed
	}{
		{name: "longer during shorter", older: 60, newer: 120},
		{name: "shorter during longer", older: 120, newer: 60},
		{name: "longer during a converging shorter", older: 60, newer: 120, converge: true},
		{name: "shorter during a converging longer", older: 120, newer: 60, converge: true},
		{name: "longer cancelled and resumed", older: 60, newer: 120, cancel: true},
		{name: "shorter cancelled and resumed", older: 120, newer: 60, cancel: true},
		{name: "deleted and run again", older: 60, newer: 60, deleted: true},
		{name: "deleted and run longer", older: 60, newer: 120, deleted: true},
		{name: "deleted, run again, cancelled and resumed", older: 60, newer: 60, deleted: true, cancel: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, pg := newStore(t)
			key := testenv.UniqueName(t)
			gOlder, gNewer := build(t, tc.older), build(t, tc.newer)
			edited := "asset:narration:segment[1]"

			// The older run, held at its timeline (in its second round
			// with converge, after the edit).
			hold := "timeline#1"
			if tc.converge {
				hold = "timeline#2"
			}
			og := newGates("timeline#1", "timeline#2")
			op := newProvider()
			op.hook = og.hook
			so := poolStore(t, pg.Schema, nil)
			opts := executor.Options{Generators: op.registry(), States: so, Assets: so, Runs: so}
			if tc.converge {
				opts.Converge = 2
			}
			eo, err := executor.New(opts)
			require.NoError(t, err)
			t.Cleanup(func() { require.NoError(t, eo.Close(context.Background())) })
			ro, err := eo.Start(t.Context(), executor.RunRequest{GraphKey: key, Graph: gOlder})
			require.NoError(t, err)
			og.wait(t, "timeline#1")
			// The user edits a narration made by the older run.
			ee := newExecutor(t, s, newProvider().registry())
			_, err = ee.Edit(t.Context(), gOlder, key, edited)
			require.NoError(t, err)
			if tc.converge {
				og.release("timeline#1")
				og.wait(t, hold)
			}
			if tc.deleted {
				_, err := s.DeleteGraph(t.Context(), key)
				require.NoError(t, err)
			}

			// The newer run, from another executor with its own pool.
			ng := newGates("timeline#1")
			np := newProvider()
			np.hook = jitter
			if tc.cancel {
				np.hook = ng.hook
			}
			en := newExecutor(t, poolStore(t, pg.Schema, nil), np.registry())
			rn, err := en.Start(t.Context(), executor.RunRequest{GraphKey: key, Graph: gNewer})
			require.NoError(t, err)
			newest := rn.ID()
			if tc.cancel {
				ng.wait(t, "timeline#1")
				rn.Cancel()
				_, err := rn.Wait()
				require.ErrorIs(t, err, executor.ErrCancelled)
			} else {
				_, err := rn.Wait()
				require.NoError(t, err)
			}
			before, err := s.Load(t.Context(), key)
			require.NoError(t, err)

			og.release(hold)
			rep, err := ro.Wait()
			require.ErrorIs(t, err, executor.ErrGraphReplaced)
			assert.Equal(t, executor.RunCancelled, rep.Record.Status)
			assert.NotContains(t, rep.Generated, "timeline")
			after, err := s.Load(t.Context(), key)
			require.NoError(t, err)
			assert.Equal(t, before, after, "the older run committed after the newer run's")
			rec, err := s.GetRun(t.Context(), ro.ID())
			require.NoError(t, err)
			assert.Equal(t, executor.RunCancelled, rec.Status, "the older run's record")

			if tc.cancel {
				rr, err := en.Resume(t.Context(), gNewer, rn.ID())
				require.NoError(t, err)
				_, err = rr.Wait()
				require.NoError(t, err)
				newest = rr.ID()
				// The older graph's run cannot be resumed.
				if tc.older != tc.newer {
					_, err = eo.Resume(t.Context(), gOlder, ro.ID())
					require.ErrorIs(t, err, executor.ErrGraphReplaced)
				}
			}
			final, err := s.Load(t.Context(), key)
			require.NoError(t, err)
			assert.Empty(t, checkCurrent(t, s, gNewer, final, true), "the newest graph, whole and current")
			wantRev := int64(1)
			if tc.deleted {
				wantRev = 0 // the edit was deleted with the graph
			}
			assert.Equal(t, wantRev, final.States[edited].Rev, "the edit")
			if tc.deleted {
				// Nothing of the older run is in the lecture made again.
				for n := range gNewer.Len() {
					id := gNewer.NodeID(graph.Node(n))
					a, err := s.Get(t.Context(), final.States[id].AssetRef)
					require.NoError(t, err)
					assert.True(t, strings.Contains(string(a.Data), " run "+rn.ID()+" ") ||
						strings.Contains(string(a.Data), " run "+newest+" "), "%s made by another run: %s", id, a.Data)
				}
			}
		})
	}
}
