package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/internal/testenv"
	"github.com/regengraph/regen/internal/testgraph"
	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/sse"
)

func TestMain(m *testing.M) {
	// go-redis logs dial failures through a package-level logger;
	// TestUnreachable causes some on purpose.
	redis.SetLogger(discardLogger{})
	// The crash tests run this binary again as the service to kill (see
	// startChild).
	if raw := os.Getenv(childEnv); raw != "" {
		os.Exit(runChild(raw))
	}
	goleak.VerifyTestMain(m)
}

type discardLogger struct{}

func (discardLogger) Printf(context.Context, string, ...any) {}

const token = "test-token-0123456789abcdef0123456789"

// harness is a service running in-process on 127.0.0.1:0 against the
// real Postgres and Redis, in a schema and under a key prefix of the
// test's own, which testenv drops and deletes when the test ends.
type harness struct {
	t     *testing.T
	s     *service
	base  string       // http://127.0.0.1:PORT
	hc    *http.Client // its own transport, so that its connections can be closed
	pg    *testenv.Postgres
	redis *testenv.Redis
	stop  context.CancelFunc
	done  chan error // serve's result
	leaks goleak.Option
}

func startService(t *testing.T, latency time.Duration) *harness {
	t.Helper()
	return startServiceWith(t, latency, nil)
}

// startServiceWith is startService with the config changed by edit, if
// not nil.
func startServiceWith(t *testing.T, latency time.Duration, edit func(*config)) *harness {
	t.Helper()
	return startServiceOn(t, testenv.NewPostgres(t), testenv.NewRedis(t), latency, edit)
}

// startServiceOn is startServiceWith on the schema of pg and under the
// prefix of rd, which another service (this process's or another's) may
// use too: a second process of the same service, or the same one
// started again.
func startServiceOn(t *testing.T, pg *testenv.Postgres, rd *testenv.Redis, latency time.Duration, edit func(*config)) *harness {
	t.Helper()
	h := &harness{t: t, hc: &http.Client{Transport: &http.Transport{}}, pg: pg, redis: rd, done: make(chan error, 1),
		leaks: goleak.IgnoreCurrent()} // the test's own pool and client
	c := config{addr: "127.0.0.1:0", postgresURL: testenv.PostgresURL(), redisURL: testenv.RedisURL(),
		schema: pg.Schema, prefix: rd.Prefix, token: token, latency: latency,
		retain: time.Hour, pruneEvery: 20 * time.Millisecond, // retention runs, and deletes nothing
		recoverEvery: time.Hour} // the start-up's recovery alone, unless the test says otherwise
	if edit != nil {
		edit(&c)
	}
	logger := slog.New(slog.NewTextHandler(testWriter{t}, nil))
	ctx, stop := context.WithCancel(context.Background())
	h.stop = stop
	addr := make(chan net.Addr, 1)
	s, err := start(ctx, c, logger)
	if err != nil {
		stop()
		t.Fatalf("the service did not start: %v", err)
	}
	h.s = s
	go func() { h.done <- s.serve(ctx, func(a net.Addr) { addr <- a }) }()
	select {
	case a := <-addr:
		h.base = "http://" + a.String()
	case err := <-h.done:
		stop()
		t.Fatalf("the service did not start: %v", err)
	}
	t.Cleanup(func() { h.shutdown() }) // before testenv's cleanups, which were registered first
	return h
}

// startUnserved starts a service on a schema and a key prefix of its own,
// and does not serve it: the test drives it directly. leaks leaves out the
// goroutines of the test's own pool and client.
func startUnserved(t *testing.T) (s *service, pg *testenv.Postgres, leaks goleak.Option) {
	t.Helper()
	pg = testenv.NewPostgres(t)
	rd := testenv.NewRedis(t)
	leaks = goleak.IgnoreCurrent()
	c := config{addr: "127.0.0.1:0", postgresURL: testenv.PostgresURL(), redisURL: testenv.RedisURL(),
		schema: pg.Schema, prefix: rd.Prefix, token: token, retain: time.Hour, pruneEvery: time.Hour, recoverEvery: time.Hour}
	s, err := start(context.Background(), c, slog.New(slog.NewTextHandler(testWriter{t}, nil)))
	require.NoError(t, err)
	return s, pg, leaks
}

