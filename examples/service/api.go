package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/progress/sse"
)

const (
	// maxBody bounds a request's body.
	maxBody = 64 << 10
)

// editTimeout bounds an edit once admitted: the wait for its turn (see
// holdSlot), its saving, and the start of its run; a variable for the
// tests.
var editTimeout = 30 * time.Second

// runTimeout bounds a run request once admitted: the wait for its turn
// and the taking of the lecture's lock (see startRun); a variable for the
// tests.
var runTimeout = 30 * time.Second

// bodyTimeout bounds the reading of a request's body, from the moment its
// handler starts; a variable for the tests.
var bodyTimeout = 30 * time.Second

// routes returns the service's endpoints (see the package documentation),
// with the CORS answers of -cors-origin, if any (see cors). Every answer
// of the service's own is JSON: a method an endpoint does not take is
// answered 405 with Allow, an unknown path 404 (the mux's own answers are
// plain text).
func (s *service) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /lectures/{key}/runs", s.createRun)
	mux.HandleFunc("GET /lectures/{key}/runs", s.listRuns)
	mux.HandleFunc("POST /lectures/{key}/edits", s.edit)
	mux.HandleFunc("GET /runs/{run}", s.getRun)
	mux.HandleFunc("GET /runs/{run}/events", s.serveEvents)
	mux.HandleFunc("POST /runs/{run}/cancel", s.cancelRun)
	mux.HandleFunc("POST /session", s.createSession)
	mux.HandleFunc("DELETE /session", s.deleteSession)
	for path, allow := range map[string]string{
		"/lectures/{key}/runs": "GET, HEAD, POST", "/lectures/{key}/edits": "POST",
		"/runs/{run}": "GET, HEAD", "/runs/{run}/events": "GET, HEAD", "/runs/{run}/cancel": "POST",
		"/session": "DELETE, POST",
	} {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			httpError(w, http.StatusMethodNotAllowed, fmt.Errorf("method %.20q: %s takes %s", r.Method, path, allow))
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		httpError(w, http.StatusNotFound, fmt.Errorf("no endpoint %.200q: see the service's documentation", r.URL.Path))
	})
	return s.cors(mux)
}

// serveEvents is GET /runs/{run}/events: it answers a request without
// the token or a good session cookie (401, with WWW-Authenticate, see
// authenticateEvents), with another token (403), with
// a malformed Last-Event-ID (400) and of an unknown run (404) itself, in
// JSON as the other endpoints do, and of a run that ended without any
// event in its stream (204, no body), then hands the request to the SSE
// handler, whose own answers (503 when the store or the stream fails) are
// plain text.
func (s *service) serveEvents(w http.ResponseWriter, r *http.Request) {
	sessions, err := s.authenticateEvents(r)
	if !s.answerAuth(w, err) {
		return
	}
	// As the handler reads it: the header, else the query parameter.
	id := r.URL.Query().Get("lastEventId")
	if v := r.Header.Values("Last-Event-ID"); len(v) > 0 {
		id = v[0]
	}
	if _, err := sse.ParseLastEventID(id); err != nil {
		httpError(w, http.StatusBadRequest, err)
		return
	}
	runID := r.PathValue("run")
	if _, ok := s.queued(runID); !ok {
		// findRun reads the record again when the run is neither recorded
		// nor queued: another process may record it between the reads.
		rec, _, queued, err := s.findRun(r.Context(), runID)
		if errors.Is(err, executor.ErrNotFound) {
			httpError(w, http.StatusNotFound, fmt.Errorf("no run %q", runID))
			return
		} // any other failure: the handler's Authorize meets it again, and answers 503
		if err == nil && !queued && rec.Status != executor.RunRunning && s.endedWithoutEvents(r.Context(), runID, rec.EndedAt) {
			// A run that ended with no event in its stream (its process
			// was killed before its first events reached Redis: nothing
			// numbers a final event then) would keep its readers waiting
			// for good. 204, as after a final event: nothing is left.
			w.WriteHeader(http.StatusNoContent)
			return
		}
	}
	// The handler's Authorize takes this check (see authorizeEvents):
	// the session is read once per request. A 401 of the handler's own,
	// were it to answer one, gets WWW-Authenticate too.
	r = r.WithContext(context.WithValue(r.Context(), authenticatedKey{}, true))
	w = challenger{w}
	if sessions != nil {
		s.serveSessionEvents(w, r, sessions)
		return
	}
	s.events.ServeHTTP(w, r)
}

// challenger is the ResponseWriter of the SSE handler: it adds
// WWW-Authenticate: Bearer to a 401, as answerAuth does, so that every
// 401 of the service has it. Unwrap gives the handler the writer's
// Flush and deadlines (http.ResponseController).
type challenger struct{ http.ResponseWriter }

