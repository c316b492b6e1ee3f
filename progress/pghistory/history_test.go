package pghistory_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/internal/testenv"
	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/pghistory"
	"github.com/regengraph/regen/progress/redisstream"
	"github.com/regengraph/regen/progress/sinktest"
)

var modes = []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeSimpleProtocol}

// TestConformance runs the History kit against one migrated schema per
// pgx query mode a host may configure on its pool: the default, which
// prepares and caches statements, and the simple protocol that PgBouncer
// in transaction mode needs. The kit's run IDs are unique per subtest, so
// its subtests share the schema. A page of 7 events makes every replay
// span many pages.
func TestConformance(t *testing.T) {
	t.Parallel() // each test has its own schema
	for _, mode := range modes {
		for _, page := range []int{0, 7} {
			t.Run(fmt.Sprintf("%v/page=%d", mode, page), func(t *testing.T) {
				h, _ := newHistory(t, mode, pghistory.Options{PageSize: page}, nil)
				sinktest.History(t, func(*testing.T) progress.History { return h })
			})
		}
	}
}

// TestConformanceRedis puts the History behind a redisstream Stream, on
// the real servers: the Stream reads from Postgres what Redis does not
// hold, with no gap and no duplicate at the seam.
func TestConformanceRedis(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			h, _ := newHistory(t, mode, pghistory.Options{PageSize: 64}, nil)
			t.Run("RunHistory", func(t *testing.T) {
				sinktest.RunHistory(t, func(t *testing.T) (progress.Sink, progress.Source, progress.History) {
					s := newStream(t, redisstream.Options{History: h})
					return s, s, h
				})
			})
			// Trimmed far below what the kit publishes, archived beside it.
			t.Run("RunHistory/trimmed", func(t *testing.T) {
				sinktest.RunHistory(t, func(t *testing.T) (progress.Sink, progress.Source, progress.History) {
					s := newStream(t, redisstream.Options{MaxLen: 50, History: h, PageSize: 20, HubBuffer: 32})
					return progress.NewFanout(progress.NewArchive(h), s), s, h
				})
			})
			t.Run("Run/trimmed", func(t *testing.T) {
				sinktest.Run(t, func(t *testing.T) (progress.Sink, progress.Source) {
					s := newStream(t, redisstream.Options{MaxLen: 200, History: h, PageSize: 50, HubBuffer: 64})
					return progress.NewFanout(progress.NewArchive(h), s), s
				})
			})
		})
	}
}

func TestNewOptions(t *testing.T) {
	t.Parallel()
	// New touches no database, so a pool that never connects will do.
	pool, err := pgxpool.New(context.Background(), "postgres://nobody@127.0.0.1:1/none?sslmode=disable")
	require.NoError(t, err)
	t.Cleanup(pool.Close)

	long := strings.Repeat("a", 63)
	for _, tc := range []struct {
		schema string
		want   string // the schema used; "" for a refusal
	}{
		{"", "regen"},
		{"regen", "regen"},
		{"tenant_42", "tenant_42"},
		{"_private", "_private"},
		{"user", "user"}, // a keyword: the History quotes it
		{long, long},
		{long + "a", ""},
		{"Regen", ""},
		{"42tenant", ""},
		{"pg_regen", ""},
		{"re-gen", ""},
		{"regen.progress_events", ""},
		{`regen"; DROP TABLE x; --`, ""},
		{"rëgen", ""},
		{"re gen", ""},
		{"re\x00gen", ""},
	} {
		t.Run(tc.schema, func(t *testing.T) {
			h, err := pghistory.New(pool, pghistory.Options{Schema: tc.schema})
			if tc.want != "" {
				require.NoError(t, err)
				assert.Equal(t, tc.want, h.Schema())
				return
			}
			require.ErrorIs(t, err, pghistory.ErrInvalidSchema)
			var se *pghistory.SchemaError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, tc.schema, se.Schema)
			assert.Contains(t, err.Error(), "lowercase ASCII letters, digits and underscores", "the message says what is allowed")
			assert.Nil(t, h)
		})
	}
	for _, page := range []int{-1, pghistory.MaxPageSize + 1} {
		_, err := pghistory.New(pool, pghistory.Options{PageSize: page})
		require.ErrorIs(t, err, pghistory.ErrInvalidOptions, "PageSize %d", page)
		assert.Contains(t, err.Error(), fmt.Sprintf("PageSize %d: want 1 to %d", page, pghistory.MaxPageSize))
	}
	_, err = pghistory.New(pool, pghistory.Options{PageSize: pghistory.MaxPageSize})
	assert.NoError(t, err)
	_, err = pghistory.New(nil, pghistory.Options{})
	assert.ErrorIs(t, err, pghistory.ErrNoPool)
}