// shutdown stops the service as SIGTERM does and waits for serve's
// result; the second call returns nil.
func (h *harness) shutdown() error {
	if h.stop == nil {
		return nil
	}
	h.stop()
	h.stop = nil
	err := <-h.done
	h.hc.CloseIdleConnections()
	return err
}

// testWriter sends the service's logs to the test's log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// do sends a request with the token and decodes a JSON answer into out:
// a success's, or any answer's into a *map[string]string.
func (h *harness) do(method, path, body string, out any) int {
	h.t.Helper()
	return h.doAs(token, method, path, body, out)
}

func (h *harness) doAs(tok, method, path, body string, out any) int {
	h.t.Helper()
	req, err := http.NewRequest(method, h.base+path, strings.NewReader(body))
	require.NoError(h.t, err)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := h.hc.Do(req)
	require.NoError(h.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(h.t, err)
	if m, ok := out.(*map[string]string); ok { // an error's body, say
		require.NoError(h.t, json.Unmarshal(b, m), "%s %s: %s", method, path, b)
		return resp.StatusCode
	}
	if out != nil && resp.StatusCode < 300 {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		require.NoError(h.t, dec.Decode(out), "%s %s: %s", method, path, b)
	}
	return resp.StatusCode
}

// follow reads a run's events with the package's SSE client, from the
// start (or after lastID) to its final event.
func (h *harness) follow(runID, lastID string) []progress.Event {
	h.t.Helper()
	c := sse.NewClient(h.base+"/runs/"+runID+"/events", sse.ClientOptions{HTTPClient: h.hc,
		Header: http.Header{"Authorization": {"Bearer " + token}}, LastEventID: lastID, Retry: 100 * time.Millisecond})
	var events []progress.Event
	ctx := testenv.Context(h.t, time.Minute) // a bound against a hang, not a timing assertion
	require.NoError(h.t, c.Follow(ctx, func(e progress.Event) error {
		events = append(events, e)
		return nil
	}), "follow run %s", runID)
	return events
}

// requireWholeRun checks that events are a whole run, each once, in
// order: Seq 1..N, run.started first, run.finished last and only last. It
// returns the nodes of the run's node.succeeded events, sorted.
func requireWholeRun(t *testing.T, runID string, events []progress.Event) []string {
	t.Helper()
	require.NotEmpty(t, events)
	var succeeded []string
	for i, e := range events {
		require.Equal(t, uint64(i+1), e.Seq, "event %d of %d: %+v", i+1, len(events), e)
		require.Equal(t, runID, e.RunID)
		require.Equal(t, i == len(events)-1, e.Type.Final(), "event %d: %s", e.Seq, e.Type)
		if e.Type == progress.NodeSucceeded {
			succeeded = append(succeeded, e.Node)
		}
	}
	require.Equal(t, progress.RunStarted, events[0].Type)
	require.Equal(t, progress.RunFinished, events[len(events)-1].Type, "%s", events[len(events)-1].Error)
	slices.Sort(succeeded)
	require.Equal(t, len(succeeded), len(slices.Compact(slices.Clone(succeeded))), "a node succeeded twice: %v", succeeded)
	return succeeded
}

// getRun is GET /runs/{run}, once the run's report is kept (a moment
// after its final event, which comes once its record is stored).
func (h *harness) getRun(runID string) runView {
	h.t.Helper()
	return h.awaitRun(runID, "report", func(v runView) bool { return v.Report != nil })
}

// awaitRun is GET /runs/{run} until its answer has what has, named what.
func (h *harness) awaitRun(runID, what string, has func(runView) bool) runView {
	h.t.Helper()
	var v runView
	require.EventuallyWithT(h.t, func(c *assert.CollectT) {
		v = runView{}
		require.Equal(c, http.StatusOK, h.do("GET", "/runs/"+runID, "", &v))
		require.True(c, has(v), "the %s of run %s", what, runID)
	}, 20*time.Second, 10*time.Millisecond)
	return v
}

func TestLectureThenEdit(t *testing.T) {
	h := startService(t, 2*time.Millisecond)

	// A 60-second lecture: 6 segments, 21 nodes.
	var first started
	require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/intro/runs", `{"seconds": 60}`, &first))
	require.Equal(t, "/runs/"+first.RunID+"/events", first.Events)
	require.Empty(t, first.QueuedAfter)
	events := h.follow(first.RunID, "")
	all := testgraph.LectureIDs(t, 60)
	require.Len(t, all, 21)
	assert.Equal(t, all, requireWholeRun(t, first.RunID, events))
	// A late reader replays the same events; one that resumes mid-way
	// gets the rest.
	assert.Empty(t, cmp.Diff(events, h.follow(first.RunID, "")), "replay")
	assert.Empty(t, cmp.Diff(events[5:], h.follow(first.RunID, "5")), "resume after seq 5")
	// The stream is under the service's prefix.
	assert.Equal(t, []string{h.redis.Prefix + "run:" + first.RunID}, h.redis.Keys(t))

	v := h.getRun(first.RunID)
	assert.Equal(t, "succeeded", v.Status)
	assert.Equal(t, "intro", v.GraphKey)
	require.NotNil(t, v.Record)
	assert.Equal(t, 60, v.Record.Seconds)
	assert.Equal(t, 21, v.Record.Counts.Generated)
	assert.Equal(t, all, sorted(v.Report.Generated))
	assert.Empty(t, v.Report.Dirty)

	// An edit of one narration regenerates it, its segment's video and
	// the timeline: 3 nodes.
	var second started
	require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/intro/edits",
		`{"node": "asset:narration:segment[3]", "params": {"text": "A better third segment."}}`, &second))
	require.NotEqual(t, first.RunID, second.RunID)
	if second.QueuedAfter != "" { // the first run's end was not yet seen
		assert.Equal(t, first.RunID, second.QueuedAfter)
	}
	want := []string{"asset:narration:segment[3]", "asset:video:segment[3]", "timeline"}
	assert.Equal(t, want, requireWholeRun(t, second.RunID, h.follow(second.RunID, "")))
	v = h.getRun(second.RunID)
	assert.Equal(t, "succeeded", v.Status)
	assert.Equal(t, 3, v.Record.Counts.Generated)
	assert.Equal(t, 3, v.Record.Counts.Planned)
	assert.Equal(t, want, v.Report.Generated)
	assert.Empty(t, v.Report.Dirty)

	// The first run's record is still there, unchanged.
	v = h.getRun(first.RunID)
	assert.Equal(t, 21, v.Record.Counts.Generated)

	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, h.leaks)
}