func (c challenger) WriteHeader(code int) {
	if code == http.StatusUnauthorized {
		c.Header().Set("WWW-Authenticate", "Bearer")
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c challenger) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// finalGrace is how long after a run's record says it ended its final
// event may still be on its way: a queued run that is not started has
// its record written, then its run.cancelled published (see shelve). A
// variable for the tests.
var finalGrace = 2 * time.Second

// endedWithoutEvents reports whether the stream of run runID, whose
// record says it ended at ended, holds no event, and none can come: it
// looks again, every 50 ms, until finalGrace after ended. An error of
// the stream reports false (the handler then meets it).
func (s *service) endedWithoutEvents(ctx context.Context, runID string, ended time.Time) bool {
	for {
		_, found, err := s.stream.LastEvent(ctx, runID)
		if err != nil || found {
			return false
		}
		wait := time.Until(ended.Add(finalGrace))
		if wait <= 0 {
			return true
		}
		t := time.NewTimer(min(wait, 50*time.Millisecond))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return false
		}
	}
}

// authenticate checks the request's bearer token, in constant time. It
// returns an error wrapping sse.ErrUnauthorized (no token) or
// sse.ErrForbidden (another token). Every request needs it but a GET or
// HEAD of the events route, which takes a session cookie instead (see
// authenticateEvents). A real host checks its user's session here, and
// then whether the user may see the lecture or the run.
func (s *service) authenticate(r *http.Request) error {
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	switch {
	case !strings.EqualFold(scheme, "Bearer") || token == "": // the scheme is case-insensitive
		return fmt.Errorf("%w: send the header \"Authorization: Bearer TOKEN\"", sse.ErrUnauthorized)
	case !sameToken(token, s.cfg.token):
		return fmt.Errorf("%w: this token may not use the service", sse.ErrForbidden)
	}
	return nil
}

// sameToken compares two tokens in constant time, lengths included:
// subtle.ConstantTimeCompare returns at once for slices of different
// lengths, which would tell the token's length; their SHA-256 sums have
// one length.
func sameToken(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}

// authenticatedKey is the key of the request context's value that says
// serveEvents has checked the request's token or session cookie (see
// authenticateEvents), so that the handler's Authorize does not check it
// again: no second read of the session, nor a refusal of a request
// already taken, when its session ends between the two (watchSessions
// ends its stream then). No client can set it.
type authenticatedKey struct{}

// authorizeEvents is the SSE handler's Authorize hook: the token or the
// session cookie (see authenticateEvents), unless serveEvents has
// checked them (authenticatedKey), then a run this service knows (a
// queued one, or one in the store), so that an unknown ID gets 404
// rather than a stream that waits for nothing.
func (s *service) authorizeEvents(r *http.Request) (string, error) {
	if done, _ := r.Context().Value(authenticatedKey{}).(bool); !done {
		if _, err := s.authenticateEvents(r); err != nil {
			return "", err
		}
	}
	runID := r.PathValue("run")
	if _, ok := s.queued(runID); ok {
		return runID, nil
	}
	// Recorded, or queued by another process, or by one that died (the
	// next recovery runs it): a queued run's events come once it starts.
	_, _, _, err := s.findRun(r.Context(), runID)
	if errors.Is(err, executor.ErrNotFound) {
		return "", fmt.Errorf("%w: no run %q", sse.ErrNotFound, runID)
	}
	if err != nil {
		return "", fmt.Errorf("look run %q up: %w", runID, err) // 503 with Retry-After, logged
	}
	return runID, nil
}

// findRun returns the record of run runID or, for a run queued after
// another (by this process, another, or one that died) that has no record
// yet, queued true and the run's lecture; executor.ErrNotFound if
// neither. The record is read again when the run is found neither
// recorded nor queued: a queued run's row is deleted once its record is
// written (it started, or was recorded as not started), which may come
// between the two reads. An ID that no run can have (see possibleRunID)
// is not found, without a read.
func (s *service) findRun(ctx context.Context, runID string) (rec executor.Record, key string, queued bool, err error) {
	if !possibleRunID(runID) {
		return executor.Record{}, "", false, fmt.Errorf("run %.80q: %w", runID, executor.ErrNotFound)
	}
	rec, err = s.store.GetRun(ctx, runID)
	if !errors.Is(err, executor.ErrNotFound) {
		return rec, rec.GraphKey, false, err
	}
	if findRunHook != nil {
		findRunHook(runID)
	}
	if key, ok := s.queued(runID); ok {
		return executor.Record{}, key, true, nil
	}
	q, ok, err := s.params.queuedRun(ctx, runID)
	switch {
	case err != nil:
		return executor.Record{}, "", false, err
	case ok:
		return executor.Record{}, q.key, true, nil
	}
	rec, err = s.store.GetRun(ctx, runID)
	return rec, rec.GraphKey, false, err
}

// possibleRunID reports whether a run may have ID id: valid UTF-8
// without NUL, which Postgres text holds (the tables of queued runs and
// cancels would refuse a read of any other, SQLSTATE 22021), and at most
// pgstore.MaxRunIDBytes long, as the store takes.
func possibleRunID(id string) bool {
	return len(id) <= pgstore.MaxRunIDBytes && utf8.ValidString(id) && !strings.Contains(id, "\x00")
}

