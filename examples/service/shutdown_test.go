package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/internal/testenv"
)

// An edit that the service took before its shutdown began is carried out
// in full and answered 202: its parameters and its edit are saved, and its
// run is started (the shutdown then cancels it). One sent once the
// shutdown has begun is answered 503 and saves nothing. A 503 never comes
// after the edit was saved.
func TestEditDuringShutdown(t *testing.T) {
	s, pg, leaks := startUnserved(t)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	addr := make(chan net.Addr, 1)
	served := make(chan error, 1)
	go func() { served <- s.serve(ctx, func(a net.Addr) { addr <- a }) }()
	h := &harness{t: t, base: "http://" + (<-addr).String(), hc: &http.Client{Transport: &http.Transport{}}}
	defer h.hc.CloseIdleConnections()

	var first started
	require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/l/runs", `{"seconds": 10}`, &first))
	requireWholeRun(t, first.RunID, h.follow(first.RunID, ""))
	h.getRun(first.RunID) // the run has ended: an edit starts a run of its own
	const node = "asset:image:segment[0]"
	rev := func() int64 {
		var r int64
		require.NoError(t, pg.Pool.QueryRow(context.Background(), fmt.Sprintf(
			`SELECT rev FROM %s.node_states WHERE graph_key = 'l' AND node_id = $1`, pgx.Identifier{pg.Schema}.Sanitize()), node).Scan(&r))
		return r
	}
	before := rev()

	// The store is held: the edit waits in Executor.Edit.
	tx, err := pg.Pool.Begin(context.Background())
	require.NoError(t, err)
	defer tx.Rollback(context.Background())
	_, err = tx.Exec(context.Background(), fmt.Sprintf(`LOCK TABLE %s.node_states IN ACCESS EXCLUSIVE MODE`, pgx.Identifier{pg.Schema}.Sanitize()))
	require.NoError(t, err)
	edited := make(chan int, 1)
	var run started
	go func() {
		edited <- h.do("POST", "/lectures/l/edits", `{"node": "`+node+`", "params": {"style": "ink"}}`, &run)
	}()
	require.Eventually(t, func() bool { // a bound against a hang, not a timing assertion
		var n int
		require.NoError(t, pg.Pool.QueryRow(context.Background(),
			`SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%' || $1 || '%'`, pg.Schema).Scan(&n))
		return n > 0
	}, time.Minute, 5*time.Millisecond, "the edit waits for the store")

	stop() // the shutdown begins
	require.Eventually(t, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.closing
	}, time.Minute, time.Millisecond)
	late := make(chan *httptest.ResponseRecorder, 1)
	go func() {
		w := httptest.NewRecorder()
		req := httptest.NewRequest("POST", "/lectures/l/edits", strings.NewReader(`{"node": "`+node+`", "params": {"style": "oil"}}`))
		req.Header.Set("Authorization", "Bearer "+token)
		s.routes().ServeHTTP(w, req)
		late <- w
	}()
	select {
	case w := <-late: // refused at once, while the first edit still waits
		assert.Equal(t, http.StatusServiceUnavailable, w.Code, "an edit sent during the shutdown: %s", w.Body)
		late <- w
	case <-time.After(10 * time.Second): // a bound against a hang
		t.Error("an edit sent during the shutdown waited for the store instead of being refused")
	}
	require.NoError(t, tx.Rollback(context.Background())) // the store answers again

	assert.Equal(t, http.StatusAccepted, <-edited, "the edit taken before the shutdown")
	w := <-late
	assert.Equal(t, http.StatusServiceUnavailable, w.Code, "%s", w.Body)
	require.NoError(t, <-served)
	assert.Equal(t, before+1, rev(), "the first edit is saved, and only it")
	if run.RunID != "" {
		store, err := pgstore.New(pg.Pool, pgstore.Options{Schema: pg.Schema})
		require.NoError(t, err)
		rec, err := store.GetRun(context.Background(), run.RunID)
		require.NoError(t, err, "the edit's run was started")
		assert.Contains(t, []executor.RunStatus{executor.RunCancelled, executor.RunSucceeded}, rec.Status)
	}
	h.hc.CloseIdleConnections()
	goleak.VerifyNone(t, leaks)
}