// An edit finds its lecture's length when retention has deleted every run
// record of the lecture: the service saved the length at its creation.
func TestEditAfterRecordsPruned(t *testing.T) {
	h := startService(t, time.Millisecond)
	var first started
	require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/quiet/runs", `{"seconds": 30}`, &first))
	requireWholeRun(t, first.RunID, h.follow(first.RunID, ""))
	h.getRun(first.RunID) // its report is kept: the run has ended
	_, err := h.pg.Pool.Exec(t.Context(), fmt.Sprintf(`DELETE FROM %s.runs`, pgx.Identifier{h.pg.Schema}.Sanitize()))
	require.NoError(t, err)

	var second started
	require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/quiet/edits",
		`{"node": "asset:narration:segment[1]", "params": {"text": "Shorter."}}`, &second))
	want := []string{"asset:narration:segment[1]", "asset:video:segment[1]", "timeline"}
	assert.Equal(t, want, requireWholeRun(t, second.RunID, h.follow(second.RunID, "")))
	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, h.leaks)
}

// An edit during a run queues a run after it; a shutdown then cancels the
// run, records it as cancelled, and starts nothing more. The queued run,
// whose ID the edit was given, was forgotten: its stream ended without a
// final event, and after a restart its ID was unknown (404), its edit's
// run never made. It is now recorded as cancelled by the shutdown, its
// stream ends with a run.cancelled, and the next start resumes it.
func TestEditDuringRunThenShutdown(t *testing.T) {
	pg, rd := testenv.NewPostgres(t), testenv.NewRedis(t)
	h := startServiceOn(t, pg, rd, time.Hour, nil) // the run goes on until the shutdown
	var first, second, third started
	require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/l/runs", `{"seconds": 10}`, &first))
	require.Equal(t, http.StatusConflict, h.do("POST", "/lectures/l/runs", `{"seconds": 10}`, nil), "a second run of the lecture")
	edit := `{"node": "asset:image:segment[0]", "params": {"style": "ink"}}`
	require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/l/edits", edit, &second))
	assert.Equal(t, first.RunID, second.QueuedAfter)
	require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/l/edits", edit, &third))
	assert.Equal(t, second, third, "edits during a run share the queued run")
	var v runView
	require.Equal(t, http.StatusOK, h.do("GET", "/runs/"+second.RunID, "", &v))
	assert.Equal(t, runView{ID: second.RunID, GraphKey: "l", Status: "queued"}, v)
	// A reader of the queued run gets its stream at once, and waits for
	// the run's first event; the shutdown ends its wait.
	req, err := http.NewRequest("GET", h.base+second.Events, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := h.hc.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	waited := make(chan struct{})
	go func() {
		defer close(waited)
		_, _ = io.Copy(io.Discard, resp.Body)
	}()

	require.NoError(t, h.shutdown())
	<-waited
	goleak.VerifyNone(t, h.leaks)
	store, err := pgstore.New(h.pg.Pool, pgstore.Options{Schema: h.pg.Schema})
	require.NoError(t, err)
	rec, err := store.GetRun(context.Background(), first.RunID)
	require.NoError(t, err)
	assert.Equal(t, executor.RunCancelled, rec.Status)
	rec, err = store.GetRun(context.Background(), second.RunID)
	require.NoError(t, err, "the queued run is recorded")
	assert.Equal(t, executor.RunCancelled, rec.Status)
	assert.Contains(t, rec.Error, errShutdown.Error())
	assert.Equal(t, codeShutdown, rec.CancelledBy, "the queued run's record has the shutdown's code")

	h = startServiceOn(t, pg, rd, time.Millisecond, nil)
	events := h.follow(second.RunID, "")
	require.Len(t, events, 1, "the queued run's stream: %+v", events)
	assert.Equal(t, progress.RunCancelled, events[0].Type)
	require.Equal(t, http.StatusOK, h.do("GET", "/runs/"+second.RunID, "", &v))
	assert.Equal(t, "cancelled", v.Status)
	resumed := newestRun(t, store, "l")
	assert.Equal(t, second.RunID, resumed.Resumes, "the next start resumes the queued run")
	assert.Contains(t, requireWholeRun(t, resumed.ID, h.follow(resumed.ID, "")), "asset:image:segment[0]", "the edited node is made")
	assert.Equal(t, "succeeded", h.getRun(resumed.ID).Status)
	require.NoError(t, h.shutdown())
}

func sorted(ids []string) []string {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	return ids
}

func TestRefusals(t *testing.T) {
	h := startService(t, 2*time.Millisecond)
	var run started
	require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/l/runs", `{"seconds": 20}`, &run))
	h.follow(run.RunID, "")
	events := "/runs/" + run.RunID + "/events"

	for _, tc := range []struct {
		name, token, method, path, body string
		want                            int
	}{
		{"events without a token", "", "GET", events, "", http.StatusUnauthorized},
		{"events with another token", "nope", "GET", events, "", http.StatusForbidden},
		{"events of an unknown run", token, "GET", "/runs/run-unknown/events", "", http.StatusNotFound},
		{"a run without a token", "", "GET", "/runs/" + run.RunID, "", http.StatusUnauthorized},
		{"a create with another token", "nope", "POST", "/lectures/l/runs", `{"seconds": 20}`, http.StatusForbidden},
		{"an edit without a token", "", "POST", "/lectures/l/edits", `{"node": "script", "params": {}}`, http.StatusUnauthorized},
		{"an unknown run", token, "GET", "/runs/run-unknown", "", http.StatusNotFound},
		{"a bad length", token, "POST", "/lectures/l/runs", `{"seconds": 25}`, http.StatusBadRequest},
		{"an unknown field", token, "POST", "/lectures/l/runs", `{"secs": 20}`, http.StatusBadRequest},
		{"an edit of an unknown lecture", token, "POST", "/lectures/none/edits", `{"node": "script", "params": {}}`, http.StatusNotFound},
		{"an edit of an unknown node", token, "POST", "/lectures/l/edits", `{"node": "asset:video:segment[9]", "params": {}}`, http.StatusBadRequest},
		{"an edit without params", token, "POST", "/lectures/l/edits", `{"node": "script"}`, http.StatusBadRequest},
		{"a body too large", token, "POST", "/lectures/l/runs", `{"seconds": 20` + strings.Repeat(" ", maxBody) + `}`, http.StatusRequestEntityTooLarge},
		{"too much after the body", token, "POST", "/lectures/l/runs", `{"seconds": 20}` + strings.Repeat(" ", maxBody), http.StatusRequestEntityTooLarge},
		{"no length", token, "POST", "/lectures/l/runs", `{"seconds": 0}`, http.StatusBadRequest},
		{"a negative length", token, "POST", "/lectures/l/runs", `{"seconds": -10}`, http.StatusBadRequest},
		{"a length over a day", token, "POST", "/lectures/l/runs", `{"seconds": 86410}`, http.StatusBadRequest},
		{"a length over an int", token, "POST", "/lectures/l/runs", `{"seconds": 1e30}`, http.StatusBadRequest},
		{"a key too long", token, "POST", "/lectures/" + strings.Repeat("k", 5000) + "/runs", `{"seconds": 20}`, http.StatusBadRequest},
		{"an edit of a key too long", token, "POST", "/lectures/" + strings.Repeat("k", 5000) + "/edits", `{"node": "script", "params": {}}`, http.StatusBadRequest},
		{"an edit of a key with NUL", token, "POST", "/lectures/%00/edits", `{"node": "script", "params": {}}`, http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, h.doAs(tc.token, tc.method, tc.path, tc.body, nil))
		})
	}
	// The scheme's name is case-insensitive (RFC 9110, section 11.1).
	req, err := http.NewRequest("GET", h.base+"/runs/"+run.RunID, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "bearer "+token)
	resp, err := h.hc.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, "scheme bearer")

	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, h.leaks)
}