// started is the answer to a request that starts a run.
type started struct {
	RunID       string `json:"runId"`
	Events      string `json:"events"`                // the run's SSE stream
	QueuedAfter string `json:"queuedAfter,omitempty"` // the run it waits for
}

func newStarted(runID, after string) started {
	return started{RunID: runID, Events: "/runs/" + runID + "/events", QueuedAfter: after}
}

// readLecture reads a request about a lecture: its token, the lecture's
// key and its JSON body into body. When one is bad it answers the client
// and returns false.
func (s *service) readLecture(w http.ResponseWriter, r *http.Request, body any, example string) (key string, ok bool) {
	if !s.allowed(w, r) {
		return "", false
	}
	if key, ok = lectureKey(w, r); !ok {
		return "", false
	}
	return key, s.decode(w, r, body, example)
}

// createRun is POST /lectures/{key}/runs {"seconds": N}: it builds the
// lecture's graph and starts a run of it.
func (s *service) createRun(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Seconds int `json:"seconds"`
	}
	key, ok := s.readLecture(w, r, &body, `{"seconds": 120}`)
	if !ok {
		return
	}
	g, err := graph.Build(graph.Lecture(), body.Seconds)
	if err != nil {
		httpError(w, http.StatusBadRequest, fmt.Errorf("seconds: %w", err))
		return
	}
	// Admitted once its body is read: one still arriving does not hold
	// a shutdown.
	done, err := s.admit()
	if err != nil {
		s.startFailed(w, r, err)
		return
	}
	defer done()
	// Bounded, as an edit is: a Postgres that stalls, or a turn that does
	// not end, is answered 503 with Retry-After, nothing changed.
	ctx, cancel := context.WithTimeout(r.Context(), runTimeout)
	defer cancel()
	runID := newRunID()
	switch err := s.startRun(ctx, key, g, runID, fmt.Sprintf("lecture of %d s", body.Seconds), body.Seconds); {
	case errors.Is(err, errBusy):
		httpError(w, http.StatusConflict, fmt.Errorf("lecture %q: %w; wait for its end", key, err))
	case err != nil:
		s.startFailed(w, r, err)
	default:
		writeJSON(w, http.StatusAccepted, newStarted(runID, ""))
	}
}

