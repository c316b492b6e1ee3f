package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/internal/testenv"
)

// editHost is a SQL host, as EditTx is for: it keeps its nodes'
// parameters in a table of its own (params, in the test's schema), which
// its generator reads when called, and saves them in the transaction in
// which it records the edit.
type editHost struct {
	t   *testing.T
	s   *pgstore.Store
	pg  *testenv.Postgres
	g   *graph.Graph
	key string

	mu      sync.Mutex
	gates   map[string]chan struct{} // a call of the node waits for its gate, once
	started chan string              // the nodes whose call waits for its gate
}

// newEditHost returns a host on a store of its own, whose key holds one
// run of the 30-second lecture (3 segments, every parameter "v0").
func newEditHost(t *testing.T) (*editHost, *executor.Executor) {
	t.Helper()
	s, pg := newStore(t)
	h := &editHost{t: t, s: s, pg: pg, key: testenv.UniqueName(t), gates: map[string]chan struct{}{},
		started: make(chan string, 16)}
	var err error
	h.g, err = graph.Build(graph.Lecture(), 30)
	require.NoError(t, err)
	_, err = pg.Pool.Exec(t.Context(), `CREATE TABLE `+h.params()+` (node_id text PRIMARY KEY, value text NOT NULL)`)
	require.NoError(t, err)
	e := h.executor()
	_, err = e.Run(t.Context(), executor.RunRequest{GraphKey: h.key, Graph: h.g})
	require.NoError(t, err)
	return h, e
}

// params is the host's table of parameters.
func (h *editHost) params() string { return pgx.Identifier{h.pg.Schema, "params"}.Sanitize() }

// executor returns another executor on the host's store: another
// process, as far as the store can tell.
func (h *editHost) executor() *executor.Executor {
	reg := executor.Registry{}
	for i := range h.g.Kinds() {
		reg[h.g.KindName(i)] = executor.GeneratorFunc(h.generate)
	}
	return newExecutor(h.t, h.s, reg)
}

// generate reads the node's parameter, then waits for its gate, if one
// is set: its output names the revision and the parameter it was made
// with, and its inputs' hashes.
func (h *editHost) generate(ctx context.Context, req executor.Request) (executor.Asset, error) {
	value := "v0"
	err := h.pg.Pool.QueryRow(ctx, `SELECT value FROM `+h.params()+` WHERE node_id = $1`, req.NodeID).Scan(&value)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return executor.Asset{}, err
	}
	h.mu.Lock()
	gate := h.gates[req.NodeID]
	delete(h.gates, req.NodeID)
	h.mu.Unlock()
	if gate != nil {
		h.started <- req.NodeID
		select {
		case <-gate:
		case <-ctx.Done():
			return executor.Asset{}, ctx.Err()
		}
	}
	data := output(req.NodeID, req.Rev, value)
	for _, d := range req.Deps {
		data += " <" + d.Asset.Hash + ">"
	}
	a := executor.Asset{Data: []byte(data)}
	if req.ID.Kind == graph.KindNarration {
		a.Length = 10 * time.Second
	}
	return a, nil
}

// output is the start of the output of node id made at rev with value.
func output(id string, rev int64, value string) string {
	return fmt.Sprintf("%s@%d:%s", id, rev, value)
}

// hold makes the next call of node id wait until release is called.
func (h *editHost) hold(id string) (release func()) {
	gate := make(chan struct{})
	h.mu.Lock()
	h.gates[id] = gate
	h.mu.Unlock()
	return sync.OnceFunc(func() { close(gate) })
}

// save saves the node's parameter in tx, as the host does before EditTx.
func (h *editHost) save(ctx context.Context, tx pgx.Tx, id, value string) {
	h.t.Helper()
	_, err := tx.Exec(ctx, `INSERT INTO `+h.params()+` (node_id, value) VALUES ($1, $2)
ON CONFLICT (node_id) DO UPDATE SET value = excluded.value`, id, value)
	require.NoError(h.t, err)
}