// TestMigrateWithPgstore migrates one fresh schema with a History and a
// pgstore Store from two pools at once, twice each: both work afterwards,
// and neither Migrate touches the other's tables.
func TestMigrateWithPgstore(t *testing.T) {
	t.Parallel()
	pg := testenv.NewPostgres(t)
	other := testenv.NewPostgres(t)
	ctx := testenv.Context(t, 30*time.Second)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		pool := []*pgxpool.Pool{pg.Pool, other.Pool}[i%2]
		wg.Go(func() {
			if i%4 < 2 {
				h, err := pghistory.New(pool, pghistory.Options{Schema: pg.Schema})
				if err == nil {
					err = h.Migrate(ctx)
				}
				errs[i] = err
				return
			}
			s, err := pgstore.New(pool, pgstore.Options{Schema: pg.Schema})
			if err == nil {
				err = s.Migrate(ctx)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	require.NoError(t, errors.Join(errs...))

	h, err := pghistory.New(pg.Pool, pghistory.Options{Schema: pg.Schema})
	require.NoError(t, err)
	run := sinktest.RunID(t)
	require.NoError(t, h.Append(ctx, sinktest.Events(run, 1, 3)...))
	s, err := pgstore.New(pg.Pool, pgstore.Options{Schema: pg.Schema})
	require.NoError(t, err)
	require.NoError(t, s.Migrate(ctx), "pgstore's Migrate after the History's")
	require.NoError(t, h.Migrate(ctx), "the History's Migrate again")
	assert.Equal(t, 3, count(t, pg, "progress_events"), "Migrate again kept the events")

	rows, err := pg.Pool.Query(ctx,
		"SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name", pg.Schema)
	require.NoError(t, err)
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	assert.Equal(t, []string{"assets", "graphs", "node_states", "progress_events", "progress_runs", "progress_schema_version", "runs", "schema_version"}, tables)
	var version int
	require.NoError(t, pg.Pool.QueryRow(ctx, "SELECT max(version) FROM "+pgx.Identifier{pg.Schema, "schema_version"}.Sanitize()).Scan(&version))
	assert.Equal(t, pgstore.SchemaVersion, version, "pgstore's layout version is its own")
	assert.Equal(t, []int{pghistory.SchemaVersion}, versions(t, pg), "one row, however many Migrates ran at once")
}

// versions returns the layout versions that the test's schema records
// for the History.
func versions(t *testing.T, pg *testenv.Postgres) []int {
	t.Helper()
	rows, err := pg.Pool.Query(context.Background(),
		"SELECT version FROM "+pgx.Identifier{pg.Schema, "progress_schema_version"}.Sanitize()+" ORDER BY version")
	require.NoError(t, err)
	v, err := pgx.CollectRows(rows, pgx.RowTo[int])
	require.NoError(t, err)
	return v
}

// unversionedDDL makes the tables of a schema made before versions were
// recorded, in the schema %[1]s.
const unversionedDDL = `
CREATE TABLE %[1]s.progress_events (
	run_id      text COLLATE "C" NOT NULL,
	seq         bigint      NOT NULL CHECK (seq > 0),
	event       bytea       NOT NULL,
	archived_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (run_id, seq)
);
CREATE TABLE %[1]s.progress_runs (
	run_id  text COLLATE "C" PRIMARY KEY,
	last_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX progress_runs_last_at ON %[1]s.progress_runs (last_at);`

// Migrate records the layout version; it brings a schema made before
// versions were recorded (whose events had an archived_at column, which
// nothing read) to the current one, keeping its events; and it refuses a
// schema of a later release's layout, changing nothing, with an error
// that says what it found and what it supports.
func TestMigrateVersions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		setup   string // SQL run before Migrate, %[1]s the schema
		newer   bool   // the setup records a newer version than SchemaVersion
		columns []string
	}{
		{"new", "", false, []string{"run_id", "seq", "event"}},
		{"made before versions", unversionedDDL, false, []string{"run_id", "seq", "event"}},
		{"of a later release", unversionedDDL + `
CREATE TABLE %[1]s.progress_schema_version (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());
INSERT INTO %[1]s.progress_schema_version (version) VALUES (1), (2);`, true, []string{"run_id", "seq", "event", "archived_at"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pg := testenv.NewPostgres(t)
			ctx := testenv.Context(t, 20*time.Second)
			h, err := pghistory.New(pg.Pool, pghistory.Options{Schema: pg.Schema})
			require.NoError(t, err)
			run := sinktest.RunID(t)
			if tt.setup != "" {
				_, err := pg.Pool.Exec(ctx, fmt.Sprintf("CREATE SCHEMA %[1]s;"+tt.setup, pgx.Identifier{pg.Schema}.Sanitize()))
				require.NoError(t, err)
				require.NoError(t, h.Append(ctx, sinktest.Events(run, 1, 3)...))
			}
			for range 2 { // idempotent
				err = h.Migrate(ctx)
				if !tt.newer {
					require.NoError(t, err)
					continue
				}
				require.ErrorIs(t, err, pghistory.ErrSchemaTooNew)
				var ve *pghistory.SchemaVersionError
				require.ErrorAs(t, err, &ve)
				assert.Equal(t, pghistory.SchemaVersionError{Schema: pg.Schema, Found: 2, Supported: pghistory.SchemaVersion}, *ve)
				assert.Contains(t, err.Error(), fmt.Sprintf("holds layout version 2, and this release supports up to version %d", pghistory.SchemaVersion))
			}
			rows, err := pg.Pool.Query(ctx, "SELECT column_name FROM information_schema.columns "+
				"WHERE table_schema = $1 AND table_name = 'progress_events' ORDER BY ordinal_position", pg.Schema)
			require.NoError(t, err)
			columns, err := pgx.CollectRows(rows, pgx.RowTo[string])
			require.NoError(t, err)
			assert.Equal(t, tt.columns, columns)
			if tt.newer {
				assert.Equal(t, []int{1, 2}, versions(t, pg), "a refused Migrate records nothing")
				return
			}
			assert.Equal(t, []int{pghistory.SchemaVersion}, versions(t, pg))
			require.NoError(t, h.Append(ctx, sinktest.Events(run, 1, 5)...))
			assert.Equal(t, sinktest.Span(1, 5), sinktest.Seqs(replay(t, h, run, 0)), "the events kept, and appended after")
		})
	}
}

func TestNotMigrated(t *testing.T) {
	t.Parallel()
	pg := testenv.NewPostgres(t)
	h, err := pghistory.New(pg.Pool, pghistory.Options{Schema: pg.Schema})
	require.NoError(t, err)
	ctx := testenv.Context(t, 10*time.Second)
	err = h.Append(ctx, sinktest.Events("r", 1, 1)...)
	assert.ErrorIs(t, err, pghistory.ErrNotMigrated)
	assert.Contains(t, err.Error(), `append run "r" seq 1`)
	err = h.Replay(ctx, "r", 0, func(progress.Event) error { return nil })
	assert.ErrorIs(t, err, pghistory.ErrNotMigrated)
	_, _, err = h.LastEvent(ctx, "r")
	assert.ErrorIs(t, err, pghistory.ErrNotMigrated)
	_, err = h.DeleteRun(ctx, "r")
	assert.ErrorIs(t, err, pghistory.ErrNotMigrated)
	_, err = h.Prune(ctx, time.Hour)
	assert.ErrorIs(t, err, pghistory.ErrNotMigrated)
}

// TestLimits appends events that Postgres cannot hold or index: each call
// is refused whole, before any SQL (the pool here never connects), with
// an error a caller can branch on.
func TestLimits(t *testing.T) {
	t.Parallel()
	pool, err := pgxpool.New(context.Background(), "postgres://nobody@127.0.0.1:1/none?sslmode=disable")
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	offline, err := pghistory.New(pool, pghistory.Options{})
	require.NoError(t, err)
	ctx := testenv.Context(t, 10*time.Second)

	event := func(run string, seq uint64) progress.Event {
		e := sinktest.Events("x", 1, 1)[0]
		e.RunID, e.Seq = run, seq
		return e
	}
	long := strings.Repeat("é", pghistory.MaxRunIDBytes/2) + "x"
	for _, tc := range []struct {
		name    string
		run     string
		seq     uint64
		want    error
		notText bool
	}{
		{"too long", long, 1, pghistory.ErrRunIDTooLong, false},
		{"invalid UTF-8", "run-\xff\xfe", 1, pghistory.ErrRunIDNotText, true},
		{"NUL", "run\x00x", 1, pghistory.ErrRunIDNotText, true},
		{"seq over bigint", "run", pghistory.MaxSeq + 1, progress.ErrInvalidEvent, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			valid := event("ok", 1)
			err := offline.Append(ctx, valid, event(tc.run, tc.seq))
			require.ErrorIs(t, err, tc.want)
			require.ErrorIs(t, err, progress.ErrInvalidEvent, "an event that cannot be stored is invalid")
			if tc.want == progress.ErrInvalidEvent {
				assert.Contains(t, err.Error(), "largest Postgres bigint")
				return
			}
			var re *pghistory.RunIDError
			require.ErrorAs(t, err, &re)
			assert.Equal(t, tc.run, re.RunID)
			assert.Equal(t, tc.notText, re.NotText)
			if tc.notText {
				assert.Contains(t, err.Error(), "not valid UTF-8 without NUL")
			} else {
				assert.Contains(t, err.Error(), fmt.Sprintf("is %d bytes long: want at most %d bytes", len(tc.run), pghistory.MaxRunIDBytes))
			}
			// Lookups of it find nothing, without a query either.
			var n int
			require.NoError(t, offline.Replay(ctx, tc.run, 0, func(progress.Event) error { n++; return nil }))
			_, found, err := offline.LastEvent(ctx, tc.run)
			require.NoError(t, err)
			deleted, err := offline.DeleteRun(ctx, tc.run)
			require.NoError(t, err)
			assert.Zero(t, n+int(deleted))
			assert.False(t, found)
		})
	}

	// On a real server: the longest run ID and the highest Seq are stored,
	// and a refused call stores nothing.
	h, pg := newHistory(t, pgx.QueryExecModeCacheStatement, pghistory.Options{}, nil)
	longest := strings.Repeat("\U0001F3AC", pghistory.MaxRunIDBytes/4) // 4 bytes each
	require.Len(t, longest, pghistory.MaxRunIDBytes)
	top := event("top", pghistory.MaxSeq)
	require.NoError(t, h.Append(ctx, event(longest, 1), top))
	assert.Equal(t, []uint64{1}, sinktest.Seqs(replay(t, h, longest, 0)))
	assert.Equal(t, []uint64{pghistory.MaxSeq}, sinktest.Seqs(replay(t, h, "top", 0)))
	assert.Empty(t, replay(t, h, "top", pghistory.MaxSeq))
	assert.Empty(t, replay(t, h, "top", 1<<63+5), "after beyond MaxSeq")
	require.Error(t, h.Append(ctx, event("refused", 1), event(long, 1)))
	assert.Equal(t, 2, count(t, pg, "progress_events"))
	assert.Equal(t, 2, count(t, pg, "progress_runs"))
}

