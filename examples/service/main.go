// Command service runs regen as a small HTTP service, wired as the
// README's "In production" section describes, so that a host can copy it.
//
//	go run ./examples/service [-addr 127.0.0.1:8080] [-schema regen_service]
//	    [-prefix regen_service:] [-latency 200ms] [-retain 24h] [-prune-every 1h]
//	    [-recover-every 10s] [-retake 10s] [-store-retry 10s] [-max-runs 8]
//	    [-drain 10s] [-cors-origin ORIGIN]...
//
// # Wiring
//
//   - Stores: one executor/pgstore Store, migrated at start-up, is the
//     executor's States, Assets and Runs. A run's store call that fails
//     with an error that may pass (a Postgres restart, a failover) is
//     tried again, with backoff, for -store-retry (10s;
//     executor.Options.StoreRetry, whose own default, 1.5 s, covers a
//     blip only), before it fails its node's attempt or the run's start:
//     give it -retake or more, so that a run whose lock rides out an
//     outage does so with its store calls too. The lectures' lengths, the
//     nodes' parameters, the runs queued after another (from the
//     moment an edit is given the queued run's ID until the run's record
//     is written), the cancels requested of another process (POST
//     /runs/{run}/cancel), the browsers' sessions (POST /session), the
//     lectures whose runs a shutdown or a lost lock cut (until a
//     pass looks at them) and the secret of the session cookies (see
//     POST /session) are in seven tables of the service's own in the same schema,
//     made at start-up after the store's Migrate: they
//     survive a restart, and every process of the service sees the same.
//     An edit saves the node's parameters and records the edit
//     (Store.EditTx, not Executor.Edit) in one transaction: both are
//     stored or neither is, so that an edit that fails, or whose process
//     dies, leaves neither new parameters without their revision (which
//     no run would ever make) nor a revision without its parameters.
//     The edits of one node take turns from their save to their commit.
//   - One run per lecture, across processes: every run (started, queued
//     after another, or resumed) runs under its lecture's lock,
//     Store.TryLockGraph, a Postgres advisory lock; a run queued after
//     another takes the lock over. A lecture whose lock another process
//     holds is answered 409, as one running in this process is (but a
//     request made as another process gives the lock up, the lecture's
//     newest run ended and none queued, waits for it, up to 2 s). The
//     requests of a lecture in this process take its lock one at a time:
//     a request waits while another takes or holds it (an edit being
//     saved, a run starting), then finds the lecture running (an edit
//     queues its run after it) or takes the lock in turn. A run whose
//     lock's session ends (a Postgres restart, a failover) takes the lock
//     again on a new session, for up to -retake (10s;
//     pgstore.GraphLock.GuardFor), and goes on, its generator calls under
//     way uncut; another process's recovery may resume it meanwhile,
//     whose calls are then paid twice, and the re-take then fails. A run
//     whose lock is lost (its connection ended, and not taken again) is cancelled, as another
//     process may take the lecture then (its record's code "lock-lost":
//     the next start resumes it, unless a run of the lecture came after
//     it); a run queued after it takes the
//     lock again, and if another process took the lecture meanwhile, the
//     queued run is recorded, under the ID its edit was given, as
//     cancelled for that (a run.cancelled ends its stream), and that
//     process's runs regenerate what its edits affect; a queued run whose
//     start fails otherwise (a store error) is recorded so too, with
//     that cause, and the lecture's next run regenerates what its edits
//     affect. Each lock held is a Postgres
//     connection of its own, beyond the pool's: up to -max-runs more,
//     and one for the process's own lock (see Recovery).
//   - Recovery, at start-up and every -recover-every (10s) while a
//     process serves: the runs recorded as running (Store.RunsByStatus)
//     whose lecture's lock is free were left by a process that died,
//     and are resumed (Executor.Resume, on the graph that
//     executor.GraphOf builds back from the record), under the lock, as
//     runs of this process; at start-up, so are the runs that a shutdown
//     or a lost lecture lock cancelled, told by their records' cancel
//     code (Record.CancelledBy "shutdown", the service's, or
//     "lock-lost", pgstore.CancelledByLockLost; never by Error's text),
//     that are still their lecture's newest run (no run of the lecture
//     resumes them, nor started with or after them; a queued run
//     recorded as not started, code "not-started", for another process
//     took its lecture, or "request", for a request cancelled it while
//     it waited, does not count), found with a scan of the runs
//     table that the later passes spare; never a run that a request
//     cancelled (code "request"). Each process also watches the runs
//     that its passes list as running, in any process: once one has
//     ended, its next pass resumes the newest run of its lecture if a
//     shutdown or a lost lock cut it (a read of the lecture's newest
//     records for each run ended, pgstore.Store.LatestRuns);
//     a run cut short that a pass, or the start, found but left (past
//     -max-runs, its lecture locked, its resume failed) is looked at
//     again by each later pass, until it is resumed or superseded. So
//     a run that one process's shutdown cut is finished by the next
//     process to start, or by a live process (a rolling deploy, whose
//     new process starts before the old one stops), about
//     -recover-every after, whether its passes saw the run going on or
//     not: the shutdown saves the keys of the lectures whose runs it
//     cuts, as the cut begins (a process killed as its runs end has saved
//     them) and again after it, as the end of a run that a lost lock cut
//     saves its lecture's,
//     and each pass of a live process looks at them too (a read of the
//     newest records of each), until one finds the lecture's newest run going on or not to
//     resume, and deletes the key (retention deletes those older than
//     -retain). A version of the service without that table
//     (service_cut) saves none: the runs that its shutdown cut, in the
//     rolling deploy that replaces it, are finished only if a pass saw
//     them going on, and left to the next start otherwise. The runs
//     recorded by a version of the service without cancel codes are not
//     resumed. A
//     lecture locked elsewhere, or run by this process, is left to the
//     process that runs it. A run whose graph no template of the
//     service builds is abandoned (Executor.Abandon): recorded as
//     interrupted, not resumed, so that it is not found again; one that
//     a shutdown or a lost lock cut stays cancelled, its record's code
//     then "no-template", its Error saying so after what cut it. A run
//     that the dead process had queued after one it ran is not lost: the
//     resume of the run before it is made under the queued run's ID (its
//     record names the run it resumes), or, if that run had ended or is
//     abandoned now (a request cancelled it, or no template builds its
//     graph), or its resume is refused (another process ran the lecture
//     since, with a graph of another length), the queued run starts
//     under its ID, as a run of the lecture's length;
//     either makes what its edits affect, and its readers get it. A
//     queued run is a dead process's when the lock of the process that
//     queued it is free: each process holds a lock of its own
//     (Store.TryLockGraph of "examples/service process ID", ID random,
//     logged as "process" at start-up) from its start to the end of its
//     shutdown, and saves its ID with the runs it queues. So a live
//     process's queued runs are never taken, even while their lecture's
//     lock is free (taken again after it was lost, or given up by a
//     shutdown), nor is the run before one of them resumed; the process
//     that takes a queued run over saves its own ID in its row, under the
//     lecture's lock, so that one process alone runs it, once, and only
//     while the lock of the process that queued it is free, read in the
//     same statement (a process that took its lock again keeps its
//     runs). A run taken over and not started (a store error) is given
//     back to the dead process, for a later pass of any process; a
//     give-back that fails is tried again, twice at once and then at
//     each pass of the process; so is the delete of the row of a queued
//     run not started whose record could not be written either (its
//     stream ends with a run.cancelled all the same), and once more at
//     the shutdown: a row left would have another process run it after
//     that final event. A process that takes over a queued run whose
//     stream has ended (the process that queued it lost its lock before
//     the delete could be made) deletes its row, and runs nothing under
//     its ID, not even the resume of the run before it. A browser that
//     follows a run of a process that died gets its final event (a run.cancelled that names the resume) about
//     -recover-every after Postgres has seen the process's sessions end.
//     A run queued by a version of the service without process IDs is
//     taken at start-up only, when its lecture's lock is free. A run
//     whose lecture's lock alone was lost, its process alive, is
//     cancelled (see above), and another process may resume it before
//     its record says so, as it may take the lecture then; a process
//     whose own lock was lost takes it again at its next pass (or before
//     it records a run it queued as not started), and meanwhile another
//     may take over the runs it queued, which it then leaves to that
//     process: it records none of them as not started. Past -max-runs
//     the rest wait for a later pass. A pass reads the locks held once
//     (pg_locks), and tries only the lecture locks that it sees free.
//   - Progress: the executor's Sink is a progress.Fanout of a
//     progress/redisstream Stream and a progress.Archive of a
//     progress/pghistory History, each behind a progress.Buffered of its
//     own, so that neither a Redis nor a Postgres outage fails or slows a
//     run. The Stream falls back to the same History, so that a reader
//     resumes without a gap after Redis trims or expires a stream.
//   - Browsers follow a run through progress/sse, served from the Stream.
//   - Generators: fake ones for the lecture template, which wait -latency
//     as a provider would and make each output from the node's parameters
//     (read from the database) and its dependencies' outputs.
//   - Logs: through log/slog, on stderr.
//   - Retention: every -prune-every, PruneAssets and PruneRuns on the
//     store and Prune on the History, with the age -retain, which must be
//     longer than the longest run. The rows of queued runs are deleted
//     once their runs have records, whatever their age, and before the
//     records, so that no row outlives the record that tells it left
//     over; a run still queued, however long the run before it lasts, is
//     never lost.
//   - Shutdown on SIGINT or SIGTERM: a request that may save an edit or
//     start a run is answered 503, having changed nothing, from then on;
//     those taken before are carried out in full (an edit saved gets its
//     run). Then the runs are drained for up to -drain (10s;
//     Executor.Drain): no node starts, no failed call is retried, and
//     the generator calls under way end and are kept; the runs end as
//     cancelled with the cancel code "shutdown" (executor.CancelCode).
//     What is left once -drain has passed is cancelled with that code
//     (at once with -drain 0). Their records keep it, and the next start
//     resumes them, making only what they left. A run queued after one of them
//     (by an edit) does not start: it is recorded, under the ID its edit
//     was given, as cancelled by the shutdown, with a run.cancelled as the
//     one event of its stream, and the next start resumes it as the
//     lecture's newest run (the resume's record names it in "resumes"),
//     making what its edits affect. Then Executor.Close, each
//     Buffered's Close, the Stream's Close, and last the Redis client and
//     the Postgres pool. A second signal kills the process at once.
//
// # Endpoints
//
// Every request needs the header "Authorization: Bearer TOKEN", with the
// token from env REGEN_SERVICE_TOKEN (a random one, printed at start-up,
// when it is not set): 401 without it, 403 with another token. A token
// shorter than 32 bytes is refused at start-up (exit 2): make one with
// openssl rand -hex 32. The one
// exception is GET (or HEAD) /runs/{run}/events, which a browser's
// EventSource makes without headers: it takes the session cookie that
// POST /session sets instead (see Browsers). A real host checks its
// users' sessions instead of one token, and which lectures each may see.
//
//	POST /session
//	    with the header, saves a new session, sets its cookie
//	    "regen_session" and answers 200 {"expires"} (500 if the session
//	    could not be saved): the cookie lets the browser read
//	    GET /runs/{run}/events, nothing else, for 12 hours. It is
//	    HttpOnly, SameSite=Strict, Path=/, and Secure unless the
//	    request came over plain HTTP to a loopback host (a proxy that
//	    serves HTTPS passes its Host, or X-Forwarded-Proto: https). Its
//	    value is "v3", the expiry, a random session ID, saved in
//	    Postgres, and an HMAC-SHA256 of them made with a key derived
//	    from the deployment's secret and the token. The secret is 32
//	    random bytes, made by the first process to start on the schema
//	    and kept in its table service_secrets, which every process
//	    reads at start-up; never sent, it keeps a cookie (which reads
//	    events only) from being an oracle on which to try guesses of the
//	    token offline. A cookie is good in every process of the
//	    service that shares the schema and the token, until it
//	    expires, the token or the secret changes (delete the secret's
//	    row and restart every process to void every cookie), or DELETE
//	    /session ends its session. The cookies of the versions before
//	    ("v2", signed with a key derived from the token alone) are
//	    refused, 401, by this version, their sessions live or not:
//	    after the upgrade, a page's EventSource gets 401 at its next
//	    (re)connection, and the page logs in again (POST /session); the
//	    sessions left expire within 12 hours. In a rolling deploy, each
//	    version refuses the other's cookies until the old processes are
//	    gone. The sessions of the cookies
//	    it is sent with end, as the new cookie replaces theirs, and the
//	    new session joins their lineage (a login without a good cookie
//	    starts one), in the same statement: the browser's next logout
//	    ends the whole lineage, so that neither a copy of a replaced
//	    cookie nor the session of another login made at once with the
//	    same cookie (two tabs reloaded together: the browser keeps one
//	    of the two cookies set) outlives it. Two logins at once from a
//	    browser without a good cookie cannot be told from two browsers'
//	    logins: the session whose cookie the browser dropped lives
//	    until it expires, as would an event stream opened on it
//	    meanwhile; a page logs in once, before it opens its streams.
//	    The retention deletes the sessions expired.
//	DELETE /session
//	    with the header, ends the session of the cookie sent with it, if
//	    any, and every session of its lineage (see POST /session),
//	    that of a login under way with the same cookie too: every
//	    process refuses their cookies from then on, and every
//	    copy of them, and ends within about 2 s the event streams open
//	    on them (see GET /runs/{run}/events). It answers 204, and has
//	    the browser delete the cookie; 500, the cookie kept, if the
//	    sessions could not be ended.
//	POST /lectures/{key}/runs   body {"seconds": 60}
//	    generates a lecture of that many seconds (a multiple of 10, at
//	    most a day) under the graph key: 202 {"runId", "events"}; 409
//	    while a run of the lecture goes on, in this process or another;
//	    503, with Retry-After, while -max-runs runs of other lectures go
//	    on, and when the request gives up, after 30 s, waiting for its
//	    turn or taking the lecture's lock (Postgres stalled), having
//	    changed nothing.
//	GET  /lectures/{key}/runs[?limit=N][&after=CURSOR]
//	    a page of the lecture's runs, oldest first: {"runs": [{"id",
//	    "graphKey", "status", "record"}...], "next": CURSOR}, at most
//	    limit runs (1 to 1000; 100 without it), and "next", the cursor
//	    of the next page, which after= takes, left out on the last page
//	    (pgstore.Store.ListRunsPage). The last page ends with the run
//	    queued after the one going on, if any, with the status "queued"
//	    and no record, beyond the limit. A client that ignores paging
//	    gets the first page, as before for a lecture of up to 100 runs;
//	    it reads the rest with after=next until no "next" comes. An
//	    empty list for a lecture whose records the retention deleted;
//	    404 for a lecture never run; 400 for a limit out of range or a
//	    cursor that is not a "next" of the list.
//	POST /lectures/{key}/edits  body {"node": "asset:narration:segment[3]", "params": {...}}
//	    saves the node's new parameters and records the edit
//	    (Store.EditTx) in one transaction, then starts a run that
//	    regenerates what it affects:
//	    202 {"runId", "events"}. While a run of the lecture goes on, the
//	    new run is queued after it ("queuedAfter"), under the ID returned.
//	    While -max-runs runs of other lectures go on: 503, nothing saved.
//	    While a run of the lecture goes on in another process: 409,
//	    nothing saved. The lecture's graph is read once the edit has its
//	    turn (requests of a lecture in this process wait for one another;
//	    an edit that gives up waiting, after 30 s, is answered 503 with
//	    Retry-After, nothing saved);
//	    a lecture that changed under the edit all the same (a run of
//	    another length, from another process) is answered 409, nothing
//	    saved. A save that the database did not take within the 30 s
//	    (a lock held), or whose connection was lost before its commit,
//	    is answered 503 with Retry-After, nothing saved; any other
//	    failure to save the edit, 500. Once the edit is saved, a run that
//	    cannot start is answered so, the edit saved (the answer says
//	    it; send it again and the node is edited twice): 409 when the
//	    run it was to be queued after ended meanwhile and another
//	    process took the lecture at once, 503 with Retry-After when its
//	    turn or the lecture's lock was not had within the 30 s, or the
//	    shutdown began; the lecture's next run makes what it affects.
//	GET  /runs/{run}
//	    the run's record (from the store) and, for runs of this process,
//	    its report: the nodes generated, unchanged, failed, skipped...;
//	    {"id", "graphKey", "status": "queued"} for a run queued after
//	    another, by any process of the service.
//	GET  /runs/{run}/events
//	    the run's events as Server-Sent Events, with replay and
//	    Last-Event-ID resume; the stream ends after the run's final event.
//	    With the header, or without it the session cookie: 401 (with
//	    WWW-Authenticate: Bearer) to a request with neither, or with a
//	    cookie expired, not the service's, or whose session was ended;
//	    503, with Retry-After, when the sessions cannot be read (within
//	    2 s). Each
//	    process checks the sessions of the streams it serves on a
//	    cookie every 2 s, in one query for all of them, and ends the
//	    streams whose session was ended (in any process) or has
//	    expired: their reconnection gets 401. A check that fails (the
//	    sessions cannot be read) ends no stream, and the next one tries
//	    again; once the sessions have gone unread for 30 s, it ends
//	    them all, and their reconnections get 503 until they can be
//	    read.
//	POST /runs/{run}/cancel
//	    cancels a run going on, or queued: 202 {"runId", "events"}; its
//	    stream ends with a run.cancelled and its record's error says it
//	    was cancelled by a request, its code "request" (no start resumes
//	    it). A run of another
//	    process of the service is cancelled by that process, which reads
//	    the cancels saved for its runs every 500 ms; one left running by
//	    a process that died is recorded as interrupted by the next
//	    recovery (a live process's, or a start's), not resumed, and one
//	    that it had queued is recorded as cancelled then (the run before
//	    it, if left running, is resumed); one that
//	    a shutdown or a lost lock cancelled, which the next start would
//	    resume, is recorded as cancelled by the request by that start. A run queued
//	    after the one cancelled then starts (cancel it too, if need be);
//	    the edits of a queued run cancelled stand, and the lecture's next
//	    run makes what they affect. 409 for a run that has ended; 503, with Retry-After, while the run starts
//	    or ends, and during the shutdown.
//
// A lecture key is 1 to 64 ASCII letters, digits, '-', '_' or '.', not
// "." nor ".." (which clients remove from a URL's path); a
// body is at most 64 KiB (413 above) and must arrive within 30 s (408).
// A request's headers are at most 32 KiB (431 above, past the 4 KiB of
// slack that net/http allows) and must arrive within 10 s; a keep-alive connection idle between two requests is
// closed after 1 minute (an event stream is a request under way, never
// idle, however long it lasts).
// Bad input is answered 400, with
// the reason in {"error": "..."}, as is every refusal of the service's
// own (401 with WWW-Authenticate: Bearer, 403, 404, 405 with Allow, 409,
// 413, 503): JSON, {"error": "..."}. A failure of the servers is answered
// 500 with what failed and a reference to the log line that has the
// details, never the details themselves (they name schemas and servers).
// The one exception: GET /runs/{run}/events, once the service has checked
// the token, the Last-Event-ID and the run, is served by progress/sse's
// handler, whose own answers are plain text: 503 with Retry-After when
// the store or the stream cannot be read; and its 204 (no body) tells a
// client that resumes after the run's final event that nothing is left,
// as the service's own 204 does for a run that ended without any event
// in its stream (its process killed before its first events reached
// Redis).
//
// One run at a time per lecture, across the processes of the service
// that share a schema: each takes the lecture's lock (see Wiring).
//
// # Browsers
//
// A page keeps the token for the requests that change something (with
// the header, which no cross-site form or link can send, so that the
// cookie authorizes no request forgery), logs in once, and follows a run
// with the "events" URL that a create, an edit or a cancel answers:
//
//	await fetch("/session", {method: "POST", headers: {Authorization: "Bearer " + token}});
//	const es = new EventSource(run.events); // the cookie goes with it
//	es.onmessage = (m) => { const e = JSON.parse(m.data); show(e); if (/^run\.(finished|failed|cancelled)$/.test(e.type)) es.close(); };
//
// EventSource resumes after a dropped connection with Last-Event-ID. Once
// the final event is sent, the service ends the stream and answers the
// reconnect 204, which stops EventSource; closing it on the final event
// spares the reconnect. EventSource gives up for good on any other
// answer: a 401, when the cookie has expired or its session was ended
// (POST /session again, then open a new EventSource), or a 503. A
// stream open when its session ends or expires ends within about 2 s,
// and its reconnection gets that 401. A page
// logs out with fetch("/session", {method: "DELETE", headers:
// {Authorization: "Bearer " + token}}).
//
// A page of another origin (a development server on localhost:5173, say)
// is allowed with -cors-origin http://localhost:5173 (repeatable: one
// flag per origin, written as a browser sends it, which the service
// checks). The service then answers a request with that Origin with
// Access-Control-Allow-Origin: http://localhost:5173 (the exact origin,
// never "*") and Access-Control-Allow-Credentials: true, and a preflight
// (OPTIONS) with the methods and headers it takes, 403 for another
// origin; every answer has Vary: Origin. The page then calls
// fetch(url, {method: "POST", credentials: "include", headers: ...}) and
// new EventSource(url, {withCredentials: true}). The cookie being
// SameSite=Strict, the page must be of the same site as the service
// (http://localhost:5173 and http://localhost:8080 are, whatever the
// port; a page of localhost and a service on 127.0.0.1 are not). Without
// -cors-origin, no answer has a CORS header, and the page must come from
// the service's origin (a proxy in front of both).
//
// # Servers
//
// Postgres at REGEN_POSTGRES_URL (default
// postgres://root@127.0.0.1:5432/test?sslmode=disable), in the schema
// -schema; Redis at REGEN_REDIS_URL (default redis://127.0.0.1:6379/0),
// with keys that start with -prefix. It listens on -addr, which must be a
// loopback address with a port from 0 to 65535, and takes it before it
// touches any server: a second process started on a taken address exits
// 1 having changed nothing. -schema is 1 to 63 lowercase ASCII letters, digits and
// underscores, starting with a letter or an underscore, not "pg_..." nor
// information_schema;
// -prefix is 1 to 128 printable ASCII characters without spaces. Every
// flag is checked before any server is touched.
//
// The exit status is 0 after a clean shutdown, 1 when the service cannot
// start (a server unreachable, a schema it cannot migrate, the address
// taken) or does not shut down cleanly, and 2 on bad flags, with one line
// on stderr. -h prints the usage on stdout and exits 0.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/internal/loopback"
	"github.com/regengraph/regen/progress/redisstream"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal, a second one kills the process at once.
	context.AfterFunc(ctx, stop)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage: service [-addr 127.0.0.1:8080] [-schema regen_service] [-prefix regen_service:]
    [-latency 200ms] [-retain 24h] [-prune-every 1h] [-recover-every 10s] [-retake 10s]
    [-store-retry 10s] [-max-runs 8] [-drain 10s] [-cors-origin ORIGIN]...
