package pgstore_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
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

// TestTwoProcessesEditAndRunOneKey runs two executors, each on a pool of
// its own (two processes), on one graph key, for many rounds: each round
// both run the lecture while both edit its nodes, and, in one case, a
// third party terminates their backends at random. No edit that Edit
// reported done is lost: the node's revision after it is above the one
// before it, revisions and the version only move forward, and without
// failures each node's revision counts its edits. A final run leaves
// every node clean, with its asset, made from current inputs.
func TestTwoProcessesEditAndRunOneKey(t *testing.T) {
	t.Parallel() // each test has its own schema
	for _, kill := range []bool{false, true} {
		t.Run(fmt.Sprintf("kill %v", kill), func(t *testing.T) {
			t.Parallel()
			twoProcessesEditAndRun(t, kill)
		})
	}
}

func twoProcessesEditAndRun(t *testing.T, kill bool) {
	rounds := 6
	if kill {
		rounds = 3 // each loss costs the executor a backoff
	}
	s, pg := newStore(t)
	key := testenv.UniqueName(t)
	g := build(t, 120)
	app := fmt.Sprintf("twoprocs-%x", rand.Uint64()) // application_name keeps 63 bytes
	stores := make([]*pgstore.Store, 2)
	execs := make([]*executor.Executor, 2)
	for i := range stores {
		stores[i] = poolStore(t, pg.Schema, func(c *pgxpool.Config) {
			c.ConnConfig.RuntimeParams["application_name"] = app
		})
		p := newProvider()
		p.hook = jitter
		execs[i] = newExecutor(t, stores[i], p.registry())
	}
	_, err := execs[0].Run(t.Context(), executor.RunRequest{GraphKey: key, Graph: g})
	require.NoError(t, err)

	var editable []string
	for n := range graph.Node(g.Len()) {
		editable = append(editable, g.NodeID(n))
	}
	var (
		mu        sync.Mutex
		done      = map[string]int{} // edits reported done, by node
		uncertain = map[string]int{} // edits that failed, and may have gone through
	)
	var lastVersion atomic.Int64
	observe := func(v int64) {
		for {
			old := lastVersion.Load()
			if v <= old || lastVersion.CompareAndSwap(old, v) {
				return
			}
		}
	}
	for round := range rounds {
		ctx, cancel := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		// The killer.
		wg.Go(func() {
			for kill && ctx.Err() == nil {
				time.Sleep(time.Duration(10+rand.IntN(30)) * time.Millisecond)
				_, _ = pg.Pool.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
					WHERE application_name = $1 AND pid = (SELECT pid FROM pg_stat_activity WHERE application_name = $1
						ORDER BY random() LIMIT 1)`, app)
			}
		})
		// A watcher of the version and the revisions.
		wg.Go(func() {
			prev := executor.Snapshot{}
			for ctx.Err() == nil {
				snap, err := s.Load(ctx, key)
				if err != nil {
					continue
				}
				assert.GreaterOrEqual(t, snap.Version, prev.Version, "the version went back")
				for id, st := range prev.States {
					assert.GreaterOrEqual(t, snap.States[id].Rev, st.Rev, "the revision of %s went back", id)
				}
				prev = snap
				observe(snap.Version)
			}
		})
		var runs sync.WaitGroup
		for i, e := range execs {
			runs.Go(func() {
				r, err := e.Start(t.Context(), executor.RunRequest{GraphKey: key, Graph: g})
				if err != nil {
					t.Logf("round %d: executor %d: start: %v", round, i, err)
					return
				}
				_, err = r.Wait()
				t.Logf("round %d: executor %d: run: %v", round, i, err)
			})
		}
		var editors sync.WaitGroup
		for i, e := range execs {
			editors.Go(func() {
				for range 8 {
					id := editable[rand.IntN(len(editable))]
					before, err := s.Load(t.Context(), key) // on a pool of its own, never terminated
					if !assert.NoError(t, err) {
						return
					}
					v, err := e.Edit(t.Context(), g, key, id)
					if err == nil {
						after, err := s.Load(t.Context(), key)
						if assert.NoError(t, err) {
							assert.Greater(t, after.States[id].Rev, before.States[id].Rev, "the edit of %s was lost", id)
						}
					}
					mu.Lock()
					if err != nil {
						uncertain[id]++
						t.Logf("round %d: executor %d: edit %s: %v", round, i, id, err)
					} else {
						done[id]++
						observe(v)
					}
					mu.Unlock()
				}
			})
		}
		editors.Wait()
		runs.Wait()
		cancel()
		wg.Wait()
	}

	rep, err := execs[0].Run(t.Context(), executor.RunRequest{GraphKey: key, Graph: g})
	require.NoError(t, err, "%v", rep)
	snap, err := s.Load(t.Context(), key)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, snap.Version, lastVersion.Load())
	assert.Empty(t, checkCurrent(t, s, g, snap, true))
	for _, id := range editable {
		rev := snap.States[id].Rev
		lo, hi := int64(done[id]), int64(done[id]+uncertain[id])
		if kill {
			// An edit whose commit failed, its reply lost, ends without a
			// commit of its own if another edit of its node followed it
			// (see Executor.Edit): one revision for both.
			lo = min(lo, 1)
		}
		assert.True(t, rev >= lo && rev <= hi, "%s: revision %d, want %d to %d: an edit was lost or made twice", id, rev, lo, hi)
	}
	var nd, nu int
	for id := range done {
		nd += done[id]
	}
	for id := range uncertain {
		nu += uncertain[id]
	}
	t.Logf("edits: %d done, %d uncertain; version %d", nd, nu, snap.Version)
}
