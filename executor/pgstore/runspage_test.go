package pgstore_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
)

// ListRunsPage reads a graph's records in pages, in ListRuns's order
// (start time, a zero one first, then ID), each page at most limit
// records and its cursor where the next page starts: the pages, read one
// after the other, are ListRuns's list, each record once, however the
// records tie on their start or lack one. ListRuns read every record of
// a graph at once (100,000 of them: 730 ms and 375 MiB), and a host that
// served it whole to a client could not bound the answer.
func TestListRunsPage(t *testing.T) {
	t.Parallel() // its own schema
	s, _ := newStore(t)
	ctx := t.Context()
	key := "g"
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)
	var starts []time.Time
	for range 4 {
		starts = append(starts, time.Time{}) // no start: first
	}
	for i := range 6 {
		starts = append(starts, t0.Add(time.Duration(i/2)*time.Microsecond)) // ties, by twos
	}
	starts = append(starts, t0.Add(time.Hour))
	for i, st := range starts {
		rec := executor.Record{ID: fmt.Sprintf("run-%02d", len(starts)-i), GraphKey: key, Seconds: 10, TriggeredBy: "test",
			Status: executor.RunSucceeded, StartedAt: st}
		require.NoError(t, s.PutRun(ctx, rec))
	}
	require.NoError(t, s.PutRun(ctx, executor.Record{ID: "other", GraphKey: "g2", Seconds: 10, Status: executor.RunSucceeded, StartedAt: t0}))
	all, err := s.ListRuns(ctx, key)
	require.NoError(t, err)
	require.Len(t, all, len(starts))

	for _, limit := range []int{1, 2, 3, 4, 5, len(starts) - 1, len(starts), len(starts) + 1, pgstore.MaxRunsPage} {
		t.Run(fmt.Sprint("limit ", limit), func(t *testing.T) {
			var got []executor.Record
			cursor, pages := "", 0
			for {
				page, next, err := s.ListRunsPage(ctx, key, cursor, limit)
				require.NoError(t, err, "page %d", pages)
				pages++
				require.LessOrEqual(t, len(page), limit, "page %d", pages)
				got = append(got, page...)
				if next == "" {
					break
				}
				require.Len(t, page, limit, "a page before the last is full")
				require.Less(t, pages, len(starts)+1, "the pages do not end")
				cursor = next
			}
			if d := cmp.Diff(all, got); d != "" {
				t.Fatalf("the pages, one after the other, are not ListRuns's list (-want +got):\n%s", d)
			}
			assert.Equal(t, (len(starts)+limit-1)/limit, pages, "no empty page after a full last one")
		})
	}

	page, next, err := s.ListRunsPage(ctx, "none", "", 10)
	require.NoError(t, err)
	assert.NotNil(t, page, "[] for a graph without records")
	assert.Empty(t, page)
	assert.Empty(t, next)
	page, next, err = s.ListRunsPage(ctx, strings.Repeat("k", pgstore.MaxGraphKeyBytes+1), "", 10)
	require.NoError(t, err, "a graph key too long has no records")
	assert.Empty(t, page)
	assert.Empty(t, next)
}

// A limit out of 1 to MaxRunsPage, or a cursor that ListRunsPage did not
// make, is refused with a *PageError naming it, before any SQL; it
// wraps ErrInvalidPage and executor.ErrInvalidRequest.
func TestListRunsPageRefusesBadInput(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := t.Context()
	require.NoError(t, s.PutRun(ctx, executor.Record{ID: "a", GraphKey: "g", Seconds: 10, Status: executor.RunSucceeded, StartedAt: time.Now()}))
	_, good, err := s.ListRunsPage(ctx, "g", "", 1)
	require.NoError(t, err)
	require.Empty(t, good)
	for _, tc := range []struct {
		name, cursor string
		limit        int
		field, want  string
	}{
		{"no limit", "", 0, "limit", "pgstore: invalid page: limit 0: want 1 to 1000"},
		{"a negative limit", "", -1, "limit", "pgstore: invalid page: limit -1: want 1 to 1000"},
		{"a limit too high", "", pgstore.MaxRunsPage + 1, "limit", "pgstore: invalid page: limit 1001: want 1 to 1000"},
		{"garbage", "nope", 10, "cursor", `pgstore: invalid page: cursor "nope": want "" or the next cursor of a page`},
		{"another version", "r9.1.YQ", 10, "cursor", `pgstore: invalid page: cursor "r9.1.YQ": want "" or the next cursor of a page`},
		{"a time not a number", "r1.x.YQ", 10, "cursor", `pgstore: invalid page: cursor "r1.x.YQ": want "" or the next cursor of a page`},
		{"an ID not base64", "r1.1.!!", 10, "cursor", `pgstore: invalid page: cursor "r1.1.!!": want "" or the next cursor of a page`},
		{"an ID with NUL", "r1.1.AA", 10, "cursor", `pgstore: invalid page: cursor "r1.1.AA": want "" or the next cursor of a page`},
		{"no ID", "r1.1.", 10, "cursor", `pgstore: invalid page: cursor "r1.1.": want "" or the next cursor of a page`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			page, next, err := s.ListRunsPage(ctx, "g", tc.cursor, tc.limit)
			require.Error(t, err)
			assert.Nil(t, page)
			assert.Empty(t, next)
			var pe *pgstore.PageError
			require.ErrorAs(t, err, &pe)
			assert.Equal(t, tc.field, pe.Field)
			assert.ErrorIs(t, err, pgstore.ErrInvalidPage)
			assert.ErrorIs(t, err, executor.ErrInvalidRequest)
			assert.Equal(t, tc.want, err.Error())
		})
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, _, err = s.ListRunsPage(cctx, "g", "", 10)
	assert.ErrorIs(t, err, context.Canceled)
}

// A page after a cursor reads the index runs_graph_started from the
// cursor on, and stops after the page: its cost is the page's, however
// many records the graph has.
func TestListRunsPageUsesTheIndex(t *testing.T) {
	t.Parallel()
	s, pg := newStore(t)
	ctx := t.Context()
	_, err := pg.Pool.Exec(ctx, fmt.Sprintf(`INSERT INTO "%[1]s".runs
	(id, graph_key, seconds, triggered_by, reason, marks, status, started_at, ended_at, counts, failed, error)
SELECT 'run-' || i, 'g' || (i %% 5), 30, '', '', '[]', 'succeeded', now() - i * interval '1 minute', now(), '{}', '{}', ''
FROM generate_series(1, 20000) AS i;
ANALYZE "%[1]s".runs`, pg.Schema))
	require.NoError(t, err)
	_, next, err := s.ListRunsPage(ctx, "g1", "", 100)
	require.NoError(t, err)
	require.NotEmpty(t, next)
	rows, err := pg.Pool.Query(ctx, "EXPLAIN "+pgstore.RunsPageAfterSQL(pg.Schema), "g1", time.Now().Add(-24*time.Hour), "run-1", 101)
	require.NoError(t, err)
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	plan := strings.Join(lines, "\n")
	assert.Contains(t, plan, "runs_graph_started", "the page reads the index:\n%s", plan)
	assert.NotContains(t, plan, "Sort", "the index gives the order:\n%s", plan)
	assert.Contains(t, plan, "Limit", "the read stops after the page:\n%s", plan)
}