env: REGEN_POSTGRES_URL, REGEN_REDIS_URL, REGEN_SERVICE_TOKEN
`

// config is what the service needs to start.
type config struct {
	addr        string        // listen address, loopback only
	postgresURL string        // env REGEN_POSTGRES_URL
	redisURL    string        // env REGEN_REDIS_URL
	schema      string        // Postgres schema of the store and the History
	prefix      string        // prefix of the Redis keys
	token       string        // the bearer token every request needs
	latency     time.Duration // each fake generator call's latency
	retain      time.Duration // the age of what the retention deletes
	pruneEvery  time.Duration // how often the retention runs
	// recoverEvery is how often the service looks for the runs that a
	// process of the service which died left, or that a shutdown or a
	// lost lock cut (see recoverRuns); 0 for defaultRecoverEvery.
	recoverEvery time.Duration
	maxRuns      int // the runs going on at once, across lectures; 0 for defaultMaxRuns
	// retake is how long a run's lecture lock whose session ended (a
	// Postgres restart, a failover) is tried again on a new session
	// before the run is cancelled with "lock-lost"
	// (pgstore.HoldOptions.Retake); 0 cancels it at once.
	retake time.Duration
	// drain is how long the shutdown drains the runs (Executor.Drain:
	// no node starts, the calls under way end and are kept) before it
	// cancels what is left; 0 cancels them at once.
	drain time.Duration
	// storeRetry is how long the executor retries a store call that
	// fails with an error that may pass (executor.Options.StoreRetry).
	storeRetry  time.Duration
	corsOrigins []string // the origins whose pages may read the answers with credentials (CORS); none by default
}

// defaultMaxRuns is -max-runs' default.
const defaultMaxRuns = 8

// defaultDrain is -drain's default, and maxDrain its most: the shutdown
// keeps the rest of shutdownTimeout to cancel what is left, record the
// runs and close.
const (
	defaultDrain = 10 * time.Second
	maxDrain     = 20 * time.Second
)

// defaultRetake is -retake's default: a run rides out a Postgres restart
// or failover of up to about that long with its lecture's lock, rather
// than being cancelled with "lock-lost" (its generator calls under way
// cut, and paid again at its resume). It is about -recover-every, the
// interval of another process's recovery, which may resume the run
// beside it while its lock is not held (see pgstore.GraphLock.HoldFor).
const defaultRetake = 10 * time.Second

// minTokenBytes is the shortest token the service takes: the token is
// its one credential, with every power, which a short one would let be
// guessed. The random one made when REGEN_SERVICE_TOKEN is not set has
// as many (16 random bytes, in hex).
const minTokenBytes = 32

// defaultStoreRetry is -store-retry's default: a run's store calls ride
// out a Postgres restart or failover as long as its lecture's lock does
// (defaultRetake), rather than the executor's default of 1.5 s, past
// which a call fails its node's attempt or the run's start. Longer gains
// a run nothing once its lock is lost. It does not lengthen the
// shutdown: once -drain has passed, the runs are cancelled, and a
// cancelled run's store calls end within the executor's StoreTimeout.
const defaultStoreRetry = 10 * time.Second

// minEvery is the shortest -recover-every and -prune-every taken, as
// pgstore's Maintain takes no shorter Every: a shorter interval (one
// given in the wrong unit, 10ns) would make a loop of passes that hits
// Postgres without rest, from every process of the deployment.
const minEvery = pgstore.MinMaintainEvery

// defaultRecoverEvery is -recover-every's default: a browser that follows
// a run of a process that died waits about this long for its resume.
const defaultRecoverEvery = 10 * time.Second

// Defaults of the environment.
const (
	defaultPostgresURL = "postgres://root@127.0.0.1:5432/test?sslmode=disable"
	defaultRedisURL    = "redis://127.0.0.1:6379/0"
)

// errHelp asks for the usage text.
var errHelp = errors.New("help requested")

// newFlagSet returns the command's flags, which set c's fields; its
// output is discarded (run prints the usage and the flags' texts).
func newFlagSet(c *config) *flag.FlagSet {
	fs := flag.NewFlagSet("service", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.addr, "addr", "127.0.0.1:8080", "the loopback `HOST:PORT` to serve on")
	fs.StringVar(&c.schema, "schema", "regen_service", "the Postgres `SCHEMA` of the stores and the event history")
	fs.StringVar(&c.prefix, "prefix", "regen_service:", "the `PREFIX` of the service's Redis keys, not empty")
	fs.DurationVar(&c.latency, "latency", 200*time.Millisecond, "the `DURATION` of each fake generator call")
	fs.DurationVar(&c.retain, "retain", 24*time.Hour, "the `AGE`, at least 1m, past which retention deletes runs, events and unused assets")
	fs.DurationVar(&c.pruneEvery, "prune-every", time.Hour, "the `INTERVAL`, at least 1s, between two passes of the retention")
	fs.DurationVar(&c.recoverEvery, "recover-every", defaultRecoverEvery, "the `INTERVAL`, at least 1s, between two looks for the runs "+
		"that a process of the service which died left, or that a shutdown or a lost lock cut, to resume them")
	fs.DurationVar(&c.retake, "retake", defaultRetake, "the `DURATION` for which a run whose lecture lock's Postgres session ended "+
		"(a restart, a failover) tries to take the lock again on a new session and goes on, before it is cancelled "+
		"with \"lock-lost\"; 0 cancels it at once")
	fs.DurationVar(&c.storeRetry, "store-retry", defaultStoreRetry, "the `DURATION` for which a run's store call that fails with an error "+
		"that may pass (a Postgres restart, a failover) is tried again, with backoff, before it fails its node or the run's start; "+
		"give it -retake or more")
	fs.IntVar(&c.maxRuns, "max-runs", defaultMaxRuns, "the most `RUNS` going on at once, across lectures; past it, 503")
	fs.DurationVar(&c.drain, "drain", defaultDrain, "the `DURATION`, at most 20s, for which the shutdown lets the generator calls under way end, "+
		"starting no other, before it cancels the runs (the next start resumes them); 0 cancels them at once")
	fs.Var(originsFlag{&c.corsOrigins}, "cors-origin", "an `ORIGIN` (https://app.example.com) whose pages may follow runs "+
		"and call the service with credentials (CORS); repeatable; none by default")
	return fs
}

// parse reads the flags and the environment. Its errors are one line each.
func parse(args []string, getenv func(string) string) (config, error) {
	c := config{
		postgresURL: getenv("REGEN_POSTGRES_URL"),
		redisURL:    getenv("REGEN_REDIS_URL"),
		token:       getenv("REGEN_SERVICE_TOKEN"),
	}
	fs := newFlagSet(&c)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, errHelp
		}
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q: every input is a flag", fs.Arg(0))
	}
	if err := loopback.Check(c.addr); err != nil {
		return c, err
	}
	switch {
	case c.latency < 0:
		return c, fmt.Errorf("-latency %v: want 0 or more", c.latency)
	case c.retain < time.Minute:
		return c, fmt.Errorf("-retain %v: want at least 1m, and longer than the longest run", c.retain)
	case c.pruneEvery < minEvery:
		return c, fmt.Errorf("-prune-every %v: want an interval of at least %v, such as 1h", c.pruneEvery, minEvery)
	case c.recoverEvery < minEvery:
		return c, fmt.Errorf("-recover-every %v: want an interval of at least %v, such as 10s", c.recoverEvery, minEvery)
	case c.retake < 0:
		return c, fmt.Errorf("-retake %v: want 0 (no re-take) or a positive duration, such as 10s", c.retake)
	case c.storeRetry <= 0:
		return c, fmt.Errorf("-store-retry %v: want a positive duration, such as 10s", c.storeRetry)
	case c.maxRuns < 1:
		return c, fmt.Errorf("-max-runs %d: want 1 or more", c.maxRuns)
	case c.drain < 0 || c.drain > maxDrain:
		return c, fmt.Errorf("-drain %v: want 0 (no drain) to %v", c.drain, maxDrain)
	case c.prefix == "":
		return c, errors.New(`-prefix "": want a prefix of the service's own, such as "regen_service:"`)
	}
	// Never printed: the error goes to stderr, and to the logs that
	// gather it.
	if c.token != "" && len(c.token) < minTokenBytes {
		return c, fmt.Errorf("REGEN_SERVICE_TOKEN is %d bytes long: want at least %d (a random one: openssl rand -hex 32), "+
			"or leave it unset for a random one", len(c.token), minTokenBytes)
	}
	// Checked here, before any server is touched: the libraries take an
	// empty schema as their default one, which the service must not use.
	if c.schema == "" {
		return c, errors.New(`-schema "": want a schema of the service's own, such as "regen_service"`)
	}
	if err := pgstore.CheckSchema(c.schema); err != nil {
		return c, fmt.Errorf("-schema: %w", err)
	}
	if !validPrefix(c.prefix) {
		return c, fmt.Errorf("-prefix %q: want 1 to %d printable ASCII characters, no space, and not %q", c.prefix, maxPrefix, redisstream.RunIDPlaceholder)
	}
	if c.postgresURL == "" {
		c.postgresURL = defaultPostgresURL
	}
	if c.redisURL == "" {
		c.redisURL = defaultRedisURL
	}
	return c, nil
}