func replay(t *testing.T, h progress.History, run string, after uint64) []progress.Event {
	t.Helper()
	var got []progress.Event
	require.NoError(t, h.Replay(testenv.Context(t, 15*time.Second), run, after, func(e progress.Event) error {
		got = append(got, e)
		return nil
	}))
	return got
}

// TestText stores text that Postgres text and jsonb cannot hold: it goes
// through the event's JSON form, which escapes NUL and writes invalid
// UTF-8 as U+FFFD, so it comes back as from any other backend (the JSON
// round trip), never corrupting the row nor failing the call.
func TestText(t *testing.T) {
	t.Parallel()
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			h, _ := newHistory(t, mode, pghistory.Options{}, nil)
			run := sinktest.RunID(t)
			texts := []string{"nul\x00nul", "bad \xff\xfe utf-8", "\xc3", "\x00", "ok \U0001F3AC", `\u0000 written out`}
			events := sinktest.Events(run, 1, uint64(len(texts)))
			for i, s := range texts {
				events[i].Message, events[i].Error, events[i].Node, events[i].GraphKey = s, s, s, s
			}
			require.NoError(t, h.Append(t.Context(), events...))
			got := replay(t, h, run, 0)
			want := make([]progress.Event, len(events))
			for i, e := range events {
				data, err := json.Marshal(e)
				require.NoError(t, err)
				require.NoError(t, json.Unmarshal(data, &want[i]))
			}
			assert.Empty(t, sinktest.Diff(want, got), "as the JSON form round trip gives")
			assert.Equal(t, "nul\x00nul", got[0].Message, "NUL comes back")
			assert.Equal(t, "bad \ufffd\ufffd utf-8", got[1].Message, "invalid UTF-8 comes back as U+FFFD")
			last, found, err := h.LastEvent(t.Context(), run)
			require.NoError(t, err)
			require.True(t, found)
			assert.Equal(t, want[len(want)-1].Message, last.Message)
		})
	}
}