// edit is POST /lectures/{key}/edits {"node": ID, "params": {...}}: it
// saves the node's new parameters, records the edit, then starts a run
// (or queues one after the run going on) that regenerates what the edit
// affects.
func (s *service) edit(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Node   string          `json:"node"`
		Params json.RawMessage `json:"params"`
	}
	key, ok := s.readLecture(w, r, &body, `{"node": "script", "params": {"text": "..."}}`)
	if !ok {
		return
	}
	if len(body.Params) == 0 || body.Params[0] != '{' {
		httpError(w, http.StatusBadRequest, errors.New(`params: want a JSON object, such as {"text": "..."}`))
		return
	}
	if !utf8.Valid(body.Params) {
		// encoding/json keeps a RawMessage's bytes as they came, and
		// Postgres text, where they are saved, holds UTF-8 only.
		httpError(w, http.StatusBadRequest, errors.New(`params: not valid UTF-8: send its strings in UTF-8, or as \u escapes`))
		return
	}
	// Admitted once its body is read (one still arriving does not hold a
	// shutdown) and before anything is saved: a shutdown that begins
	// later waits for this edit's run to start, so that an edit is either
	// refused with nothing saved (503) or saved and given its run (202).
	done, err := s.admit()
	if err != nil {
		s.startFailed(w, r, err)
		return
	}
	defer done()
	// The edit does not stop half-way when the client goes away: once
	// its parameters are saved, it is carried out.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), editTimeout)
	defer cancel()
	// The lecture's graph, to check the request before it waits for a
	// slot: it is read again once the edit has its turn (below).
	g, seconds, ok := s.editGraph(ctx, w, r, key)
	if !ok {
		return
	}
	if _, err := g.Lookup(body.Node); err != nil {
		httpError(w, http.StatusBadRequest, fmt.Errorf("node: %w", err))
		return
	}
	var params bytes.Buffer
	if err := json.Compact(&params, body.Params); err != nil {
		httpError(w, http.StatusBadRequest, fmt.Errorf("params: %w", err))
		return
	}
	// A run slot and the lecture's lock too, unless the edit's run will
	// be queued after one of this process: taken once the request is
	// known to be good (a bad node is told so even when the service is
	// full), and before anything is saved. A lecture that another process
	// runs is answered 409, with nothing saved.
	sl, err := s.holdSlot(ctx, key)
	if errors.Is(err, errBusy) {
		httpError(w, http.StatusConflict, fmt.Errorf("lecture %q: %w; nothing was saved: edit it again once the run has ended", key, err))
		return
	}
	if errors.Is(err, errNoTurn) || errors.Is(err, errLockTimeout) {
		w.Header().Set("Retry-After", "1")
		httpError(w, http.StatusServiceUnavailable, fmt.Errorf("%w; nothing was saved", err))
		return
	}
	if err != nil {
		s.startFailed(w, r, err)
		return
	}
	defer sl.release()
	// The lecture's graph now that the edit has its turn: a run of
	// another length may have started, or ended, while it waited. That
	// of the run going on, if any, which the edit's run is queued after;
	// or else the length saved, which no request of this process changes
	// while the edit holds the lecture's lock.
	s.mu.Lock()
	running := s.lectures[key]
	if running != nil && sl.lock == nil {
		g = running.g
	}
	s.mu.Unlock()
	if running == nil || sl.lock != nil {
		if g, _, ok = s.editGraph(ctx, w, r, key); !ok {
			return
		}
	}
	n, err := g.Lookup(body.Node)
	if err != nil {
		httpError(w, http.StatusConflict, fmt.Errorf("lecture %q changed from %d s while the edit waited for its turn, "+
			"and has no node %q now; nothing was saved", key, seconds, body.Node))
		return
	}
	node := g.NodeID(n)
	// The parameters, where the generators read them, and the edit,
	// which gives the node a new revision and makes it and its dependents
	// dirty, in one transaction: both are stored, or neither is. Saved
	// apart, parameters whose edit failed, or whose process died before
	// it, would be new with no revision that stands for them, and no run
	// would make anything from them. The edit is recorded last, just
	// before the commit: a run going on waits for the commit at its next
	// commit of the lecture, then supersedes what it made from the old
	// parameters. In READ COMMITTED, as EditTx asks, whatever the
	// session's default (a role or a database may set a stricter one):
	// at a stricter level, a run's commit of the lecture since the
	// transaction's first statement would fail the edit (SQLSTATE 40001).
	committing := false // once set, a failure may have come after the commit took
	err = pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error {
		if err := s.params.save(ctx, tx, key, node, params.Bytes()); err != nil {
			return err
		}
		if savedHook != nil {
			savedHook(key, node)
		}
		if _, err := s.store.EditTx(ctx, tx, g, key, node); err != nil {
			return err
		}
		committing = true
		return nil
	})
	if errors.Is(err, executor.ErrInvalidRequest) {
		// The lecture changed under the edit (a run of another length,
		// from another process): the caller may edit again.
		s.logger.Warn("edit refused", "lecture", key, "node", node, "err", err)
		httpError(w, http.StatusConflict, fmt.Errorf("lecture %q changed while the edit was saved; "+
			"the edit was not recorded and its parameters were not saved: edit it again", key))
		return
	}
	if err != nil && !committing && transient(ctx, err) {
		// Rolled back, for a cause that passes: the database's connection
		// dropped, or a lock was not had within the edit's bound.
		s.logger.Warn("edit failed", "lecture", key, "node", node, "err", err)
		w.Header().Set("Retry-After", "1")
		httpError(w, http.StatusServiceUnavailable, fmt.Errorf("lecture %q: the database did not take the edit of %s in time "+
			"or its connection was lost; nothing was saved: edit it again", key, node))
		return
	}
	if err != nil {
		// Rolled back (or, when the commit failed, maybe not: the
		// answer is lost with the connection).
		s.internalError(w, r, fmt.Sprintf("saving the edit of %s of lecture %q", node, key), err)
		return
	}
	s.logger.Info("edited", "lecture", key, "node", node)
	runID, after, err := s.startOrQueue(ctx, key, g, "edit of "+node, sl)
	if errors.Is(err, errBusy) {
		// Only when the run before it ended in the meantime, and another
		// process took the lecture at once.
		httpError(w, http.StatusConflict, fmt.Errorf("lecture %q: %w; the edit was saved, "+
			"but its run did not start: the lecture's next run regenerates what the edit affects", key, err))
		return
	}
	if errors.Is(err, errNoTurn) || errors.Is(err, errLockTimeout) {
		// The run before it ended meanwhile, and another request of the
		// lecture held it past the edit's bound, or its lock could not be
		// taken within it.
		w.Header().Set("Retry-After", "1")
		httpError(w, http.StatusServiceUnavailable, fmt.Errorf("%w; the edit was saved, but its run did not start: "+
			"the lecture's next run regenerates what the edit affects", err))
		return
	}
	if errors.Is(err, errClosing) {
		// Only when the shutdown gave up waiting for this request.
		httpError(w, http.StatusServiceUnavailable, errors.New("the edit was saved, but its run did not start: "+
			"the service is shutting down; the lecture's next run regenerates what the edit affects"))
		return
	}
	if err != nil {
		s.startFailed(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, newStarted(runID, after))
}

