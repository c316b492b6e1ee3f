package testenv

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
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

// RowWriterPool returns a pool on p's Postgres whose connections act as a
// new role that may only use p.Schema and read and write the rows of its
// tables (as many hosts run their service): one that may not create or
// alter anything. Make the tables first: the role gets the rows of the
// tables there when it is called. The test skips (fails in CI) if its
// user may not create a role. When the test ends, the pool is closed and
// the role dropped, with what it owns and its grants, before p's schema.
func (p *Postgres) RowWriterPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	ctx := context.Background()
	name := UniqueName(t)
	role := pgx.Identifier{"regentest_" + name[len(name)-12:]}.Sanitize() // the random suffix
	if _, err := p.Pool.Exec(ctx, "CREATE ROLE "+role+" NOLOGIN"); err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "42501" {
			Unavailable(t, "the test's Postgres user may not create a role (%v)", err)
			return nil
		}
		t.Fatalf("testenv: create role %s: %v", role, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := p.Pool.Exec(ctx, "DROP OWNED BY "+role+"; DROP ROLE "+role); err != nil {
			t.Errorf("testenv: drop role %s: %v", role, err)
		}
	})
	schema := pgx.Identifier{p.Schema}.Sanitize()
	if _, err := p.Pool.Exec(ctx, "GRANT USAGE ON SCHEMA "+schema+" TO "+role+
		"; GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "+schema+" TO "+role); err != nil {
		t.Fatalf("testenv: grant role %s the rows of %s: %v", role, p.Schema, err)
	}
	cfg := p.Pool.Config()
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		_, err := c.Exec(ctx, "SET ROLE "+role)
		return err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("testenv: pool of role %s: %v", role, err)
	}
	t.Cleanup(pool.Close) // runs before the role is dropped
	return pool
}

// TimedPoolTimeout is the timeout that a [Postgres.TimedPool] session
// sets, as SHOW gives it. It also bounds, in real time, what a call does
// before its first statement turns it off, that statement included: a
// second leaves that room on a loaded machine, where 50 ms ended
// Migrate's first statement ("turn the timeouts off": SQLSTATE 57014)
// under CI-like load.
const TimedPoolTimeout = "1s"

// TimedPool returns a pool of one connection to [PostgresURL] whose
// session sets param, a timeout such as lock_timeout or
// statement_timeout, to [TimedPoolTimeout], as a host bounds its
// queries, and the application_name that tells that session in
// pg_stat_activity. The pool is closed when the test ends.
func (p *Postgres) TimedPool(t testing.TB, param string) (*pgxpool.Pool, string) {
	t.Helper()
	name := UniqueName(t)
	app := "timed-" + name[len(name)-12:] // its random suffix
	cfg, err := pgxpool.ParseConfig(PostgresURL())
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	cfg.MaxConns = 1
	cfg.ConnConfig.RuntimeParams[param] = TimedPoolTimeout
	cfg.ConnConfig.RuntimeParams["application_name"] = app
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatalf("testenv: pool with %s: %v", param, err)
	}
	t.Cleanup(pool.Close)
	return pool, app
}

// RequireWaitsPastTimeout checks that call, made on a pool from
// TimedPool whose application_name is app, waits for a lock that the
// test holds, for three times the pool's timeout, and succeeds once
// release lets the lock go: it calls call in a goroutine, waits until
// app's session waits for a lock (failing if call returns first), waits
// 3 s more (failing if call gives up), then calls release and requires
// call to return nil.
func (p *Postgres) RequireWaitsPastTimeout(t testing.TB, ctx context.Context, app, what string, call, release func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- call() }()
	for waiting := 0; waiting == 0; {
		select {
		case err := <-done:
			t.Fatalf("returned before it waited for %s: %v", what, err)
		case <-time.After(5 * time.Millisecond): // polling the server, bounded by ctx
		}
		if err := p.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
WHERE application_name = $1 AND wait_event_type = 'Lock'`, app).Scan(&waiting); err != nil {
			t.Fatalf("testenv: pg_stat_activity: %v", err)
		}
	}
	select {
	case err := <-done:
		t.Fatalf("gave up before %s was free: %v", what, err)
	case <-time.After(3 * time.Second): // three times TimedPoolTimeout
	}
	if err := release(); err != nil {
		t.Fatalf("testenv: let %s go: %v", what, err)
	}
	if err := <-done; err != nil {
		t.Fatalf("after the wait for %s: %v", what, err)
	}
}

// WaitBlockedBy waits until a statement waits for a lock that the
// backend pid holds (a transaction of the test that holds a row), and
// fails the test if the call whose result done gives returns first, or
// if ctx ends.
func (p *Postgres) WaitBlockedBy(t testing.TB, ctx context.Context, pid int, done <-chan error) {
	t.Helper()
	for {
		var n int
		if err := p.Pool.QueryRow(ctx,
			"SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))", pid).Scan(&n); err != nil {
			t.Fatalf("testenv: pg_stat_activity: %v", err)
		}
		if n > 0 {
			return
		}
		select {
		case err := <-done:
			t.Fatalf("the call returned before it waited for backend %d's lock: %v", pid, err)
		case <-time.After(time.Millisecond): // polling the server, bounded by the call and ctx
		}
	}
}

// WaitIdle polls pg_stat_activity until no backend of the application
// app is busy: each is idle in its pool, or gone. It fails the test if
// ctx ends first.
func (p *Postgres) WaitIdle(t testing.TB, ctx context.Context, app string) {
	t.Helper()
	for {
		var n int
		if err := p.Pool.QueryRow(ctx,
			"SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND state IS DISTINCT FROM 'idle'", app).Scan(&n); err != nil {
			t.Fatalf("testenv: pg_stat_activity: %v", err)
		}
		if n == 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("a backend of %s is still busy: %v", app, context.Cause(ctx))
		case <-time.After(time.Millisecond): // polling the server, bounded by ctx
		}
	}
}