// saved returns the node's committed parameter.
func (h *editHost) saved(ctx context.Context, id string) string {
	h.t.Helper()
	value := "v0"
	err := h.pg.Pool.QueryRow(ctx, `SELECT value FROM `+h.params()+` WHERE node_id = $1`, id).Scan(&value)
	if !errors.Is(err, pgx.ErrNoRows) {
		require.NoError(h.t, err)
	}
	return value
}

// load returns the key's committed states.
func (h *editHost) load(ctx context.Context) executor.Snapshot {
	h.t.Helper()
	snap, err := h.s.Load(ctx, h.key)
	require.NoError(h.t, err)
	return snap
}

// made returns the output stored for the node, and its state, which must
// be clean.
func (h *editHost) made(ctx context.Context, id string) (string, dirty.State) {
	h.t.Helper()
	st := h.load(ctx).States[id]
	require.Equal(h.t, dirty.StatusClean, st.Status, "node %s", id)
	a, err := h.s.Get(ctx, st.AssetRef)
	require.NoError(h.t, err, "node %s", id)
	return string(a.Data), st
}

// backend returns the server's process ID of tx's connection.
func backend(t *testing.T, ctx context.Context, tx pgx.Tx) int {
	t.Helper()
	var pid int
	require.NoError(t, tx.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid))
	return pid
}

// A host that saved a node's new parameters and then called
// Executor.Edit lost the edit for good when Edit failed after the save
// (its ctx ended, the database stayed down longer than its retries, the
// process died): the executor keeps only revisions, so the next run made
// nothing while the saved parameters were new (an outside team's trial,
// TestReproEditLostWhenEditFailsAfterSave). EditTx records the edit in
// the host's transaction, with its save: nothing of either is visible
// until the host commits, which makes both at once, and the next run
// makes the node again from the new parameters. Two EditTx of one node
// in a transaction give it two revisions. In both query modes.
func TestEditTxIsVisibleOnlyOnCommit(t *testing.T) {
	t.Parallel()
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeSimpleProtocol} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel() // each has its own schema
			h, e := newEditHost(t)
			ctx := testenv.Context(t, time.Minute)
			cfg := h.pg.Pool.Config()
			cfg.ConnConfig.DefaultQueryExecMode = mode
			pool, err := pgxpool.NewWithConfig(ctx, cfg)
			require.NoError(t, err)
			t.Cleanup(pool.Close)
			before := h.load(ctx)

			tx, err := pool.Begin(ctx)
			require.NoError(t, err)
			defer tx.Rollback(context.Background()) //nolint:errcheck // committed below
			h.save(ctx, tx, "script", "v1")
			h.save(ctx, tx, "asset:image:segment[1]", "v1")
			v, err := h.s.EditTx(ctx, tx, h.g, h.key, "asset:image:segment[1]", "script")
			require.NoError(t, err)
			assert.Equal(t, before.Version+1, v)
			v, err = h.s.EditTx(ctx, tx, h.g, h.key, "script")
			require.NoError(t, err)
			assert.Equal(t, before.Version+2, v)

			assert.Equal(t, before, h.load(ctx), "the edit is visible before the host commits")
			assert.Equal(t, "v0", h.saved(ctx, "script"))
			plan, _, err := e.Plan(ctx, executor.RunRequest{GraphKey: h.key, Graph: h.g})
			require.NoError(t, err)
			assert.Empty(t, plan.Nodes(), "a run planned before the host commits makes something")

			require.NoError(t, tx.Commit(ctx))
			after := h.load(ctx)
			assert.Equal(t, v, after.Version)
			for id, st := range before.States {
				want := st
				switch id {
				case "script":
					want.Rev += 2
				case "asset:image:segment[1]":
					want.Rev++
				default:
					assert.Equal(t, st, after.States[id], "node %s, not edited", id)
					continue
				}
				want.Status = dirty.StatusDirty
				got := after.States[id]
				assert.False(t, got.UpdatedAt.Before(st.UpdatedAt), "node %s", id)
				got.UpdatedAt = st.UpdatedAt
				assert.Equal(t, want, got, "node %s", id)
			}

			rep, err := e.Run(ctx, executor.RunRequest{GraphKey: h.key, Graph: h.g})
			require.NoError(t, err)
			assert.Contains(t, rep.Generated, "script")
			assert.Contains(t, rep.Generated, "asset:image:segment[1]")
			data, st := h.made(ctx, "script")
			assert.Equal(t, output("script", before.States["script"].Rev+2, "v1"), data)
			assert.Equal(t, before.States["script"].Rev+2, st.Rev)
			data, _ = h.made(ctx, "asset:image:segment[1]")
			assert.True(t, strings.HasPrefix(data, output("asset:image:segment[1]", before.States["asset:image:segment[1]"].Rev+1, "v1")), data)
		})
	}
}

