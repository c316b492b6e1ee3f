package main

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/regengraph/regen/executor"
)

// runPage is the answer of GET /lectures/{key}/runs, with its cursor.
type runPage struct {
	Runs []runView `json:"runs"`
	Next string    `json:"next"`
}

// GET /lectures/{key}/runs answers a page of the lecture's runs: at most
// limit (default defaultRunsLimit, at most maxRunsLimit), with the next
// page's cursor in "next", which ?after= takes; the run queued after the
// one going on is on the last page, last, after its records. The whole
// list was served at once, however many records the lecture had.
func TestListRunsPaged(t *testing.T) {
	h := startService(t, time.Hour)         // the run goes on until the shutdown
	t0 := time.Now().Add(-10 * time.Minute) // younger than -retain: the retention keeps them
	for i := range 5 {
		require.NoError(t, h.s.store.PutRun(t.Context(), executor.Record{ID: fmt.Sprintf("run-old-%d", i), GraphKey: "p", Seconds: 10,
			TriggeredBy: "test", Status: executor.RunSucceeded, StartedAt: t0.Add(time.Duration(i/2) * time.Minute), EndedAt: t0}))
	}
	var running, queued started
	require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/p/runs", `{"seconds": 10}`, &running))
	require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/p/edits", `{"node": "script", "params": {"topic": "x"}}`, &queued))
	want := []string{"run-old-0", "run-old-1", "run-old-2", "run-old-3", "run-old-4", running.RunID, queued.RunID}

	var whole runPage
	require.Equal(t, http.StatusOK, h.do("GET", "/lectures/p/runs", "", &whole))
	assert.Equal(t, want, ids(whole.Runs), "one page holds them all")
	assert.Empty(t, whole.Next, "no next page")

	for _, limit := range []int{1, 2, 3, 6, 7} {
		var got []string
		after, pages := "", 0
		for {
			var page runPage
			path := fmt.Sprintf("/lectures/p/runs?limit=%d", limit)
			if after != "" {
				path += "&after=" + url.QueryEscape(after)
			}
			require.Equal(t, http.StatusOK, h.do("GET", path, "", &page), path)
			got = append(got, ids(page.Runs)...)
			pages++
			require.Less(t, pages, 10, "the pages do not end")
			if page.Next == "" {
				// The last page: its records, then the run queued.
				require.LessOrEqual(t, len(page.Runs), limit+1, path)
				break
			}
			require.Len(t, page.Runs, limit, path)
			after = page.Next
		}
		assert.Equal(t, want, got, "limit %d: the pages, one after the other", limit)
	}

	// The default page, and the most.
	for i := range defaultRunsLimit + 1 {
		require.NoError(t, h.s.store.PutRun(t.Context(), executor.Record{ID: fmt.Sprintf("run-%04d", i), GraphKey: "many", Seconds: 10,
			TriggeredBy: "test", Status: executor.RunSucceeded, StartedAt: t0.Add(time.Duration(i) * time.Second), EndedAt: t0}))
	}
	var first, second runPage
	require.Equal(t, http.StatusOK, h.do("GET", "/lectures/many/runs", "", &first))
	assert.Len(t, first.Runs, defaultRunsLimit, "a client that ignores paging gets the first page")
	require.NotEmpty(t, first.Next)
	require.Equal(t, http.StatusOK, h.do("GET", "/lectures/many/runs?after="+url.QueryEscape(first.Next), "", &second))
	assert.Equal(t, []string{fmt.Sprintf("run-%04d", defaultRunsLimit)}, ids(second.Runs))
	assert.Empty(t, second.Next)
	var all runPage
	require.Equal(t, http.StatusOK, h.do("GET", fmt.Sprintf("/lectures/many/runs?limit=%d", maxRunsLimit), "", &all))
	assert.Len(t, all.Runs, defaultRunsLimit+1)

	// A lecture never made is no lecture, with a cursor too (a cursor is
	// of no one lecture). It was an empty page.
	var none map[string]string
	assert.Equal(t, http.StatusNotFound, h.do("GET", "/lectures/none/runs?after="+url.QueryEscape(first.Next), "", &none))
	assert.Contains(t, none["error"], `no lecture "none"`)

	for _, tc := range []struct{ query, want string }{
		{"limit=0", fmt.Sprintf(`limit "0": want an integer from 1 to %d (default %d)`, maxRunsLimit, defaultRunsLimit)},
		{"limit=-1", fmt.Sprintf(`limit "-1": want an integer from 1 to %d (default %d)`, maxRunsLimit, defaultRunsLimit)},
		{fmt.Sprintf("limit=%d", maxRunsLimit+1), fmt.Sprintf(`limit "%d": want an integer from 1 to %d (default %d)`, maxRunsLimit+1, maxRunsLimit, defaultRunsLimit)},
		{"limit=x", fmt.Sprintf(`limit "x": want an integer from 1 to %d (default %d)`, maxRunsLimit, defaultRunsLimit)},
		{"limit=", fmt.Sprintf(`limit "": want an integer from 1 to %d (default %d)`, maxRunsLimit, defaultRunsLimit)},
		{"after=nope", `after "nope": want the "next" of a page of this list`},
	} {
		var refused map[string]string
		assert.Equal(t, http.StatusBadRequest, h.do("GET", "/lectures/p/runs?"+tc.query, "", &refused), tc.query)
		assert.Equal(t, tc.want, refused["error"], tc.query)
	}
	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, h.leaks)
}

// ids returns the IDs of runs, in their order.
func ids(runs []runView) []string {
	out := []string{}
	for _, v := range runs {
		out = append(out, v.ID)
	}
	return out
}