// TestBadBodiesAreExplained checks that a bad body is answered 400 with
// what was wrong in the client's terms: json's own texts named Go types
// ("cannot unmarshal array into Go value of type struct { Seconds int
// ...}") and said "body: EOF" for an empty body.
func TestBadBodiesAreExplained(t *testing.T) {
	h := startService(t, 2*time.Millisecond)
	for _, tc := range []struct {
		name, path, body, want string
	}{
		{"an empty body", "/lectures/l/runs", "", `empty body: want a JSON object like {"seconds": 120}`},
		{"an array", "/lectures/l/runs", `[1]`, `body must be a JSON object like {"seconds": 120}, not an array`},
		{"a string", "/lectures/l/runs", `"x"`, `body must be a JSON object like {"seconds": 120}, not a string`},
		{"seconds as a string", "/lectures/l/runs", `{"seconds": "60"}`, `seconds: want an integer in range, not a string`},
		{"seconds over an int", "/lectures/l/runs", `{"seconds": 1e30}`, `seconds: want an integer in range, not a number (1e30)`},
		{"cut short", "/lectures/l/runs", `{"seconds": 6`, `body: the JSON ends too soon; want a JSON object like {"seconds": 120}`},
		{"not JSON", "/lectures/l/runs", `seconds=60`, `body: not JSON (invalid character 's' looking for beginning of value, at byte 1); want a JSON object like {"seconds": 120}`},
		{"an unknown field", "/lectures/l/runs", `{"secs": 60}`, `body: unknown field "secs"; want a JSON object like {"seconds": 120}`},
		{"two objects", "/lectures/l/runs", `{"seconds": 60}{}`, `body: one JSON object only; want a JSON object like {"seconds": 120}`},
		{"an empty edit", "/lectures/l/edits", "", `empty body: want a JSON object like {"node": "script", "params": {"text": "..."}}`},
		{"a node as a number", "/lectures/l/edits", `{"node": 3, "params": {}}`, `node: want a string, not a number`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var e map[string]string
			assert.Equal(t, http.StatusBadRequest, h.do("POST", tc.path, tc.body, &e))
			assert.Equal(t, tc.want, e["error"])
		})
	}
	require.NoError(t, h.shutdown())
}