// A rollback of the host's transaction, after EditTx, leaves no trace:
// neither the parameters nor the edit, and the next run makes nothing.
func TestEditTxRollbackLeavesNoTrace(t *testing.T) {
	t.Parallel()
	h, e := newEditHost(t)
	ctx := testenv.Context(t, time.Minute)
	before := h.load(ctx)

	tx, err := h.pg.Pool.Begin(ctx)
	require.NoError(t, err)
	h.save(ctx, tx, "script", "v1")
	_, err = h.s.EditTx(ctx, tx, h.g, h.key, "script")
	require.NoError(t, err)
	require.NoError(t, tx.Rollback(ctx))

	assert.Equal(t, before, h.load(ctx))
	assert.Equal(t, "v0", h.saved(ctx, "script"))
	rep, err := e.Run(ctx, executor.RunRequest{GraphKey: h.key, Graph: h.g})
	require.NoError(t, err)
	assert.Empty(t, rep.Generated)
	after := h.load(ctx)
	assert.Equal(t, before.States["script"], after.States["script"])

	// The trial's case: the request's context ends (the client went
	// away) after the save, before the edit. EditTx fails, and the host's
	// pgx.BeginFunc rolls the save back with it: the user's request failed,
	// and the saved parameters are still those the outputs were made from.
	rctx, cancel := context.WithCancel(ctx)
	err = pgx.BeginFunc(ctx, h.pg.Pool, func(tx pgx.Tx) error {
		h.save(ctx, tx, "script", "v2")
		cancel()
		_, err := h.s.EditTx(rctx, tx, h.g, h.key, "script")
		return err
	})
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, "v0", h.saved(ctx, "script"))
	assert.Equal(t, after, h.load(ctx))
}

