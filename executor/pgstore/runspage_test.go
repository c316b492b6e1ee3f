package pgstore_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
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
	n := putTiedRuns(t, s, key)
	require.NoError(t, s.PutRun(ctx, executor.Record{ID: "other", GraphKey: "g2", Seconds: 10, Status: executor.RunSucceeded, StartedAt: tiedStart}))
	all, err := s.ListRuns(ctx, key)
	require.NoError(t, err)
	require.Len(t, all, n)

	for _, limit := range pageLimits(n) {
		t.Run(fmt.Sprint("limit ", limit), func(t *testing.T) {
			got, pages := readPages(t, n, limit, func(cursor string, limit int) ([]executor.Record, string, error) {
				return s.ListRunsPage(ctx, key, cursor, limit)
			})
			if d := cmp.Diff(all, got); d != "" {
				t.Fatalf("the pages, one after the other, are not ListRuns's list (-want +got):\n%s", d)
			}
			assert.Equal(t, (n+limit-1)/limit, pages, "no empty page after a full last one")
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
			requirePageRefused(t, page, next, err, tc.field, tc.want)
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
	putManyRuns(t, pg)
	_, next, err := s.ListRunsPage(ctx, "g1", "", 100)
	require.NoError(t, err)
	require.NotEmpty(t, next)
	plan := explain(t, pg, pgstore.RunsPageAfterSQL(pg.Schema), "g1", time.Now().Add(-24*time.Hour), "run-1", 101)
	assert.Contains(t, plan, "runs_graph_started", "the page reads the index:\n%s", plan)
	assert.NotContains(t, plan, "Sort", "the index gives the order:\n%s", plan)
	assert.Contains(t, plan, "Limit", "the read stops after the page:\n%s", plan)
}
