package testenv

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Postgres is a pool on the shared test Postgres and the name of a schema
// private to one test. Other schemas belong to other tests.
type Postgres struct {
	// Pool is connected to [PostgresURL]; it is closed when the test ends.
	Pool *pgxpool.Pool
	// Schema is a fresh schema name, "regentest_<name>_<random>", a plain
	// lowercase identifier of at most 63 bytes. NewPostgres does not
	// create it; it drops it, with everything in it, when the test ends.
	Schema string
}

// NewPostgres connects to the shared Postgres at [PostgresURL], skipping
// the test (failing it in CI) if Postgres cannot be reached, and picks a
// schema name unique to the test. When the test ends it drops that schema
// (DROP SCHEMA ... CASCADE, that schema only) and closes the pool.
func NewPostgres(t testing.TB) *Postgres {
	t.Helper()
	RequireReachable(t, "Postgres", PostgresURL())
	cfg, err := pgxpool.ParseConfig(PostgresURL())
	if err != nil {
		t.Fatalf("testenv: REGEN_POSTGRES_URL %q: %v", PostgresURL(), err)
	}
	if cfg.MaxConns < 8 {
		cfg.MaxConns = 8 // enough for the stores' concurrency tests
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("testenv: Postgres pool for %s: %v", PostgresURL(), err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		Unavailable(t, "Postgres at %s does not answer (%v)", cfg.ConnConfig.Host, err)
		return nil
	}
	p := &Postgres{Pool: pool, Schema: schemaName(t)}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{p.Schema}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("testenv: drop schema %s: %v", p.Schema, err)
		}
		pool.Close()
	})
	return p
}

// schemaName returns "regentest_" and [UniqueName] in lowercase with '_'
// for '-', cut from the front to fit Postgres's 63-byte identifiers (the
// random suffix stays).
func schemaName(t testing.TB) string {
	const prefix, limit = "regentest_", 63
	name := strings.ReplaceAll(strings.ToLower(UniqueName(t)), "-", "_")
	if n := limit - len(prefix); len(name) > n {
		name = name[len(name)-n:]
	}
	return prefix + name
}