// EditTx takes the graph's row lock that Commit takes: a run in flight
// that started a node before the edit, and commits it while the host's
// transaction is open, waits for that transaction. If the host commits,
// the run finds the version moved, reloads, and supersedes the node,
// whose result was made from the old parameters; the next run makes it
// again with the new revision and parameters. If the host rolls back,
// the run's commit goes through, and nothing is left to make.
func TestEditTxSupersedesARunInFlight(t *testing.T) {
	t.Parallel()
	for _, commit := range []bool{true, false} {
		t.Run(map[bool]string{true: "commit", false: "rollback"}[commit], func(t *testing.T) {
			t.Parallel() // each has its own schema
			h, e := newEditHost(t)
			ctx := testenv.Context(t, time.Minute)
			rev := h.load(ctx).States["script"].Rev

			// A run of an edit of the script by Executor.Edit, the
			// parameter "v1" saved first; its call of the script reads
			// "v1", then waits.
			release := h.hold("script")
			defer release()
			tx, err := h.pg.Pool.Begin(ctx)
			require.NoError(t, err)
			h.save(ctx, tx, "script", "v1")
			require.NoError(t, tx.Commit(ctx))
			_, err = e.Edit(ctx, h.g, h.key, "script")
			require.NoError(t, err)
			run, err := e.Start(ctx, executor.RunRequest{GraphKey: h.key, Graph: h.g})
			require.NoError(t, err)
			require.Equal(t, "script", <-h.started)

			// The host saves "v2" and edits again, in one transaction;
			// the run's call returns, and its commit waits for that
			// transaction.
			tx, err = h.pg.Pool.Begin(ctx)
			require.NoError(t, err)
			defer tx.Rollback(context.Background()) //nolint:errcheck // ended below
			h.save(ctx, tx, "script", "v2")
			_, err = h.s.EditTx(ctx, tx, h.g, h.key, "script")
			require.NoError(t, err)
			release()
			waitFor(t, ctx, h.pg, backend(t, ctx, tx))
			if commit {
				require.NoError(t, tx.Commit(ctx))
			} else {
				require.NoError(t, tx.Rollback(ctx))
			}
			rep, err := run.Wait()
			require.NoError(t, err)

			if !commit {
				assert.Contains(t, rep.Generated, "script")
				assert.Empty(t, rep.Superseded)
				assert.Empty(t, rep.Dirty)
				data, st := h.made(ctx, "script")
				assert.Equal(t, output("script", rev+1, "v1"), data)
				assert.Equal(t, rev+1, st.Rev)
				assert.Equal(t, "v1", h.saved(ctx, "script"))
				rep, err = e.Run(ctx, executor.RunRequest{GraphKey: h.key, Graph: h.g})
				require.NoError(t, err)
				assert.Empty(t, rep.Generated)
				return
			}
			assert.Equal(t, []string{"script"}, rep.Superseded)
			assert.NotContains(t, rep.Generated, "script")
			assert.Contains(t, rep.Dirty, "script")
			st := h.load(ctx).States["script"]
			assert.Equal(t, rev+2, st.Rev)
			assert.NotEqual(t, dirty.StatusClean, st.Status)

			rep, err = e.Run(ctx, executor.RunRequest{GraphKey: h.key, Graph: h.g})
			require.NoError(t, err)
			assert.Contains(t, rep.Generated, "script")
			assert.Empty(t, rep.Dirty)
			data, st := h.made(ctx, "script")
			assert.Equal(t, output("script", rev+2, "v2"), data)
			assert.Equal(t, rev+2, st.Rev)
		})
	}
}

// Edits in transactions of their own, some rolled back, while two
// executors (two processes, as far as the store can tell) run the key
// over and over, lose no edit: the versions that the committed edits
// return are all different, each node's revision is its first one plus
// the edits committed of it, and once the edits stop, a run makes each
// edited node from its last committed parameters, at that revision.
func TestEditTxAndRunsLoseNoEdit(t *testing.T) {
	t.Parallel()
	h, e := newEditHost(t)
	e2 := h.executor()
	ctx := testenv.Context(t, 2*time.Minute)
	before := h.load(ctx)
	nodes := []string{"script", "asset:narration:segment[0]", "asset:image:segment[2]", "asset:music"}
	const editors, edits = 4, 12

	var (
		mu        sync.Mutex
		committed = map[string]int{}    // edits committed, by node
		last      = map[string]string{} // the last value committed, by node
		versions  []int64               // returned by committed edits
	)
	runCtx, stopRuns := context.WithCancel(ctx)
	var runs sync.WaitGroup
	runErrs := make(chan error, 2)
	for _, ex := range []*executor.Executor{e, e2} {
		runs.Go(func() {
			for runCtx.Err() == nil {
				if _, err := ex.Run(runCtx, executor.RunRequest{GraphKey: h.key, Graph: h.g}); err != nil && runCtx.Err() == nil {
					runErrs <- err
					return
				}
			}
		})
	}
	var editing sync.WaitGroup
	for w := range editors {
		editing.Go(func() {
			for i := range edits {
				id := nodes[(w+i)%len(nodes)]
				value := fmt.Sprintf("w%d-%d", w, i)
				tx, err := h.pg.Pool.Begin(ctx)
				if !assert.NoError(t, err) {
					return
				}
				_, err = tx.Exec(ctx, `INSERT INTO `+h.params()+` (node_id, value) VALUES ($1, $2)
ON CONFLICT (node_id) DO UPDATE SET value = excluded.value`, id, value)
				if !assert.NoError(t, err) {
					_ = tx.Rollback(ctx)
					return
				}
				v, err := h.s.EditTx(ctx, tx, h.g, h.key, id)
				if !assert.NoError(t, err) {
					_ = tx.Rollback(ctx)
					return
				}
				if i%3 == 2 {
					assert.NoError(t, tx.Rollback(ctx))
					continue
				}
				// The commit and the bookkeeping together: another
				// editor's commit of the node comes before or after both.
				mu.Lock()
				if assert.NoError(t, tx.Commit(ctx)) {
					committed[id]++
					last[id] = value
					versions = append(versions, v)
				}
				mu.Unlock()
			}
		})
	}
	editing.Wait()
	stopRuns()
	runs.Wait()
	close(runErrs)
	for err := range runErrs {
		require.NoError(t, err, "a run failed")
	}

	slices.Sort(versions)
	assert.Len(t, slices.Compact(slices.Clone(versions)), len(versions), "two committed edits got one version: %v", versions)
	assert.Len(t, versions, editors*(edits-edits/3))
	rep, err := e.Run(ctx, executor.RunRequest{GraphKey: h.key, Graph: h.g})
	require.NoError(t, err)
	require.Empty(t, rep.Dirty)
	for _, id := range nodes {
		require.Positive(t, committed[id], id)
		want := before.States[id].Rev + int64(committed[id])
		data, st := h.made(ctx, id)
		assert.Equal(t, want, st.Rev, "node %s: its revision is not its first plus its edits", id)
		assert.True(t, strings.HasPrefix(data, output(id, want, last[id])), "node %s: made %q, want it made from %q at %d", id, data, last[id], want)
	}
}