// A store failure is answered 500 with a message that names no internals
// (the schema, the SQL error): the details go to the service's log.
func TestInternalErrorsDoNotLeak(t *testing.T) {
	h := startService(t, time.Millisecond)
	_, err := h.pg.Pool.Exec(context.Background(), fmt.Sprintf(`DROP TABLE %s.runs`, pgx.Identifier{h.pg.Schema}.Sanitize()))
	require.NoError(t, err)
	for _, tc := range []struct{ name, method, path, body string }{
		{"a run", "GET", "/runs/run-x", ""},
		{"an edit of a lecture not made in this process", "POST", "/lectures/old/edits", `{"node": "script", "params": {}}`},
		{"a new run", "POST", "/lectures/new/runs", `{"seconds": 10}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, h.base+tc.path, strings.NewReader(tc.body))
			require.NoError(t, err)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := h.hc.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			assert.Equal(t, http.StatusInternalServerError, resp.StatusCode, "%s", body)
			for _, secret := range []string{h.pg.Schema, "SQLSTATE", "relation"} {
				assert.NotContains(t, string(body), secret)
			}
		})
	}
	require.NoError(t, h.shutdown())
}

// The runs going on at once, across lectures, are capped (-max-runs, 8 by
// default): past the cap, a new lecture's run is refused with 503 and a
// Retry-After, and a lecture's own runs are still refused with 409.
func TestRunsAreCapped(t *testing.T) {
	h := startService(t, time.Hour) // every run goes on until the shutdown
	for i := range 8 {
		require.Equal(t, http.StatusAccepted, h.do("POST", fmt.Sprintf("/lectures/l%d/runs", i), `{"seconds": 10}`, &started{}), "lecture %d", i)
	}
	req, err := http.NewRequest("POST", h.base+"/lectures/l8/runs", strings.NewReader(`{"seconds": 10}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := h.hc.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "a ninth lecture")
	assert.NotEmpty(t, resp.Header.Get("Retry-After"))
	assert.Equal(t, http.StatusConflict, h.do("POST", "/lectures/l0/runs", `{"seconds": 10}`, nil), "a second run of a lecture")
	require.NoError(t, h.shutdown())
}

// An edit that would start a run past the cap is refused with 503 before
// it saves anything; one whose run is queued after its lecture's needs no
// slot of its own.
func TestEditPastTheCapSavesNothing(t *testing.T) {
	h := startServiceWith(t, time.Hour, func(c *config) { c.maxRuns = 1 })
	var first, queued started
	require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/a/runs", `{"seconds": 10}`, &first))
	// Lecture b was made before this process started: only its record is left.
	store, err := pgstore.New(h.pg.Pool, pgstore.Options{Schema: h.pg.Schema})
	require.NoError(t, err)
	now := time.Now()
	require.NoError(t, store.PutRun(context.Background(), executor.Record{ID: "run-old", GraphKey: "b", Seconds: 10,
		Status: executor.RunSucceeded, StartedAt: now, EndedAt: now}))

	req, err := http.NewRequest("POST", h.base+"/lectures/b/edits", strings.NewReader(`{"node": "script", "params": {"topic": "x"}}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := h.hc.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.NotEmpty(t, resp.Header.Get("Retry-After"))
	snap, err := store.Load(context.Background(), "b")
	require.NoError(t, err)
	assert.Empty(t, snap.States, "the refused edit saved nothing")
	// A bad request is told what is wrong, full or not.
	assert.Equal(t, http.StatusBadRequest, h.do("POST", "/lectures/b/edits", `{"node": "asset:sound", "params": {}}`, nil))
	assert.Equal(t, http.StatusNotFound, h.do("POST", "/lectures/nosuch/edits", `{"node": "script", "params": {}}`, nil))

	require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/a/edits", `{"node": "script", "params": {"topic": "y"}}`, &queued))
	assert.Equal(t, first.RunID, queued.QueuedAfter)
	require.NoError(t, h.shutdown())
}

// An edit that the store fails to record leaves the node's parameters as
// they were: the client was told it failed, and a later run of the node
// must not make it from parameters that no revision stands for.
func TestFailedEditKeepsTheOldParameters(t *testing.T) {
	h := startService(t, time.Millisecond)
	var first started
	require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/l/runs", `{"seconds": 10}`, &first))
	requireWholeRun(t, first.RunID, h.follow(first.RunID, ""))
	h.getRun(first.RunID)
	var edited started
	require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/l/edits", `{"node": "script", "params": {"topic": "old"}}`, &edited))
	// Its run ends first: a DROP TABLE while it commits may deadlock with it.
	requireWholeRun(t, edited.RunID, h.follow(edited.RunID, ""))
	// The store fails: the node states' table is gone.
	_, err := h.pg.Pool.Exec(context.Background(), fmt.Sprintf(`DROP TABLE %s.node_states`, pgx.Identifier{h.pg.Schema}.Sanitize()))
	require.NoError(t, err)
	assert.Equal(t, http.StatusInternalServerError, h.do("POST", "/lectures/l/edits", `{"node": "script", "params": {"topic": "new"}}`, nil))
	params, err := h.s.params.get(t.Context(), "l", "script")
	require.NoError(t, err)
	assert.JSONEq(t, `{"topic": "old"}`, string(params))
	// In the database, for every process of the service and the next start.
	params, err = newParamStore(h.pg.Pool, h.pg.Schema).get(t.Context(), "l", "script")
	require.NoError(t, err)
	assert.JSONEq(t, `{"topic": "old"}`, string(params), "the parameters in the database")
	require.NoError(t, h.shutdown())
}

// A request whose body is still arriving has changed nothing yet: it does
// not hold the shutdown, which cancels the runs without waiting for it.
func TestShutdownDoesNotWaitForABodyStillArriving(t *testing.T) {
	s, _, leaks := startUnserved(t)
	var writers []*io.PipeWriter
	answered := make(chan int, 2)
	shutting := make(chan struct{})
	rest := map[string]string{"/lectures/l/runs": `seconds": 10}`, "/lectures/l/edits": `node": "script", "params": {}}`}
	for path := range rest {
		body, write := io.Pipe()
		writers = append(writers, write)
		defer write.Close()
		req := httptest.NewRequest("POST", path, body)
		req.Header.Set("Authorization", "Bearer "+token)
		go func() {
			w := httptest.NewRecorder()
			s.routes().ServeHTTP(w, req)
			body.Close()
			answered <- w.Code
		}()
		go func() { // the rest of the body, once the shutdown has begun
			<-shutting
			_, _ = write.Write([]byte(rest[path]))
			write.Close()
		}()
		_, err := write.Write([]byte(`{"`)) // read by the handler: it is decoding
		require.NoError(t, err)
	}
	shut := make(chan error, 1)
	go func() { shut <- s.shutdown(testenv.Context(t, time.Minute)) }()
	require.Eventually(t, func() bool { // a bound against a hang, not a timing assertion
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.stopping
	}, 20*time.Second, time.Millisecond, "the shutdown waits for requests whose bodies are still arriving")
	require.NoError(t, <-shut)
	close(shutting)
	for range writers {
		assert.Equal(t, http.StatusServiceUnavailable, <-answered, "a request whose body came after the shutdown began")
	}
	goleak.VerifyNone(t, leaks)
}

// A client that sends its body slowly, or never finishes it, is answered
// 408 once bodyTimeout has passed, rather than holding its handler and
// its connection for good (and the shutdown, which waits for it).
func TestSlowBodyIsCutOff(t *testing.T) {
	defer func(d time.Duration) { bodyTimeout = d }(bodyTimeout)
	bodyTimeout = 100 * time.Millisecond
	h := startService(t, time.Millisecond)
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.base, "http://"))
	require.NoError(t, err)
	defer conn.Close()
	_, err = fmt.Fprintf(conn, "POST /lectures/l/runs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: 20\r\n\r\n{\"sec", token)
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(20*time.Second))) // a bound against a hang
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err, "the server never answered a body that never came")
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	assert.Equal(t, http.StatusRequestTimeout, resp.StatusCode, "%s", b)
	assert.NotContains(t, string(b), "127.0.0.1", "no address in the answer")
	require.NoError(t, h.shutdown())
}

// A body still arriving when the shutdown begins is cut short and its
// request answered 503 at once: it would be refused once read anyway (it
// is admitted only then), and waiting for it held the HTTP server's
// shutdown for up to bodyTimeout, as long as the whole shutdown may take.
func TestShutdownCutsOffABodyStillArriving(t *testing.T) {
	h := startService(t, time.Millisecond)
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.base, "http://"))
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(2*time.Minute))) // a bound against a hang
	_, err = fmt.Fprintf(conn, "POST /lectures/l/runs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"+
		"Content-Length: 20\r\nExpect: 100-continue\r\n\r\n", token)
	require.NoError(t, err)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusContinue, resp.StatusCode, "the handler reads the body")
	_, err = fmt.Fprint(conn, `{"sec`)
	require.NoError(t, err)

	shut := make(chan error, 1)
	go func() { shut <- h.shutdown() }()
	resp, err = http.ReadResponse(br, nil)
	require.NoError(t, err, "the server never answered")
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "%s", b)
	require.NoError(t, <-shut)
}
