package pgstore_test

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/internal/testenv"
)

// statements counts the statements a pool sends, by their first words.
type statements struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *statements) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	words := strings.Fields(d.SQL)
	c.mu.Lock()
	c.n[strings.Join(words[:min(len(words), 4)], " ")]++
	c.mu.Unlock()
	return ctx
}

func (c *statements) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// take returns the counts so far, and starts again from zero.
func (c *statements) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.n
	c.n = map[string]int{}
	return n
}

// A host's runs on the Postgres stores cost the same statements whatever
// the history kept: the same edit run makes the same statements after
// hundreds of runs and records as after a few, and no statement is sent
// once per record or per graph kept. Every connection goes back to the
// pool, after cancelled runs too. The prunes then delete what runs left
// behind and nothing a graph still needs: each graph keeps one asset per
// node, and a run afterwards regenerates nothing.
func TestLongRunCostsStayFlat(t *testing.T) {
	t.Parallel() // each test has its own schema
	_, pg := newStore(t)
	ctx := t.Context()
	count := &statements{n: map[string]int{}}
	cfg, err := pgxpool.ParseConfig(testenv.PostgresURL())
	require.NoError(t, err)
	cfg.ConnConfig.Tracer = count
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	s, err := pgstore.New(pool, pgstore.Options{Schema: pg.Schema})
	require.NoError(t, err)
	p := newProvider()
	e := newExecutor(t, s, p.registry())
	g := lecture(t)
	const keys, rounds = 8, 6
	key := func(k int) string { return fmt.Sprintf("lecture-%d", k) }
	edit := []dirty.Mark{{ID: "asset:narration:segment[3]", Reason: dirty.ReasonEdited}}

	// returned reports whether every connection went back to the pool. A
	// connection whose query a cancel interrupted is closed, and the pool
	// counts it until a goroutine of its own has closed it: that one is
	// waited for (a leak never ends, and fails the test).
	returned := func() bool {
		return assert.Eventually(t, func() bool { return pool.Stat().AcquiredConns() == 0 }, 10*time.Second, time.Millisecond,
			"connections not returned to the pool: %d", pool.Stat().AcquiredConns())
	}
	for k := range keys {
		_, err := e.Run(ctx, executor.RunRequest{GraphKey: key(k), Graph: g})
		require.NoError(t, err)
	}
	returned()
	var first map[string]int
	for round := range rounds {
		// A run cancelled as it starts, and its resume; then the same
		// edit on every graph, one run after another.
		r, err := e.Start(ctx, executor.RunRequest{GraphKey: key(0), Graph: g, Marks: edit})
		require.NoError(t, err)
		r.Cancel()
		_, _ = r.Wait() // cancelled, or ended first
		r, err = e.Resume(ctx, g, r.ID())
		require.NoError(t, err)
		_, err = r.Wait()
		require.NoError(t, err)
		returned()
		count.take()
		for k := range keys {
			rep, err := e.Run(ctx, executor.RunRequest{GraphKey: key(k), Graph: g, Marks: edit})
			require.NoError(t, err)
			require.Len(t, rep.Generated, 3, "the narration, its video and the timeline")
		}
		n := count.take()
		if round == 0 {
			first = maps.Clone(n)
			continue
		}
		assert.Equal(t, first, n, "statements of %d edit runs, after %d rounds", keys, round)
		returned()
	}
	rows := func(table string) int {
		var n int
		require.NoError(t, pg.Pool.QueryRow(ctx, fmt.Sprintf(`SELECT count(*) FROM "%s".%s`, pg.Schema, table)).Scan(&n))
		return n
	}
	assert.Equal(t, keys+rounds*(keys+2), rows("runs"), "a record a run")
	assert.Equal(t, keys*(g.Len()+1), rows("node_states"), "the nodes' states and each graph's own")

	_, err = s.PruneRuns(ctx, 0)
	require.NoError(t, err)
	_, err = s.PruneAssets(ctx, 0)
	require.NoError(t, err)
	assert.Zero(t, rows("runs"))
	assert.Equal(t, keys*g.Len(), rows("assets"), "an asset a node")
	calls := p.called()
	for k := range keys {
		requireAllClean(t, s, g, key(k))
		rep, err := e.Run(ctx, executor.RunRequest{GraphKey: key(k), Graph: g})
		require.NoError(t, err)
		assert.Empty(t, rep.Generated, "%s after the prunes", key(k))
	}
	assert.Equal(t, calls, p.called(), "generator calls after the prunes")
}