// EditTx refuses what Executor.Edit refuses, with the same errors, and
// what Commit refuses of a key: nothing of the edit is written, and the
// host's transaction goes on (its own write commits without the edit).
// A request refused before any SQL locks nothing; a graph that is not
// the key's is refused after the lock, which the transaction holds
// until it ends.
func TestEditTxRefusesBadInput(t *testing.T) {
	t.Parallel()
	h, e := newEditHost(t)
	ctx := testenv.Context(t, time.Minute)
	longer, err := graph.Build(graph.Lecture(), 60)
	require.NoError(t, err)
	done, cancel := context.WithCancel(ctx)
	cancel()
	for _, tc := range []struct {
		name   string
		ctx    context.Context
		nilTx  bool
		g      *graph.Graph
		key    string
		ids    []string
		is     error
		locks  bool // the refusal comes after the lock
		asEdit bool // Executor.Edit refuses it with the same text
	}{
		{"a nil graph", ctx, false, nil, h.key, []string{"script"}, executor.ErrInvalidRequest, false, true},
		{"an empty graph key", ctx, false, h.g, "", []string{"script"}, executor.ErrInvalidRequest, false, true},
		{"a graph key that is not text", ctx, false, h.g, "k\xff", []string{"script"}, executor.ErrInvalidRequest, false, true},
		{"no ID", ctx, false, h.g, h.key, nil, executor.ErrInvalidRequest, false, true},
		{"a malformed ID", ctx, false, h.g, h.key, []string{"script", "image["}, graph.ErrMalformedID, false, true},
		{"an unknown ID", ctx, false, h.g, h.key, []string{"asset:image:segment[7]"}, graph.ErrUnknownNode, false, true},
		// Executor.Edit takes it, on the key's graph, which has the node
		// too; EditTx, without run records to build that graph of, does not.
		{"another graph than the key's", ctx, false, longer, h.key, []string{"script"}, executor.ErrInvalidRequest, true, false},
		{"a nil transaction", ctx, true, h.g, h.key, []string{"script"}, executor.ErrInvalidRequest, false, false},
		{"a graph key too long", ctx, false, h.g, strings.Repeat("k", pgstore.MaxGraphKeyBytes+1), []string{"script"}, pgstore.ErrKeyTooLong, false, false},
		{"a done context", done, false, h.g, h.key, []string{"script"}, context.Canceled, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := h.load(ctx)
			tx, err := h.pg.Pool.Begin(ctx)
			require.NoError(t, err)
			defer tx.Rollback(context.Background()) //nolint:errcheck // committed below
			h.save(ctx, tx, "script", tc.name)
			var arg pgx.Tx = tx
			if tc.nilTx {
				arg = nil
			}
			v, err := h.s.EditTx(tc.ctx, arg, tc.g, tc.key, tc.ids...)
			require.ErrorIs(t, err, tc.is)
			if errors.Is(tc.is, graph.ErrMalformedID) || errors.Is(tc.is, graph.ErrUnknownNode) {
				require.ErrorIs(t, err, executor.ErrInvalidRequest)
				var idErr *graph.IDError
				require.ErrorAs(t, err, &idErr)
			}
			assert.Zero(t, v)
			if tc.asEdit {
				_, editErr := e.Edit(ctx, tc.g, tc.key, tc.ids...)
				require.Error(t, editErr)
				assert.Equal(t, editErr.Error(), err.Error())
			}

			// The graph's row: another transaction finds it locked only
			// after a refusal that came after the lock.
			other, err := h.pg.Pool.Begin(ctx)
			require.NoError(t, err)
			_, lockErr := other.Exec(ctx, `SELECT 1 FROM `+pgx.Identifier{h.pg.Schema, "graphs"}.Sanitize()+
				` WHERE graph_key = $1 FOR UPDATE NOWAIT`, h.key)
			require.NoError(t, other.Rollback(ctx))
			if tc.locks {
				var pe *pgconn.PgError
				require.ErrorAs(t, lockErr, &pe)
				assert.Equal(t, "55P03", pe.Code, "lock_not_available")
			} else {
				require.NoError(t, lockErr, "a request refused before any SQL locked the graph")
			}

			require.NoError(t, tx.Commit(ctx), "the host's transaction cannot go on")
			assert.Equal(t, tc.name, h.saved(ctx, "script"))
			assert.Equal(t, before, h.load(ctx), "a refused edit changed the states")
		})
	}
}