// TestRoundTrips counts queries: Append is one whatever its size and
// runs, Replay one per page (and one more to see the end of a run that
// fills its last page), LastEvent one.
func TestRoundTrips(t *testing.T) {
	t.Parallel()
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			var trips tripCounter
			h, _ := newHistory(t, mode, pghistory.Options{PageSize: 100}, func(c *pgxpool.Config) { c.ConnConfig.Tracer = &trips })
			ctx := t.Context()
			run := sinktest.RunID(t)
			trips.n.Store(0)
			events := append(sinktest.Events(run, 1, 64), sinktest.Events(run+"-b", 1, 64)...)
			require.NoError(t, h.Append(ctx, events...))
			assert.Equal(t, int64(1), trips.count(), "Append of 128 events of two runs")
			require.NoError(t, h.Append(ctx, sinktest.Events(run, 65, 250)...))
			for _, tc := range []struct {
				after uint64
				want  int64
			}{{0, 3}, {50, 3}, {150, 2}, {200, 1}, {250, 1}} {
				trips.n.Store(0)
				assert.Len(t, replay(t, h, run, tc.after), 250-int(tc.after))
				assert.Equal(t, tc.want, trips.count(), "Replay(%d) of a 250-event run, 100 a page", tc.after)
			}
			trips.n.Store(0)
			_, _, err := h.LastEvent(ctx, run)
			require.NoError(t, err)
			assert.Equal(t, int64(1), trips.count(), "LastEvent")
		})
	}
}