// editGraph returns the graph of lecture key, from its length, and the
// length: the one saved, or, for a lecture made before the length was
// saved, its last run's, while retention keeps its records. It answers
// 404 to an unknown lecture, 500 to a failure, and returns false then.
func (s *service) editGraph(ctx context.Context, w http.ResponseWriter, r *http.Request, key string) (*graph.Graph, int, bool) {
	seconds, ok, err := s.params.lectureSeconds(ctx, key)
	if err != nil {
		s.internalError(w, r, fmt.Sprintf("reading the length of lecture %q", key), err)
		return nil, 0, false
	}
	if !ok {
		// The newest record alone, whatever the lecture's history.
		rec, err := s.store.LatestRun(ctx, key)
		switch {
		case errors.Is(err, executor.ErrNotFound):
			httpError(w, http.StatusNotFound, fmt.Errorf("no lecture %q: create it with POST /lectures/%s/runs", key, key))
			return nil, 0, false
		case err != nil:
			s.internalError(w, r, fmt.Sprintf("reading the last run of lecture %q", key), err)
			return nil, 0, false
		}
		seconds = rec.Seconds
	}
	g, err := graph.Build(graph.Lecture(), seconds)
	if err != nil {
		s.internalError(w, r, fmt.Sprintf("building the graph of lecture %q", key), err)
		return nil, 0, false
	}
	return g, seconds, true
}

// runView is the answer of GET /runs/{run}.
type runView struct {
	ID       string `json:"id"`
	GraphKey string `json:"graphKey"`
	// Status is the record's, or "queued" for a run queued after another.
	Status string           `json:"status"`
	Record *executor.Record `json:"record,omitempty"`
	// Report is there for the runs of this process that ended.
	Report *reportView `json:"report,omitempty"`
}

// reportView is a run's report: node IDs by outcome (see
// executor.Report), never null.
type reportView struct {
	Generated  []string `json:"generated"`
	Unchanged  []string `json:"unchanged"`
	Failed     []string `json:"failed"`
	Skipped    []string `json:"skipped"`
	Superseded []string `json:"superseded"`
	Cancelled  []string `json:"cancelled"`
	Dirty      []string `json:"dirty"`
	Rounds     int      `json:"rounds"`
}

// getRun is GET /runs/{run}: the run's record and, for a run of this
// process that ended, its report.
func (s *service) getRun(w http.ResponseWriter, r *http.Request) {
	if !s.allowed(w, r) {
		return
	}
	runID := r.PathValue("run")
	// The report first, then the record: a run's final record is stored
	// before its report is kept, so that the record read after a report
	// is the final one (unless storing it failed, which the executor
	// logs). Read before, it may say "running" while the run's end keeps
	// its report.
	var report *reportView
	s.mu.Lock()
	if kept := s.reports[runID]; kept != nil {
		rep := kept.rep
		report = &reportView{Generated: rep.Generated, Unchanged: rep.Unchanged, Failed: rep.Failed,
			Skipped: rep.Skipped, Superseded: rep.Superseded, Cancelled: rep.Cancelled, Dirty: rep.Dirty,
			Rounds: rep.Rounds}
	}
	s.mu.Unlock()
	if getRunHook != nil {
		getRunHook(runID)
	}
	rec, key, queued, err := s.findRun(r.Context(), runID)
	switch {
	case errors.Is(err, executor.ErrNotFound):
		httpError(w, http.StatusNotFound, fmt.Errorf("no run %q", runID))
		return
	case err != nil:
		s.internalError(w, r, fmt.Sprintf("reading run %q", runID), err)
		return
	case queued:
		writeJSON(w, http.StatusOK, runView{ID: runID, GraphKey: key, Status: "queued"})
		return
	}
	v := runView{ID: rec.ID, GraphKey: rec.GraphKey, Status: string(rec.Status), Record: &rec, Report: report}
	writeJSON(w, http.StatusOK, v)
}

// Bounds of a page of GET /lectures/{key}/runs.
const (
	// defaultRunsLimit is the runs of a page without ?limit: those a
	// client that ignores paging gets.
	defaultRunsLimit = 100
	// maxRunsLimit is the most runs of a page.
	maxRunsLimit = pgstore.MaxRunsPage
)

// runsPage is the answer of GET /lectures/{key}/runs.
type runsPage struct {
	Runs []runView `json:"runs"`
	// Next is the cursor of the next page (?after=), left out on the
	// last page.
	Next string `json:"next,omitempty"`
}