// The first edit of a key never committed makes its graphs row, at
// version 1, and the nodes' first revisions, dirty. Two at once, in two
// transactions: the second, whose lock found no row, waits in its insert
// for the first transaction, finds its row there when it commits,
// locks it and edits at version 2, so that the node has two revisions.
// A run then makes the graph, the node at its second revision.
func TestEditTxOfANewKey(t *testing.T) {
	t.Parallel()
	h, e := newEditHost(t)
	ctx := testenv.Context(t, time.Minute)
	key := h.key + "-new"

	first, err := h.pg.Pool.Begin(ctx)
	require.NoError(t, err)
	defer first.Rollback(context.Background()) //nolint:errcheck // committed below
	v, err := h.s.EditTx(ctx, first, h.g, key, "script")
	require.NoError(t, err)
	assert.Equal(t, int64(1), v)

	second, err := h.pg.Pool.Begin(ctx)
	require.NoError(t, err)
	defer second.Rollback(context.Background()) //nolint:errcheck // committed below
	type result struct {
		v   int64
		err error
	}
	got := make(chan result, 1)
	go func() {
		v, err := h.s.EditTx(ctx, second, h.g, key, "script")
		got <- result{v, err}
	}()
	waitFor(t, ctx, h.pg, backend(t, ctx, first))
	require.NoError(t, first.Commit(ctx))
	r := <-got
	require.NoError(t, r.err)
	assert.Equal(t, int64(2), r.v)
	require.NoError(t, second.Commit(ctx))

	snap, err := h.s.Load(ctx, key)
	require.NoError(t, err)
	assert.Equal(t, int64(2), snap.Version)
	require.Len(t, snap.States, 1)
	st := snap.States["script"]
	assert.Equal(t, dirty.StatusDirty, st.Status)
	assert.Equal(t, int64(2), st.Rev)

	rep, err := e.Run(ctx, executor.RunRequest{GraphKey: key, Graph: h.g})
	require.NoError(t, err)
	assert.Len(t, rep.Generated, h.g.Len())
	snap, err = h.s.Load(ctx, key)
	require.NoError(t, err)
	assert.Equal(t, int64(2), snap.States["script"].Rev)
}