// maxPrefix bounds -prefix's length.
const maxPrefix = 128

// validPrefix reports whether prefix is a Redis key prefix the service
// takes: printable ASCII without spaces, without the run ID's
// placeholder of the Stream's key template.
func validPrefix(prefix string) bool {
	if len(prefix) == 0 || len(prefix) > maxPrefix || strings.Contains(prefix, redisstream.RunIDPlaceholder) {
		return false
	}
	for i := range len(prefix) {
		if c := prefix[i]; c <= ' ' || c > '~' {
			return false
		}
	}
	return true
}

// run is the command; it returns the exit status. The end of ctx (a
// signal) shuts the service down.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c, err := parse(args, os.Getenv)
	if errors.Is(err, errHelp) {
		fmt.Fprint(stdout, usage)
		fs := newFlagSet(&config{})
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return 0
	}
	if err != nil {
		return badFlags(stderr, err)
	}
	random := c.token == ""
	if random {
		var b [16]byte
		_, _ = rand.Read(b[:]) // never fails
		c.token = hex.EncodeToString(b[:])
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	err = serve(ctx, c, logger, func(addr net.Addr) {
		if random {
			fmt.Fprintf(stdout, "REGEN_SERVICE_TOKEN is not set; this run's token is %s\n", c.token)
		}
		fmt.Fprintf(stdout, "Serving on http://%s. Try:\n\n"+
			"  curl -H 'Authorization: Bearer %s' -d '{\"seconds\": 60}' http://%[1]s/lectures/demo/runs\n"+
			"  curl -N -H 'Authorization: Bearer %[2]s' http://%[1]s/runs/RUN_ID/events\n\n"+
			"A browser's EventSource follows a run with the cookie that POST /session sets (see go doc ./examples/service).\n\n", addr, c.token)
	})
	var fe *flagError
	switch {
	case errors.As(err, &fe):
		return badFlags(stderr, err)
	case err != nil:
		fmt.Fprintf(stderr, "service: %s\n", oneLine(err))
		return 1
	}
	return 0
}

// flagError is a flag's value that the libraries refused at start-up.
type flagError struct {
	flag string
	err  error
}

func (e *flagError) Error() string { return e.flag + ": " + e.err.Error() }
func (e *flagError) Unwrap() error { return e.err }

// badFlags reports a bad flag in one line and returns 2.
func badFlags(stderr io.Writer, err error) int {
	fmt.Fprintf(stderr, "service: %s\n", oneLine(err))
	return 2
}

// oneLine keeps a message on one line, whatever the input: the flag
// package names an unknown flag unquoted, and a name may hold a newline.
func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", `\n`) }