// listRuns is GET /lectures/{key}/runs: a page of the lecture's runs,
// oldest first, each with its record (no report: GET /runs/{run} has
// it), and, on the last page, the run queued after the one going on, if
// any, in whichever process. A page holds at most ?limit runs (1 to
// maxRunsLimit, defaultRunsLimit without it) from the one after
// ?after, the "next" of the page before, on; its "next" is there unless
// it is the last (Store.ListRunsPage). A lecture without runs, queued or
// recorded, is answered 404, unless its length is saved: the retention
// deleted its records ({"runs": []}). A bad limit or cursor is 400.
func (s *service) listRuns(w http.ResponseWriter, r *http.Request) {
	if !s.allowed(w, r) {
		return
	}
	key, ok := lectureKey(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	limit := defaultRunsLimit
	if q.Has("limit") {
		v := q.Get("limit")
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxRunsLimit {
			httpError(w, http.StatusBadRequest, fmt.Errorf("limit %.20q: want an integer from 1 to %d (default %d)", v, maxRunsLimit, defaultRunsLimit))
			return
		}
		limit = n
	}
	after := q.Get("after")
	records, next, err := s.store.ListRunsPage(r.Context(), key, after, limit)
	switch {
	case errors.Is(err, pgstore.ErrInvalidPage):
		httpError(w, http.StatusBadRequest, fmt.Errorf(`after %.80q: want the "next" of a page of this list`, after))
		return
	case err != nil:
		s.internalError(w, r, fmt.Sprintf("listing the runs of lecture %q", key), err)
		return
	}
	if listRunsPageHook != nil {
		listRunsPageHook(key)
	}
	out := runsPage{Runs: []runView{}, Next: next}
	for i := range records {
		rec := &records[i]
		out.Runs = append(out.Runs, runView{ID: rec.ID, GraphKey: rec.GraphKey, Status: string(rec.Status), Record: rec})
	}
	if next != "" {
		writeJSON(w, http.StatusOK, out)
		return
	}
	// The last page: the runs queued, after the records.
	recorded := map[string]bool{}
	for i := range records {
		recorded[records[i].ID] = true
	}
	queued, err := s.params.queuedRuns(r.Context(), key)
	if err != nil {
		s.internalError(w, r, fmt.Sprintf("listing the runs of lecture %q", key), err)
		return
	}
	// Read after the records: a queued run that started between the two
	// reads has a record by now, read below.
	var ids []string
	for _, q := range queued {
		if !recorded[q.runID] {
			ids = append(ids, q.runID)
		}
	}
	if id, ok := s.queuedOf(key); ok && !recorded[id] && !slices.Contains(ids, id) {
		ids = append(ids, id) // not saved (its row failed), or not yet
	}
	for _, id := range ids {
		switch rec, err := s.store.GetRun(r.Context(), id); {
		case err == nil:
			// Started after the page was read, unless its record comes
			// before the page's last: on an earlier page then (its row is
			// deleted once the retention finds its record).
			if len(records) > 0 && !listedBefore(records[len(records)-1], rec) {
				continue
			}
			if len(records) == 0 && after != "" {
				// A page after a cursor without records (those after it
				// were deleted since): after the cursor if the first
				// record after it now is not listed after it.
				now, _, err := s.store.ListRunsPage(r.Context(), key, after, 1)
				if err != nil {
					s.internalError(w, r, fmt.Sprintf("listing the runs of lecture %q", key), err)
					return
				}
				if len(now) == 0 || listedBefore(rec, now[0]) {
					continue
				}
			}
			out.Runs = append(out.Runs, runView{ID: rec.ID, GraphKey: rec.GraphKey, Status: string(rec.Status), Record: &rec})
		case errors.Is(err, executor.ErrNotFound):
			out.Runs = append(out.Runs, runView{ID: id, GraphKey: key, Status: "queued"})
		default:
			s.internalError(w, r, fmt.Sprintf("reading run %q", id), err)
			return
		}
	}
	if len(out.Runs) == 0 {
		// A lecture whose records the retention deleted is one still: an
		// edit of it builds its graph from the length saved. A cursor
		// (of no one lecture) does not make a lecture of a key never made;
		// records before it do, its length unsaved (setSeconds failed, or
		// a host put the records).
		_, ok, err := s.params.lectureSeconds(r.Context(), key)
		if err != nil {
			s.internalError(w, r, fmt.Sprintf("reading the length of lecture %q", key), err)
			return
		}
		if !ok && after != "" {
			some, _, err := s.store.ListRunsPage(r.Context(), key, "", 1)
			if err != nil {
				s.internalError(w, r, fmt.Sprintf("listing the runs of lecture %q", key), err)
				return
			}
			ok = len(some) > 0
		}
		if !ok {
			httpError(w, http.StatusNotFound, fmt.Errorf("no lecture %q: create it with POST /lectures/%s/runs", key, key))
			return
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// listRunsPageHook, if not nil, is called by listRuns once it has read
// its page of records; a variable for the tests.
var listRunsPageHook func(key string)

// listedBefore reports whether a comes before b in the order of
// Store.ListRuns: by StartedAt, a zero one first, then by ID.
func listedBefore(a, b executor.Record) bool {
	switch {
	case a.StartedAt.IsZero() != b.StartedAt.IsZero():
		return a.StartedAt.IsZero()
	case !a.StartedAt.Equal(b.StartedAt):
		return a.StartedAt.Before(b.StartedAt)
	}
	return a.ID < b.ID
}

// cancelRun is POST /runs/{run}/cancel: it cancels a run that this
// process runs, or has queued, with errCancelledByRequest as the cause,
// and answers 202 {"runId", "events"}: the run's stream ends with a
// run.cancelled, and its record says why. The cancel of a run that
// another process runs or has queued, or that a process left for the
// next start to resume (left running, or cancelled by a shutdown or a
// lost lock: see toResume), is
// saved for that process, or that start (see cancelElsewhere): 202 too.
// A run that has ended is answered 409; an unknown one 404; during the
// shutdown, which cancels the runs, 503.
func (s *service) cancelRun(w http.ResponseWriter, r *http.Request) {
	if !s.allowed(w, r) {
		return
	}
	runID := r.PathValue("run")
	done, err := s.admit()
	if err != nil {
		s.startFailed(w, r, err)
		return
	}
	defer done()
	switch ok, err := s.cancel(runID); {
	case errors.Is(err, errStarting):
		w.Header().Set("Retry-After", "1")
		httpError(w, http.StatusServiceUnavailable, fmt.Errorf("run %q: %w", runID, err))
		return
	case ok:
		writeJSON(w, http.StatusAccepted, newStarted(runID, ""))
		return
	}
	rec, _, queued, err := s.findRun(r.Context(), runID)
	switch {
	case errors.Is(err, executor.ErrNotFound):
		httpError(w, http.StatusNotFound, fmt.Errorf("no run %q", runID))
	case err != nil:
		s.internalError(w, r, fmt.Sprintf("reading run %q", runID), err)
	case queued:
		s.cancelElsewhere(w, r, runID) // queued by another process
	case rec.Status == executor.RunRunning:
		s.cancelElsewhere(w, r, runID)
	default:
		// A run that a shutdown cancelled has not ended for good: the
		// next start resumes it, unless its cancel is saved.
		_, resumable, err := s.toResume(r.Context(), rec)
		switch {
		case err != nil:
			s.internalError(w, r, fmt.Sprintf("reading the runs of lecture %q", rec.GraphKey), err)
		case resumable:
			s.cancelElsewhere(w, r, runID)
		default:
			httpError(w, http.StatusConflict, fmt.Errorf("run %q has ended: %s", runID, rec.Status))
		}
	}
}

// cancelElsewhere saves the cancel of run runID, which another process
// of the service runs or has queued: that process carries it out within
// a moment (see pollCancels), or, if none does, the next recovery (see
// recoverRun), which cancels the run's resume if it is resuming the run
// by then (see applyCancels). 202.
func (s *service) cancelElsewhere(w http.ResponseWriter, r *http.Request, runID string) {
	if err := s.params.requestCancel(r.Context(), runID); err != nil {
		s.internalError(w, r, fmt.Sprintf("saving the cancel of run %q", runID), err)
		return
	}
	writeJSON(w, http.StatusAccepted, newStarted(runID, ""))
}

// allowed answers 401 or 403 to a request without the token.
func (s *service) allowed(w http.ResponseWriter, r *http.Request) bool {
	return s.answerAuth(w, s.authenticate(r))
}

// answerAuth answers 401 (with WWW-Authenticate) or 403 to a request
// whose authentication failed with err, or 503 (with Retry-After) when
// its session could not be checked, and reports whether err is nil.
func (s *service) answerAuth(w http.ResponseWriter, err error) bool {
	switch {
	case errors.Is(err, errSessionsUnread):
		s.logger.Warn("a session cookie not checked", "err", err)
		w.Header().Set("Retry-After", "1")
		httpError(w, http.StatusServiceUnavailable, errSessionsUnread)
	case errors.Is(err, sse.ErrUnauthorized):
		w.Header().Set("WWW-Authenticate", "Bearer")
		httpError(w, http.StatusUnauthorized, err)
	case err != nil:
		httpError(w, http.StatusForbidden, err)
	}
	return err == nil
}

// transient reports whether err, which ended an edit's transaction
// before its commit, has a cause that passes, so that the same edit may
// be made again: the edit's bound (ctx) ended, the connection failed, or
// the server refused it for a cause of the moment (a lock not had, a
// serialization failure or a deadlock, a shutdown, too few resources).
func transient(ctx context.Context, err error) bool {
	if ctx.Err() != nil || pgconn.Timeout(err) || pgconn.SafeToRetry(err) || errors.Is(err, pgconn.ErrConnClosed) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	if ne := net.Error(nil); errors.As(err, &ne) {
		return true
	}
	if pe := (*pgconn.PgError)(nil); errors.As(err, &pe) {
		for _, class := range []string{"08", "40", "53", "57", "55P03"} {
			if strings.HasPrefix(pe.Code, class) {
				return true
			}
		}
	}
	return false
}

// maxKey bounds a lecture key's length.
const maxKey = 64

// lectureKey returns the request's lecture key, or answers 400 to one
// that is not 1 to maxKey ASCII letters, digits, '-', '_' or '.', or
// that is "." or "..": a key fits every store, log line and URL as it
// is, and a client that normalises a URL's path (a browser's fetch,
// curl) removes those two, so that their lecture could not be reached.
func lectureKey(w http.ResponseWriter, r *http.Request) (string, bool) {
	key := r.PathValue("key")
	ok := key != "" && len(key) <= maxKey && key != "." && key != ".." &&
		strings.Trim(key, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == ""
	if !ok {
		httpError(w, http.StatusBadRequest, fmt.Errorf(`lecture key %.80q: want 1 to %d ASCII letters, digits, '-', '_' or '.', not "." nor ".."`, key, maxKey))
	}
	return key, ok
}

// startFailed answers a run that could not start.
func (s *service) startFailed(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, errClosing):
		httpError(w, http.StatusServiceUnavailable, err)
	case errors.Is(err, errFull):
		w.Header().Set("Retry-After", "10")
		httpError(w, http.StatusServiceUnavailable, err)
	case errors.Is(err, errNoTurn), errors.Is(err, errLockTimeout):
		w.Header().Set("Retry-After", "1")
		httpError(w, http.StatusServiceUnavailable, err)
	case errors.Is(err, executor.ErrBusy):
		// A good request refused for a run or call under way: the same
		// request is taken once it has ended.
		w.Header().Set("Retry-After", "1")
		httpError(w, http.StatusConflict, err)
	case errors.Is(err, executor.ErrInvalidRequest):
		httpError(w, http.StatusBadRequest, err)
	default:
		s.internalError(w, r, "starting the run", err)
	}
}

// internalError logs err, with the request and a reference, and answers
// 500 with what failed and the reference only: a store's error names its
// schema, its tables and its servers, which a client has no business
// seeing; the log has them.
func (s *service) internalError(w http.ResponseWriter, r *http.Request, what string, err error) {
	var b [6]byte
	_, _ = rand.Read(b[:]) // never fails
	ref := hex.EncodeToString(b[:])
	s.logger.Error(what+" failed", "err", err, "ref", ref, "method", r.Method, "path", r.URL.Path)
	httpError(w, http.StatusInternalServerError, fmt.Errorf("%s failed; the service's log has the details under ref %s", what, ref))
}

// decode reads the request's JSON body into v, or answers 413 to a body
// over maxBody, 408 to one that does not arrive within bodyTimeout, 503
// to one still arriving when the shutdown begins, and 400 to any other
// bad body, with what was wrong and a body like example.
func (s *service) decode(w http.ResponseWriter, r *http.Request, v any, example string) bool {
	// A body that trickles in must not hold the handler, its connection
	// and the shutdown for good. The server has no ReadTimeout, which
	// would cut the event streams too.
	// The deadline stays after a failure, for the server's read of what
	// is left of the body.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(bodyTimeout)) // ErrNotSupported: a test's recorder
	reading, cerr := s.readingBody(rc)
	if cerr != nil {
		w.Header().Set("Connection", "close")
		httpError(w, http.StatusServiceUnavailable, cerr)
		return false
	}
	defer reading()
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		switch err = dec.Decode(&struct{}{}); err {
		case io.EOF:
			_ = rc.SetReadDeadline(time.Time{})
			return true
		case nil:
			err = errors.New("one JSON object only")
		}
	}
	if tooLarge := (*http.MaxBytesError)(nil); errors.As(err, &tooLarge) {
		httpError(w, http.StatusRequestEntityTooLarge, fmt.Errorf("body: over %d bytes", tooLarge.Limit))
		return false
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		w.Header().Set("Connection", "close")
		if s.isClosing() { // the shutdown cut the body short
			httpError(w, http.StatusServiceUnavailable, errClosing)
			return false
		}
		httpError(w, http.StatusRequestTimeout, fmt.Errorf("body: not received within %v", bodyTimeout))
		return false
	}
	httpError(w, http.StatusBadRequest, badBody(err, example))
	return false
}

// badBody says what is wrong with a body that json refused, and what is
// wanted, in the client's terms: json's own texts name Go types and
// say "EOF".
func badBody(err error, example string) error {
	want := "want a JSON object like " + example
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return errors.New("empty body: " + want)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("body: the JSON ends too soon; " + want)
	case errors.As(err, &syntax):
		return fmt.Errorf("body: not JSON (%s, at byte %d); %s", strings.TrimPrefix(syntax.Error(), "json: "), syntax.Offset, want)
	case errors.As(err, &typ) && typ.Field == "":
		return fmt.Errorf("body must be a JSON object like %s, not %s", example, jsonKind(typ.Value))
	case errors.As(err, &typ):
		return fmt.Errorf("%s: want %s, not %s", typ.Field, goKind(typ.Type), jsonKind(typ.Value))
	}
	return fmt.Errorf("body: %s; %s", strings.TrimPrefix(err.Error(), "json: "), want)
}

// jsonKind names the JSON value json.UnmarshalTypeError.Value describes:
// "array", "number", "number 1e30", "string"...
func jsonKind(v string) string {
	switch {
	case strings.HasPrefix(v, "number "):
		return "a number (" + strings.TrimPrefix(v, "number ") + ")"
	case v == "array", v == "object":
		return "an " + v
	case v == "":
		return "that"
	}
	return "a " + v
}

// goKind names, in JSON's terms, the value a field of Go type t takes.
func goKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer in range"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "an array"
	}
	return "an object"
}

// writeJSON answers v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// httpError answers err's text, as JSON.
func httpError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, map[string]string{"error": err.Error()})
}

// newRunID returns a random run ID. Run IDs must never be reused: a
// stream or an archive that still holds an old run's events under an ID
// would take a new run's for duplicates.
func newRunID() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // never fails
	return "run-" + hex.EncodeToString(b[:])
}
