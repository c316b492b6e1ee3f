package pgstore_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
)

// LatestRuns reads a graph's records newest first, a page at a time:
// the pages, read one after the other, are ListRuns's list reversed,
// each record once, however the records tie on their start or lack one;
// LatestRun is the newest alone. A host that needed the newest record
// (examples/service's recovery passes) read every record with ListRuns.
func TestLatestRuns(t *testing.T) {
	t.Parallel() // its own schema
	s, _ := newStore(t)
	ctx := t.Context()
	key := "g"
	n := putTiedRuns(t, s, key)
	require.NoError(t, s.PutRun(ctx, executor.Record{ID: "zz-other", GraphKey: "g2", Seconds: 10, Status: executor.RunSucceeded, StartedAt: tiedStart.Add(2 * time.Hour)}))
	all, err := s.ListRuns(ctx, key)
	require.NoError(t, err)
	require.Len(t, all, n)
	want := slices.Clone(all)
	slices.Reverse(want)

	for _, limit := range pageLimits(n) {
		t.Run(fmt.Sprint("limit ", limit), func(t *testing.T) {
			got, pages := readPages(t, n, limit, func(cursor string, limit int) ([]executor.Record, string, error) {
				return s.LatestRuns(ctx, key, cursor, limit)
			})
			if d := cmp.Diff(want, got); d != "" {
				t.Fatalf("the pages, one after the other, are not ListRuns's list reversed (-want +got):\n%s", d)
			}
			assert.Equal(t, (n+limit-1)/limit, pages, "no empty page after a full last one")
		})
	}

	// A cursor of ListRunsPage names a record: LatestRuns before it is
	// the list before that record.
	for i := 1; i < len(all); i++ {
		_, next, err := s.ListRunsPage(ctx, key, "", i)
		require.NoError(t, err)
		before, _, err := s.LatestRuns(ctx, key, next, pgstore.MaxRunsPage)
		require.NoError(t, err)
		wantBefore := slices.Clone(all[:i-1])
		slices.Reverse(wantBefore)
		if d := cmp.Diff(wantBefore, before); d != "" {
			t.Fatalf("the runs before the %d-th (-want +got):\n%s", i, d)
		}
	}

	latest, err := s.LatestRun(ctx, key)
	require.NoError(t, err)
	if d := cmp.Diff(all[len(all)-1], latest); d != "" {
		t.Fatalf("LatestRun is not ListRuns's last (-want +got):\n%s", d)
	}

	page, next, err := s.LatestRuns(ctx, "none", "", 10)
	require.NoError(t, err)
	assert.NotNil(t, page, "[] for a graph without records")
	assert.Empty(t, page)
	assert.Empty(t, next)
	_, err = s.LatestRun(ctx, "none")
	require.ErrorIs(t, err, executor.ErrNotFound)
	assert.Equal(t, `latest run of graph "none": executor: not found`, err.Error())
	_, err = s.LatestRun(ctx, strings.Repeat("k", pgstore.MaxGraphKeyBytes+1))
	require.ErrorIs(t, err, executor.ErrNotFound, "a graph key too long has no records")
}

// LatestRuns refuses a bad limit or cursor as ListRunsPage does, with a
// *PageError before any SQL, and a done ctx with its error.
func TestLatestRunsRefusesBadInput(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := t.Context()
	for _, tc := range []struct {
		name, cursor string
		limit        int
		field, want  string
	}{
		{"no limit", "", 0, "limit", "pgstore: invalid page: limit 0: want 1 to 1000"},
		{"a limit too high", "", pgstore.MaxRunsPage + 1, "limit", "pgstore: invalid page: limit 1001: want 1 to 1000"},
		{"garbage", "nope", 10, "cursor", `pgstore: invalid page: cursor "nope": want "" or the next cursor of a page`},
		{"an ID with NUL", "r1.1.AA", 10, "cursor", `pgstore: invalid page: cursor "r1.1.AA": want "" or the next cursor of a page`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			page, next, err := s.LatestRuns(ctx, "g", tc.cursor, tc.limit)
			requirePageRefused(t, page, next, err, tc.field, tc.want)
		})
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, _, err := s.LatestRuns(cctx, "g", "", 10)
	assert.ErrorIs(t, err, context.Canceled)
	_, err = s.LatestRun(cctx, "g")
	assert.ErrorIs(t, err, context.Canceled)
}

// LatestRuns reads the index runs_graph_started backwards and stops
// after the page: its cost is the page's, however many records the
// graph has.
func TestLatestRunsUsesTheIndex(t *testing.T) {
	t.Parallel()
	s, pg := newStore(t)
	ctx := t.Context()
	putManyRuns(t, pg)
	_, next, err := s.LatestRuns(ctx, "g1", "", 100)
	require.NoError(t, err)
	require.NotEmpty(t, next)
	for _, tc := range []struct {
		name, sql string
		args      []any
	}{
		{"the newest", pgstore.LatestRunsSQL(pg.Schema), []any{"g1", 2}},
		{"before a cursor", pgstore.LatestRunsBeforeSQL(pg.Schema), []any{"g1", time.Now().Add(-time.Hour), "run-1", 101}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan := explain(t, pg, tc.sql, tc.args...)
			assert.Contains(t, plan, "Index Scan Backward using runs_graph_started", "the page reads the index backwards:\n%s", plan)
			assert.NotContains(t, plan, "Seq Scan", "no read of the whole table:\n%s", plan)
			assert.Contains(t, plan, "Limit", "the read stops after the page:\n%s", plan)
		})
	}
}