// runCommand runs the command as main does, with env set for it.
func runCommand(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestBadFlags(t *testing.T) {
	// Servers that are not there: a bad flag is refused before any server
	// is touched (an empty -schema once migrated the libraries' default
	// schema, then failed with the server's error, exit 1).
	env := map[string]string{
		"REGEN_POSTGRES_URL": "postgres://root@127.0.0.1:1/test?sslmode=disable&connect_timeout=1",
		"REGEN_REDIS_URL":    "redis://127.0.0.1:1/0",
	}
	for _, args := range [][]string{
		{"-addr", "0.0.0.0:8080"}, {"-addr", "8080"}, {"-retain", "0s"}, {"-prune-every", "0s"},
		{"-recover-every", "0s"}, {"-recover-every", "-1s"}, {"-retake", "-1s"},
		{"-latency", "-1s"}, {"-prefix", ""}, {"-nope"}, {"-x\ny"}, {"extra"}, {"-drain", "-1s"}, {"-drain", "21s"},
		{"-schema", "Not-A-Schema"}, {"-prefix", "p:{runId}:"}, {"-max-runs", "0"},
		{"-schema", ""}, {"-schema", "pg_catalog"}, {"-schema", "information_schema"}, {"-schema", "1x"}, {"-schema", strings.Repeat("a", 64)},
		{"-prefix", "a b"}, {"-prefix", "p\n"},
		// A port that no listener takes: once found only after the
		// migration and the recovery of the runs left running.
		{"-addr", "127.0.0.1:99999"}, {"-addr", "127.0.0.1:-1"}, {"-addr", "127.0.0.1:nope"},
		// A service name, port 80, not "a port from 0 to 65535".
		{"-addr", "127.0.0.1:http"}, {"-addr", "127.0.0.1:+80"},
	} {
		code, out, errOut := runCommand(t, env, args...)
		assert.Equal(t, 2, code, "%q: %s", args, errOut)
		assert.Empty(t, out, "%q", args)
		assert.Equal(t, 1, strings.Count(errOut, "\n"), "one line on stderr for %q: %q", args, errOut)
	}
	code, out, errOut := runCommand(t, nil, "-h")
	assert.Equal(t, 0, code)
	assert.True(t, strings.HasPrefix(out, "usage: service"), out)
	// Every flag with what it does, not the synopsis alone.
	for _, f := range []string{"-addr HOST:PORT", "-schema SCHEMA", "-prefix PREFIX", "-latency DURATION", "-retain AGE", "-prune-every INTERVAL", "-recover-every INTERVAL", "-max-runs RUNS", "-drain DURATION", "-retake DURATION"} {
		assert.Contains(t, out, "  "+f+"\n    \t", "-h describes %s", f)
	}
	assert.Empty(t, errOut)
}

func TestUnreachable(t *testing.T) {
	// Nothing listens on port 1.
	t.Run("postgres", func(t *testing.T) {
		code, _, errOut := runCommand(t, map[string]string{"REGEN_POSTGRES_URL": "postgres://root@127.0.0.1:1/test?sslmode=disable"},
			"-addr", "127.0.0.1:0")
		assert.Equal(t, 1, code)
		assert.Contains(t, errOut, "service: cannot reach Postgres at 127.0.0.1:1 (set REGEN_POSTGRES_URL)")
	})
	t.Run("redis", func(t *testing.T) {
		pg := testenv.NewPostgres(t)
		code, _, errOut := runCommand(t, map[string]string{"REGEN_POSTGRES_URL": testenv.PostgresURL(),
			"REGEN_REDIS_URL": "redis://127.0.0.1:1/0"}, "-addr", "127.0.0.1:0", "-schema", pg.Schema)
		assert.Equal(t, 1, code)
		assert.Contains(t, errOut, "service: cannot reach Redis at 127.0.0.1:1 (set REGEN_REDIS_URL)")
	})
	t.Run("address taken", func(t *testing.T) {
		pg := testenv.NewPostgres(t)
		rd := testenv.NewRedis(t)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer ln.Close()
		code, _, errOut := runCommand(t, map[string]string{"REGEN_POSTGRES_URL": testenv.PostgresURL(),
			"REGEN_REDIS_URL": testenv.RedisURL(), "REGEN_SERVICE_TOKEN": token},
			"-addr", ln.Addr().String(), "-schema", pg.Schema, "-prefix", rd.Prefix)
		assert.Equal(t, 1, code)
		assert.Contains(t, errOut, fmt.Sprintf("service: listen on %s", ln.Addr()))
	})
	t.Run("address taken, before the servers are touched", func(t *testing.T) {
		// A second process started on the address of the first: it must
		// not resume the runs left running, only to cancel them at once.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer ln.Close()
		code, _, errOut := runCommand(t, map[string]string{"REGEN_POSTGRES_URL": "postgres://root@127.0.0.1:1/test?sslmode=disable",
			"REGEN_SERVICE_TOKEN": token}, "-addr", ln.Addr().String())
		assert.Equal(t, 1, code)
		assert.True(t, strings.HasPrefix(errOut, fmt.Sprintf("service: listen on %s: ", ln.Addr())), errOut)
		assert.NotContains(t, errOut, "Postgres", "the address is checked before any server is touched")
	})
}

// queuedLatency is each generator call's latency in
// TestFollowQueuedRun: the first run takes about 4 of them (script, then
// narration, image and music, then video, then timeline).
const queuedLatency = 600 * time.Millisecond

// A reader that follows a queued run from the moment its ID is handed
// out gets the whole run, however long the run before it takes.
func TestFollowQueuedRun(t *testing.T) {
	h := startService(t, queuedLatency)
	var first, second started
	require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/q/runs", `{"seconds": 10}`, &first))
	require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/q/edits",
		`{"node": "asset:image:segment[0]", "params": {"style": "ink"}}`, &second))
	require.Equal(t, first.RunID, second.QueuedAfter)
	// What the queued run makes depends on whether the first made the
	// image before or after the edit: the whole of it is what counts here.
	requireWholeRun(t, second.RunID, h.follow(second.RunID, ""))
	assert.Equal(t, testgraph.LectureIDs(t, 10), requireWholeRun(t, first.RunID, h.follow(first.RunID, "")))
	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, h.leaks)
}

// A request that made room for its run just before a shutdown began
// starts it on the runs' context, cancelled by then: it is answered as
// any request during a shutdown is, and frees its lecture.
func TestStartDuringShutdown(t *testing.T) {
	s, _, leaks := startUnserved(t)
	g, err := graph.Build(graph.Lecture(), 10)
	require.NoError(t, err)

	lock, err := s.store.TryLockGraph(t.Context(), "l") // startRun's first half
	require.NoError(t, err)
	s.mu.Lock()
	require.NoError(t, s.reserve("l", g, newRunID(), lock))
	runID := s.lectures["l"].runID
	s.mu.Unlock()
	s.cancelRuns(errShutdown)              // the shutdown begins
	err = s.launch("l", runID, "test", "") // startRun's second half
	assert.ErrorIs(t, err, errClosing)
	s.mu.Lock()
	assert.Empty(t, s.lectures, "the lecture is free")
	s.mu.Unlock()
	again, err := s.store.TryLockGraph(t.Context(), "l")
	require.NoError(t, err, "the lecture's lock is free")
	require.NoError(t, again.Unlock(t.Context()))

	require.NoError(t, s.shutdown(testenv.Context(t, time.Minute)))
	goleak.VerifyNone(t, leaks)
}
