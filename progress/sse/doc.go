// Package sse delivers a run's progress events to browsers as Server-Sent
// Events, with replay and resume, and reads such streams back in Go.
//
// # Handler
//
// [Handler] serves one run per request from any [progress.Source]
// (progress.Memory, progress/redisstream). Mount it on a route of your own:
//
//	h, err := sse.NewHandler(stream, sse.HandlerOptions{
//		KeepAliveEvent: "heartbeat", // a keep-alive a page can see
//		Authorize: func(r *http.Request) (string, error) {
//			runID := r.PathValue("run")
//			if !mayWatch(r, runID) {
//				return "", fmt.Errorf("%w: run %s is not yours", sse.ErrForbidden, runID)
//			}
//			return runID, nil
//		},
//	})
//	mux.Handle("GET /runs/{run}/events", h)
//
// A page follows it with EventSource (see In the browser, below).
//
// The response is text/event-stream, with Cache-Control no-store (no
// cache keeps one user's events, whatever authenticated the request) and
// X-Accel-Buffering no (so nginx does not buffer it). It opens with a
// retry field, then writes each event as "id: <seq>" and "data: <JSON>"
// and flushes it. While no event comes, a keep-alive goes out every
// [HandlerOptions].KeepAlive (15 s by default): a comment line, or with
// [HandlerOptions].KeepAliveEvent an event of that type with the data {}
// and no id, which a page can see. A HEAD request (which net/http's
// ServeMux routes to a GET pattern) gets the headers that its GET would
// get, or the same refusal or 204, and no body, when its GET would get
// them: for a run without events and with
// [HandlerOptions].EmptyRunTimeout, once the run's first event comes or
// the bound passes.
//
// Each write (an event or a comment, with its flush) has a deadline of
// its own, [HandlerOptions].WriteTimeout (30 s by default), in place of
// the server's WriteTimeout, which would cut a long-lived stream; between
// writes none is set. So a client that stays connected but stops reading
// loses its stream, and frees its stream slot, once a write has waited
// that long. The handler needs a ResponseWriter that can flush: a
// middleware's wrapper should keep http.Flusher or offer an Unwrap
// method (see http.ResponseController), or requests get 500.
//
// # Resume
//
// A reconnecting EventSource sends the last id it saw as the Last-Event-ID
// header; a first connect may pass the same as the lastEventId query
// parameter (the header wins when both are present). The handler then
// sends exactly the events after it, from the stream or its archive;
// events that neither holds any more (trimmed or expired, with no
// History, or lost with a Redis restart) are skipped, which a client sees
// as a jump in the events' seq, and the source counts and reports (see
// progress.Source; redisstream logs each gap and counts it in its
// Stats.Skipped). An
// ID that is not a decimal sequence number gets 400 (see
// [ParseLastEventID]); of several Last-Event-ID headers that disagree
// (a proxy's beside the browser's, or joined by a proxy into one, "7, 3",
// whose empty elements are ignored),
// the smallest is taken, so that no event is lost.
//
// # Endings and limits
//
// The handler returns as soon as the client goes away. By default the
// stream stays open after the run's final event; with
// [HandlerOptions].CloseOnFinal it ends after it, and a client that
// reconnects having seen the final event (or with an ID past it) gets 204
// No Content, which stops EventSource's reconnecting (each 204 says
// Cache-Control no-store, as it answers one request's last event ID, so
// that no cache gives it to another). With CloseOnFinal
// too, a client whose ID is ahead of a run still going (or not started)
// waits; if the run ends below its ID, its response ends there (or is
// that 204, if it had not opened), and its reconnect gets 204. (If the
// source cannot tell the run's newest event when the client connects,
// the handler asks again every KeepAlive, and ends the stream of a client
// it then finds ahead or past the end, which reconnects.) A run of which
// the source holds no event at all, because it has not started yet, or is
// gone (expired, and not archived) or never was, cannot be told apart by
// the handler: its request waits for the first event, without bound by
// default. [HandlerOptions].EmptyRunTimeout bounds that wait and then
// answers 204; an Authorize hook that knows the host's runs refuses an
// unknown run ID at once with [ErrNotFound] (404). Beyond
// [HandlerOptions].MaxStreams concurrent streams a request gets 503 with
// Retry-After (the handler's retry delay in whole seconds, at least 1),
// which EventSource gives up on and [Client] waits out. MaxStreams is one
// pool for every request: a host that serves several users or tenants
// names each request's with [HandlerOptions].StreamKey, and a request
// beyond [HandlerOptions].MaxStreamsPerKey streams of one gets 429 Too
// Many Requests with the same Retry-After, which a page and [Client] ride
// out as a 503; it sets EmptyRunTimeout too, unless its Authorize refuses
// a run ID that no run has, so that a request for one does not hold its
// slot for good. An Authorize hook
// refuses a request with [ErrUnauthorized] (401), [ErrForbidden] (403) or
// [ErrNotFound] (404). Any other error of the hook (its session store is
// down for a moment) is no refusal: it is logged and answered with that
// 503 too, which [Client] waits out; a browser's EventSource gives up on
// it as on every status but 200: a page asks which answer it got, and
// opens a new EventSource on a 503 or a 429 (see In the browser).
//
// # In the browser
//
// EventSource reconnects by itself, with Last-Event-ID, after a dropped
// connection or the end of a stream. On any other answer than a 200
// text/event-stream it gives up for good (readyState CLOSED, an error
// event), and the page cannot read the status: the 204 that ends a run
// or answers an unknown one, a refusal (401, 403, 404) and a 503 or a
// 429 to ride out look the same. Nor does it stop after the run's final event:
// without CloseOnFinal the stream stays open, holding a MaxStreams slot,
// until the page closes it. So a page closes its EventSource on the
// run's final event (run.finished, run.failed or run.cancelled, see
// progress.Type.Final), and when it finds it CLOSED without one, asks
// the handler with a HEAD request, answered as its GET would be (the
// last event ID in the lastEventId parameter), and opens a new
// EventSource on 200, 503 or 429 only, after a delay; on 204 the run is over
// or unknown, and on 401, 403 or 404 it is refused. Nor does EventSource
// notice a connection that dies without a word (a proxy that stalls it,
// a NAT that forgot it): it stays OPEN, and the page shows the run going
// on for ever. With KeepAliveEvent "heartbeat" the page hears something
// at least every KeepAlive while the stream works, and a watchdog closes
// an OPEN EventSource that heard nothing for three of them, and opens a
// new one from the last event ID:
//
//	const url = "/runs/r1/events";
//	const keepAlive = 15000; // the handler's KeepAlive, in ms
//	let es, lastId = "", heard = 0, leaving = false;
//	// A reload closes the EventSource with an error event, readyState
//	// CLOSED, after beforeunload and before pagehide (Chromium): no answer
//	// to ask about, and a HEAD would take a stream slot for nothing.
//	addEventListener("beforeunload", () => { leaving = true; });
//	addEventListener("pagehide", () => { leaving = true; });
//	addEventListener("pageshow", () => { leaving = false; });
//	function follow() {
//		const source = es = new EventSource(lastId ? url + "?lastEventId=" + lastId : url);
//		let done = false; // closed on its final event, or asked about
//		const alive = () => { heard = Date.now(); };
//		es.onopen = alive;
//		es.addEventListener("heartbeat", alive); // the handler's KeepAliveEvent
//		es.onmessage = (m) => {
//			alive();
//			lastId = m.lastEventId;
//			const e = JSON.parse(m.data);
//			render(e);
//			if (["run.finished", "run.failed", "run.cancelled"].includes(e.type)) { done = true; es.close(); }
//		};
//		es.onerror = async function check() {
//			// The page's own unload, see above; but a navigation that begins
//			// may not happen (a link to a download, "Stay on page"), and
//			// then no pageshow comes: ask again in a while.
//			if (leaving) { leaving = false; setTimeout(check, 3000); return; }
//			// CONNECTING: it reconnects by itself. A check run late may find
//			// it replaced or dealt with: one HEAD and one reopen at most.
//			if (es !== source || done || es.readyState !== EventSource.CLOSED) return;
//			done = true;
//			const q = lastId ? "?lastEventId=" + lastId : "";
//			const status = await fetch(url + q, {method: "HEAD"}).then((r) => r.status, () => 503);
//			if ([200, 503, 429].includes(status)) setTimeout(follow, 3000);
//			else stopped(status); // 204: nothing more will come; else refused
//		};
//	}
//	// Silent for three keep-alives while OPEN: the connection is dead.
//	setInterval(() => {
//		if (es.readyState !== EventSource.OPEN || Date.now() - heard < 3 * keepAlive) return;
//		es.close();
//		follow();
//	}, keepAlive);
//	follow();
//
// (render and stopped are the page's.) A page that reopened on every
// error would reopen for good after the run's last 204. With
// EmptyRunTimeout, the HEAD of a run without events waits as its GET
// does, up to that bound. The watchdog leaves a CONNECTING EventSource
// alone: the request of a run without events gets its headers only with
// the run's first event, or its 204 after EmptyRunTimeout, and a page
// that reopened it would never get that 204. A heartbeat's lastEventId is
// the last progress event's, but the snippet takes lastId from onmessage
// alone.
//
// The handler sets no CORS header, so a page from another origin than
// the handler's gets no event, and its fetch reads no status. The host
// sets them in a wrapper, before calling the handler, so that every
// answer carries them, a refusal or a 204 as well as a stream. No
// preflight comes (EventSource sends Last-Event-ID without one, and a
// HEAD without headers is a simple request). For cookies, the header
// names the page's origin (not "*"), Access-Control-Allow-Credentials is
// true, and the page opens new EventSource(url, {withCredentials: true})
// and fetches with credentials: "include":
//
//	mux.Handle("GET /runs/{run}/events", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
//		w.Header().Set("Access-Control-Allow-Origin", "https://app.example.com")
//		w.Header().Set("Access-Control-Allow-Credentials", "true") // for cookies only
//		h.ServeHTTP(w, r)
//	}))
//
// A cookie goes with a request from a page of another site (not only
// another origin: https://app.example.com and https://api.example.com
// are one site) only
// if it says SameSite=None; Secure, and even then a browser that blocks
// third-party cookies drops it, so the stream is refused. Such a page
// rather puts a token in the URL, which Authorize checks (EventSource
// cannot set a header): short-lived, as URLs show in access logs, and
// good for that run alone. The page then needs
// neither credentials nor Access-Control-Allow-Credentials. The
// EventSource's reconnects use the same URL, so the token must outlive
// them, or the page gets a new one when its HEAD answers 401 and opens a
// new EventSource with it; and the snippet, given such a URL, joins
// lastEventId to it with "&", not "?".
//
// Over HTTP/1.1 a browser opens at most 6 connections to an origin, over
// all of a user's tabs, and each open EventSource holds one: beyond
// them, EventSources stay CONNECTING, and the pages' other requests to
// the origin wait behind them. Serve the streams over HTTP/2 (TLS; Go's
// server allows 250 streams per connection), or open one EventSource
// per run in one place, shared by the user's tabs (a SharedWorker, or
// one tab that forwards the events to the others over a
// BroadcastChannel).
//
// # Events in JavaScript
//
// Each message's data is one progress event's JSON (package progress
// says it in full), which JSON.parse reads. Many keys are left out when
// empty or 0, so a page tests a key with === undefined (or gives a
// default with ??), not by its truth:
//
//   - Always present: runId, seq, time, type, done and total (done and
//     total even when 0).
//   - Omitted when empty or 0: graphKey, node, kind, batchKey, round,
//     stageDone, stageTotal, batchDone, batchTotal, attempt, message,
//     previewUrl, reasoning, error, etaMs and resumedBy.
//   - stage is omitted on events that are about no stage, and present on
//     those that are, 0 included: the first stage is "stage":0, which
//     if (e.stage) takes for none.
//   - etaMs is omitted when the ETA is 0. The executor's ETA is 0
//     (unknown) until some node kind's cost is known, at least 1000
//     (a second) while nodes are left once it is, and 0 on the run's
//     final event (run.finished, run.failed, run.cancelled): an etaMs
//     absent there means nothing is left, not unknown.
//   - Omitted when none: counts, an object on the run's final event (its
//     nodes by outcome: generated, unchanged, failed, skipped,
//     superseded and cancelled, zeros included), and plan, an object on
//     run.started and on the message that starts a later round (the
//     outline of its stages and their groups, to draw every bar at once).
//   - A page ignores keys it does not know: fields may be added, never
//     renamed or removed.
//
// The runId is the host's run ID (executor.RunRequest.RunID; by default
// a random one, of no documented form): an opaque string, which a page
// escapes with encodeURIComponent in a URL. A message's lastEventId is
// its event's seq, as a string. A heartbeat (KeepAliveEvent) is no event: its
// data is {}, and onmessage does not see it.
//
// A 204 No Content, to the GET (which stops EventSource) or to the HEAD,
// says only that the handler has nothing to send after the last event
// ID: the run is unknown, or expired, or had no event within
// EmptyRunTimeout, or (with CloseOnFinal) the last event ID is at or past
// its final event. A page cannot tell which from the answer: it asks the
// host's own API for the run's record.
//
// # Client
//
// [Client] reads a stream as EventSource does, for tests and Go hosts: it
// parses the wire format with a [Decoder] (WHATWG rules: multi-line data,
// comments, id, retry, a byte order mark, CR, LF and CRLF line ends) and
// reconnects with Last-Event-ID after a dropped connection. Its base
// delay is the server's retry delay, but never less than [MinRetry]
// (100 ms) nor more than [ClientOptions].MaxBackoff. After a connection that delivered events it waits the base
// plus a random extra of up to half of it (3-4.5 s with the handler's
// default retry), so that the clients a server's restart drops together
// do not all come back at the same instant. After connections that fail
// or end without an event it backs off exponentially, with jitter, up to
// [ClientOptions].MaxBackoff (30 s by default), so that a server that
// sends "retry: 0" or ends every connection at once does not get a tight
// reconnect loop from each client. No wait is shorter than the base. A
// connection that delivers an event, or stays open for MaxBackoff with
// bytes still arriving (the callback's time left out), resets the backoff; a heartbeat (a message of
// another type than "message" with data "{}" or empty, as a Handler's
// KeepAliveEvent, that leaves the last event ID as it was) does not, nor
// does a replay (the very events of the last connection that delivered
// any: the same id-less event on each connection, say). An open stream on which not a byte (an event or a comment)
// arrives for [ClientOptions].IdleTimeout (45 s by default, three times
// the handler's keep-alive; negative for none) counts as dropped too: the
// client closes it and reconnects with Last-Event-ID, so that a
// connection that died without a word (the server's host gone, a NAT
// that forgot it) does not leave it waiting until TCP gives up. A
// request whose response's headers do not come within
// [ClientOptions].HeaderTimeout (90 s by default, above the
// EmptyRunTimeout for which a handler holds them back; negative for
// none) ends [Client.Stream] with an error wrapping [ErrHeaderTimeout],
// as a proxy's 504 ends it, rather than wait for ctx to end. Each
// request takes a connection that no other request takes after it, so
// that over HTTP/2 the reconnection does not go out on the dead one.
// [ClientOptions].Header (credentials, say) goes to the URL's origin
// alone: a redirect to another origin, and the rest of its chain, goes
// without it. A 503 Service Unavailable (the handler's answer beyond
// MaxStreams, or when Authorize fails) or a 429 Too Many Requests (the
// handler's beyond MaxStreamsPerKey, a proxy's rate limit) counts as a
// failed connection: the
// client waits the backoff, but at least the response's Retry-After
// capped at MaxBackoff, plus a random extra of up to half of that, then
// reconnects with Last-Event-ID. Any other status but 200 and 204, 500,
// 502 and 504 included, ends [Client.Stream] with a *[StatusError], as it
// ends EventSource; its RetryAfter field holds the response's
// Retry-After.
//
// The client's last event ID ([Client.LastEventID]) counts an event only
// once the callback given to [Client.Stream] has returned nil for it. A
// callback's error ends Stream and leaves that event untaken, so that the
// next Stream, or a new Client started from that ID, delivers it again.
//
// [Client.Follow], for a backend that waits for a run, returns nil only
// once the callback has taken the run's final event. A 204 before it,
// which Stream and Events end with nil, is an error wrapping
// [ErrNoFinalEvent]: the handler has no event after the client's last
// event ID, for a run it does not know, a run expired, one with no event
// within EmptyRunTimeout, or a last event ID at or past the run's end;
// the run's outcome is then in its record, not in its events. A refusal
// is a *[StatusError], which errors.Is matches with the sentinel an
// Authorize hook refuses with: [ErrNotFound] for a 404 (a host's hook
// that knows its runs refuses an unknown one so), [ErrForbidden] for a
// 403, [ErrUnauthorized] for a 401. A stream that ends before the final
// event is no ending: Follow reconnects, and the answer decides; bound
// the wait with its ctx.
package sse
