package pghistory_test

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/internal/testenv"
	"github.com/regengraph/regen/progress/pghistory"
	"github.com/regengraph/regen/progress/redisstream"
)

// newHistory returns a migrated History in a schema private to the test,
// on a pool of its own in the query mode given, with opts (whose Schema
// is set here) and cfg applied to the pool's config. It skips the test
// (fails it in CI) when Postgres cannot be reached.
func newHistory(t testing.TB, mode pgx.QueryExecMode, opts pghistory.Options, cfg func(*pgxpool.Config)) (*pghistory.History, *testenv.Postgres) {
	t.Helper()
	pg := testenv.NewPostgres(t)
	pc := pg.Pool.Config()
	pc.ConnConfig.DefaultQueryExecMode = mode
	if cfg != nil {
		cfg(pc)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	require.NoError(t, err)
	t.Cleanup(pool.Close) // before testenv drops the schema
	opts.Schema = pg.Schema
	h, err := pghistory.New(pool, opts)
	require.NoError(t, err)
	require.NoError(t, h.Migrate(context.Background()))
	return h, pg
}

// newStream returns a redisstream Stream on the shared Redis under the
// test's own key prefix, closed (and its keys deleted) when the test ends.
func newStream(t *testing.T, opts redisstream.Options) *redisstream.Stream {
	t.Helper()
	r := testenv.NewRedis(t)
	opts.KeyTemplate = r.Prefix + redisstream.RunIDPlaceholder
	if opts.BlockTime == 0 {
		opts.BlockTime = 100 * time.Millisecond
	}
	opts.Logger = slog.New(slog.DiscardHandler)
	s, err := redisstream.New(r.Client, opts)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

// tripCounter counts the queries a pool sends, a batch as one: its round
// trips.
type tripCounter struct{ n atomic.Int64 }

func (c *tripCounter) count() int64 { return c.n.Load() }

func (c *tripCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.n.Add(1)
	return ctx
}

func (c *tripCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (c *tripCounter) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	c.n.Add(1)
	return ctx
}

func (c *tripCounter) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

func (c *tripCounter) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// count returns the rows of a table of the test's schema.
func count(t *testing.T, pg *testenv.Postgres, table string) int {
	t.Helper()
	var n int
	require.NoError(t, pg.Pool.QueryRow(context.Background(),
		"SELECT count(*) FROM "+pgx.Identifier{pg.Schema, table}.Sanitize()).Scan(&n))
	return n
}