// TestReplayHoldsNoConnection replays on a pool of one connection and
// uses the History from the callback: that needs the connection, which
// Replay must have released.
func TestReplayHoldsNoConnection(t *testing.T) {
	t.Parallel()
	h, _ := newHistory(t, pgx.QueryExecModeCacheStatement, pghistory.Options{PageSize: 10},
		func(c *pgxpool.Config) { c.MaxConns = 1 })
	ctx := testenv.Context(t, 20*time.Second)
	run := sinktest.RunID(t)
	require.NoError(t, h.Append(ctx, sinktest.Events(run, 1, 35)...))
	var seqs []uint64
	err := h.Replay(ctx, run, 0, func(e progress.Event) error {
		seqs = append(seqs, e.Seq)
		last, _, err := h.LastEvent(ctx, run)
		if err != nil {
			return err
		}
		if e.Seq == 20 { // and append while replaying: later pages see it
			return h.Append(ctx, sinktest.Events(run, 36, 40)...)
		}
		if last.Seq < 35 {
			return fmt.Errorf("LastEvent gave seq %d", last.Seq)
		}
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, sinktest.Span(1, 40), seqs)
}

// TestAppendManyRunsConcurrently appends batches of several runs, in
// different orders and overlapping, from several goroutines: no call may
// deadlock or fail, and each run holds each event once.
func TestAppendManyRunsConcurrently(t *testing.T) {
	t.Parallel()
	h, pg := newHistory(t, pgx.QueryExecModeCacheStatement, pghistory.Options{}, nil)
	ctx := testenv.Context(t, 60*time.Second)
	base := sinktest.RunID(t)
	runs := []string{base + "-a", base + "-b", base + "-c", base + "-d"}
	const writers, per = 6, 200
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for w := range writers {
		wg.Go(func() {
			for lo := uint64(1); lo <= per; lo += 20 {
				var batch []progress.Event
				for i := range runs {
					run := runs[(i+w)%len(runs)] // each writer its own order of runs
					evs := sinktest.Events(run, lo, lo+19)
					if w%2 == 1 {
						for l, r := 0, len(evs)-1; l < r; l, r = l+1, r-1 {
							evs[l], evs[r] = evs[r], evs[l]
						}
					}
					batch = append(batch, evs...)
				}
				if err := h.Append(ctx, batch...); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
	for _, run := range runs {
		assert.Equal(t, sinktest.Span(1, per), sinktest.Seqs(replay(t, h, run, 0)), "run %s", run)
	}
	assert.Equal(t, len(runs), count(t, pg, "progress_runs"))
}

func TestCancelled(t *testing.T) {
	t.Parallel()
	h, pg := newHistory(t, pgx.QueryExecModeCacheStatement, pghistory.Options{}, nil)
	cause := errors.New("the host is shutting down")
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(cause)
	run := sinktest.RunID(t)
	assert.ErrorIs(t, h.Append(ctx, sinktest.Events(run, 1, 3)...), cause)
	assert.Zero(t, count(t, pg, "progress_events"), "a cancelled Append stores nothing")
	_, _, err := h.LastEvent(ctx, run)
	assert.ErrorIs(t, err, cause)
	_, err = h.DeleteRun(ctx, run)
	assert.ErrorIs(t, err, cause)
	_, err = h.Prune(ctx, 0)
	assert.ErrorIs(t, err, cause)
	assert.ErrorIs(t, h.Migrate(ctx), cause)
}