// In a REPEATABLE READ transaction whose snapshot came before a commit of
// the graph, EditTx fails with a serialization failure (SQLSTATE 40001),
// as its doc says, rather than edit states it did not see: the host runs
// its transaction again, which then edits.
func TestEditTxInRepeatableRead(t *testing.T) {
	t.Parallel()
	h, e := newEditHost(t)
	ctx := testenv.Context(t, time.Minute)

	tx, err := h.pg.Pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
	require.NoError(t, err)
	defer tx.Rollback(context.Background()) //nolint:errcheck // failed below
	h.save(ctx, tx, "script", "v1")         // the snapshot
	_, err = e.Edit(ctx, h.g, h.key, "asset:music")
	require.NoError(t, err)
	before := h.load(ctx)
	_, err = h.s.EditTx(ctx, tx, h.g, h.key, "script")
	var pe *pgconn.PgError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "40001", pe.Code)
	require.NoError(t, tx.Rollback(ctx))
	assert.Equal(t, before, h.load(ctx))

	tx, err = h.pg.Pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
	require.NoError(t, err)
	h.save(ctx, tx, "script", "v1")
	v, err := h.s.EditTx(ctx, tx, h.g, h.key, "script")
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))
	assert.Equal(t, before.Version+1, v)
	assert.Equal(t, before.States["script"].Rev+1, h.load(ctx).States["script"].Rev)
}

// The states that EditTx leaves are those Executor.Edit leaves, but for
// their times: on two keys with the same states, one edited each way.
func TestEditTxWritesWhatEditWrites(t *testing.T) {
	t.Parallel()
	h, e := newEditHost(t)
	ctx := testenv.Context(t, time.Minute)
	other := h.key + "-edit"
	_, err := e.Run(ctx, executor.RunRequest{GraphKey: other, Graph: h.g})
	require.NoError(t, err)
	ids := []string{"asset:video:segment[2]", "script", "asset:video:segment[2]"}

	before := h.load(ctx)
	tx, err := h.pg.Pool.Begin(ctx)
	require.NoError(t, err)
	v, err := h.s.EditTx(ctx, tx, h.g, h.key, ids...)
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))
	assert.Equal(t, before.Version+1, v)
	_, err = e.Edit(ctx, h.g, other, ids...)
	require.NoError(t, err)

	viaTx := h.load(ctx)
	viaEdit, err := h.s.Load(ctx, other)
	require.NoError(t, err)
	// strip drops what differs between the keys: the times, the assets'
	// references (their keys start with the graph key) and the token of
	// the graph's making.
	strip := func(states map[string]dirty.State) map[string]dirty.State {
		out := maps.Clone(states)
		for id, st := range out {
			st.UpdatedAt, st.AssetRef = time.Time{}, ""
			if id == executor.GraphStateID {
				st.OutputHash = ""
			}
			out[id] = st
		}
		return out
	}
	assert.Equal(t, strip(viaEdit.States), strip(viaTx.States))
	for _, id := range ids {
		assert.Equal(t, dirty.StatusDirty, viaTx.States[id].Status, id)
	}
}

// An edit of a deleted graph moves its tombstone's version on and gives
// the nodes their first revisions, as Executor.Edit does, but does not
// make the graph the key's again: it records no fingerprint.
func TestEditTxOfADeletedGraph(t *testing.T) {
	t.Parallel()
	h, _ := newEditHost(t)
	ctx := testenv.Context(t, time.Minute)
	deleted, err := h.s.DeleteGraph(ctx, h.key)
	require.NoError(t, err)
	require.True(t, deleted)
	tomb := h.load(ctx)

	tx, err := h.pg.Pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(context.Background()) //nolint:errcheck // committed below
	v, err := h.s.EditTx(ctx, tx, h.g, h.key, "script")
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))
	assert.Equal(t, tomb.Version+1, v)
	snap := h.load(ctx)
	assert.Equal(t, v, snap.Version)
	require.Len(t, snap.States, 1)
	assert.Equal(t, int64(1), snap.States["script"].Rev)
	assert.Equal(t, dirty.StatusDirty, snap.States["script"].Status)
}
