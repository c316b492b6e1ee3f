package sse

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/regengraph/regen/progress"
)

// Errors an Authorize hook returns (wrapped, with a reason a person can
// act on) to refuse a request. A [Client] refused so returns a
// *[StatusError] that errors.Is matches with the same value.
var (
	// ErrUnauthorized refuses a request without valid credentials: 401.
	ErrUnauthorized = errors.New("sse: unauthorized")
	// ErrForbidden refuses a request whose credentials do not allow the
	// run: 403.
	ErrForbidden = errors.New("sse: forbidden")
	// ErrNotFound refuses a request for a run that does not exist: 404.
	ErrNotFound = errors.New("sse: not found")
	// ErrInvalidOptions marks options that NewHandler refuses, and those
	// of a Client, its URL included, which its Stream refuses.
	ErrInvalidOptions = errors.New("sse: invalid options")
)

// HandlerOptions configures a [Handler]. The zero value of each field but
// Authorize gives its default.
type HandlerOptions struct {
	// Authorize maps a request to the run ID whose events it may read,
	// for example from a path value and a session. To refuse, it returns
	// an error wrapping ErrUnauthorized (401), ErrForbidden (403) or
	// ErrNotFound (404); the error's text is the response body, so it
	// should say what to fix ("sse: forbidden: run r1 belongs to another
	// course"). The handler cannot tell a run ID never used from a run
	// not started yet; a host that knows its runs (executor.RunStore)
	// refuses an unknown one here.
	//
	// Any other error is taken for a failure to decide, not a refusal:
	// the session store or the database behind the check is down for a
	// moment. It is logged, and answered 503 Service Unavailable with a
	// generic body, Retry-After (the retry delay in whole seconds, at
	// least 1) and Cache-Control no-store, as the stream limit's 503 is:
	// [Client] waits it out and reconnects with its last event ID. A
	// browser's EventSource does not: under the HTML standard it fails
	// the connection for good (readyState CLOSED, an error event) on any
	// response but a 200 text/event-stream, a 401, 403, 404, 500 or 503
	// alike; it reconnects only after a network error or the end of an
	// open stream. A page that should ride out such an outage cannot
	// read the status from EventSource, and a 204 that ends the run looks
	// the same to it: it asks with a HEAD request, answered as the GET
	// is, and opens a new EventSource after a delay on 503 (or 429, see
	// MaxStreamsPerKey, or 200) only; the package doc shows how (In the browser). A run ID of ""
	// with a nil error is a bug of the hook: it answers 500, and is
	// logged. A host that serves several users or tenants names who
	// made the request with StreamKey, so that one of them cannot take
	// every MaxStreams slot.
	// Required.
	Authorize func(r *http.Request) (runID string, err error)
	// StreamKey, called for a request that Authorize let in, with the
	// run ID it returned, names the principal whose streams
	// MaxStreamsPerKey bounds: the user or the tenant that Authorize
	// identified (from the session that a middleware put in the
	// request's context, say). "" is a key like any other. It is called
	// once for each request that Authorize lets in, before the request
	// takes a slot, and should be cheap. It is set together with
	// MaxStreamsPerKey: NewHandler refuses one without the other.
	// Default: nil, no limit per key.
	StreamKey func(r *http.Request, runID string) string
	// MaxStreamsPerKey bounds the streams served at once for one
	// StreamKey, within MaxStreams, so that one principal cannot take
	// every slot and have every other request answered 503: a tenant
	// that opens streams of run IDs of its own that never get an event,
	// which without EmptyRunTimeout hold their slots as long as the
	// client stays, say. A request beyond it gets 429 Too Many Requests
	// with Retry-After (the retry delay in whole seconds, at least 1)
	// and Cache-Control no-store, which [Client] waits out as it waits
	// out a 503, and a browser's EventSource gives up on: a page asks
	// with a HEAD request and opens a new EventSource after a delay, as
	// on a 503 (see Authorize). A request counts under it as under
	// MaxStreams, from the time it is authorized until it ends.
	// Default: 0, no limit per key; a positive value requires StreamKey.
	MaxStreamsPerKey int
	// KeepAlive is how long a stream may stay silent before the handler
	// writes a keep-alive, so that proxies and browsers keep it open: a
	// comment line, ": keep-alive", or the event KeepAliveEvent names.
	// It must be at least 1ms, as must Retry, a positive WriteTimeout and
	// EmptyRunTimeout. Keep it well below the ClientOptions.IdleTimeout
	// of the [Client]s that read the streams (45s by default), or they
	// drop a quiet stream as dead and reconnect. Default: 15s.
	KeepAlive time.Duration
	// KeepAliveEvent, if not empty, makes each keep-alive an event of that
	// type rather than a comment line, so that a page can see it. Each
	// one is exactly these three lines, "heartbeat" standing for
	// KeepAliveEvent:
	//
	//	event: heartbeat
	//	data: {}
	//	(a blank line)
	//
	// It has no id field: under the HTML standard's event stream
	// interpretation only an id field sets the last event ID, so a
	// heartbeat leaves the browser's (its lastEventId, and the
	// Last-Event-ID of its reconnect) at the last progress event's. Like
	// the comment, one comes after KeepAlive of silence (15s by default),
	// and any write pushes the next one back; so while the connection
	// works, a page hears something at least every KeepAlive.
	// EventSource never shows a comment to JavaScript: without this
	// option a page cannot tell a quiet stream from one that a proxy
	// stalls without closing it, and shows the run as going on for ever.
	// A page listens with addEventListener(KeepAliveEvent, ...), which
	// onmessage does not see, and reopens its EventSource once it hears
	// nothing, neither an event nor a heartbeat, for a few KeepAlives;
	// the package doc's snippet does so (In the browser). It must be
	// valid UTF-8 without spaces or control characters, and not
	// "message" (onmessage would take a heartbeat for a progress event),
	// "error" or "open" (onerror or onopen would take it for the
	// EventSource's own).
	// A [Client]'s Stream gives each heartbeat as a [Message] of that
	// Type; its Events and Follow skip messages of a type other than
	// "message", so they ignore heartbeats (a Client notices a dead
	// stream by its own IdleTimeout).
	// Default: "", a comment line.
	KeepAliveEvent string
	// Retry is the reconnection delay sent to the client in a retry field
	// when the stream opens. A [Client] takes it as its base delay up to
	// its ClientOptions.MaxBackoff (30s by default), and waits no longer.
	// Default: 3s.
	Retry time.Duration
	// WriteTimeout bounds each write to the client: an event or a
	// keep-alive, with its flush. A client that stays connected
	// but stops reading has its stream ended once a write has waited
	// that long, which frees its MaxStreams slot and its reader of the
	// source. Between writes no deadline is set, so the server's own
	// WriteTimeout, which would cut a long-lived stream, does not apply.
	// A negative value sets no deadline at all: a client that stops
	// reading then holds its stream until the connection fails. If the
	// ResponseWriter supports no write deadline (a middleware's wrapper
	// without an Unwrap method), the handler streams without one and
	// logs a warning once. Default: 30s.
	WriteTimeout time.Duration
	// MaxStreams bounds the streams served at once; a request beyond it
	// gets 503 with Retry-After, which [Client] waits out and a browser's
	// EventSource gives up on, as on Authorize's 503 (see there for what
	// a page does about it). A request counts from the time it is
	// authorized: one that waits for a run's first event (see
	// EmptyRunTimeout) takes a slot too. It is one pool for every
	// request: a host that serves several users or tenants bounds each
	// one's share with StreamKey and MaxStreamsPerKey, and sets
	// EmptyRunTimeout. Default: 1000.
	MaxStreams int
	// CloseOnFinal ends the response after the run's final event
	// (run.finished, run.failed or run.cancelled). A browser's EventSource
	// reconnects when a response ends, so a client that reconnects after
	// having received the final event, or with a last event ID past a
	// run that has ended, is answered 204 No Content, which tells
	// EventSource to stop. Telling a last event ID past the end takes one
	// lookup of the run's newest event with a source that implements
	// progress.LastEventReader (progress.Memory, progress/redisstream's
	// Stream), and a replay of the run with another. A client whose last
	// event ID is ahead of a run still going, or not started, is read
	// from the run's newest event, and the events up to its ID are not
	// sent: if the run ends below the ID, the response ends as after a
	// final event (or is answered 204 if it has not opened, see
	// EmptyRunTimeout), and the reconnect gets 204. That takes the
	// lookup when the client connects: if it fails, the client is read
	// from its ID, and the lookup is made again at each KeepAlive until
	// it works; if the client is then ahead of the run, or past its end,
	// its stream ends, and its reconnect is answered as above.
	// A run whose events the source no longer has at all cannot be told
	// from one not started yet: its stream stays open, unless
	// EmptyRunTimeout is set.
	// Default: false, the stream stays open until the client leaves: a
	// page closes its EventSource on the final event (see the package
	// doc, In the browser).
	CloseOnFinal bool
	// EmptyRunTimeout, if positive, bounds how long a request waits for a
	// run of which the source holds no event at all: a run not started
	// yet, or one that is gone (its events expired and no History has
	// them) or never was. Such a request gets no response header until
	// the run's first event, which opens the stream as usual; if none
	// comes within EmptyRunTimeout, it is answered 204 No Content, which
	// stops EventSource (Client.Stream returns nil). Set it above the
	// longest time a run takes to publish its first event once its ID is
	// handed out, and below the read timeout of any proxy in front
	// (nginx's proxy_read_timeout is 60s), which would otherwise end the
	// silent request first, and below the ClientOptions.HeaderTimeout of
	// the [Client]s that read the streams (90s by default). A run with events, however quiet, is not
	// bounded. When the lookup of the run fails (the source is down for
	// a moment), the stream opens at once, and ends if no event comes
	// within EmptyRunTimeout; the client's reconnect is looked up again.
	// A HEAD request waits as its GET does, holding a MaxStreams slot,
	// and gets the same status: a page can ask it whether a stream
	// would open (200) or the run is over or unknown (204).
	// It applies with or without CloseOnFinal. Default: 0, a
	// request for a run without events waits for them as long as the
	// client stays, holding its MaxStreams slot. A host that serves
	// several users or tenants sets it (30s, say, within the bounds
	// above), unless its Authorize refuses every run ID that no run of
	// the principal has (404): else a request for a run ID that will
	// never have an event holds its slot for good, as well as setting
	// MaxStreamsPerKey.
	EmptyRunTimeout time.Duration
	// Logger reports source failures, Authorize's errors other than
	// refusals (answered 503), a ResponseWriter that cannot flush or set write deadlines,
	// (at Info) streams ended by WriteTimeout, and (at Debug) streams
	// ended by the source's [progress.ErrEvicted]. Default:
	// slog.Default().
	Logger *slog.Logger
}

// HandlerStats is a snapshot of a [Handler]'s counters.
type HandlerStats struct {
	// Active is the number of requests being served under MaxStreams:
	// the open streams, and the requests that wait for a run's first
	// event or are being looked up.
	Active int
	// Served counts the requests served under MaxStreams since creation:
	// the streams opened, the requests answered 204 No Content, and the
	// HEAD requests answered with a stream's headers.
	Served uint64
	// Rejected counts the requests refused with 503 by MaxStreams.
	Rejected uint64
	// RejectedPerKey counts the requests refused with 429 by
	// MaxStreamsPerKey.
	RejectedPerKey uint64
	// Events counts the events written, over all streams.
	Events uint64
}

// Handler is an http.Handler that streams one run's events to a browser as
// Server-Sent Events: the stored ones after the client's last event ID,
// then the live ones. Each event is written as
//
//	id: <seq>
//	data: <the event's JSON>
//
// (see package progress for the JSON form), so the browser's
// Last-Event-ID is the Seq, which survives a Redis restart and the
// archive fallback. A keep-alive, after KeepAlive of silence, is a
// comment line, or with KeepAliveEvent an event without an id, which
// leaves that Last-Event-ID as it was. The streams that send the same event share its
// encoding: the first one encodes it, and the others reuse it from a
// cache of the 1,024 most recent events (under 4.5 MiB, typically under
// 1 MiB). It is safe for concurrent use.
type Handler struct {
	src          progress.Source
	authorize    func(*http.Request) (string, error)
	keepAlive    time.Duration
	keepAliveMsg []byte // the keep-alive's frame
	retry        time.Duration
	writeTimeout time.Duration // < 0: none
	maxStreams   int64
	streamKey    func(*http.Request, string) string // nil: no limit per key
	perKey       keyLimiter
	closeOnFinal bool
	emptyRun     time.Duration // 0: no bound
	logger       *slog.Logger

	active         atomic.Int64
	served         atomic.Uint64
	rejected       atomic.Uint64
	rejectedPerKey atomic.Uint64
	events         atomic.Uint64

	warnedNoDeadline atomic.Bool // the warning is logged once

	frames frameCache
}

// NewHandler returns a Handler serving events from src. The error wraps
// [ErrInvalidOptions].
func NewHandler(src progress.Source, opts HandlerOptions) (*Handler, error) {
	switch {
	case src == nil:
		return nil, fmt.Errorf("%w: nil source", ErrInvalidOptions)
	case opts.Authorize == nil:
		return nil, fmt.Errorf("%w: Authorize is required; it decides which run a request may read", ErrInvalidOptions)
	case opts.KeepAlive < 0, opts.Retry < 0, opts.MaxStreams < 0:
		return nil, fmt.Errorf("%w: KeepAlive %v, Retry %v and MaxStreams %d must not be negative",
			ErrInvalidOptions, opts.KeepAlive, opts.Retry, opts.MaxStreams)
	case opts.MaxStreamsPerKey < 0:
		return nil, fmt.Errorf("%w: MaxStreamsPerKey %d must not be negative; give 0 (no limit per key) or the streams one StreamKey may hold at once",
			ErrInvalidOptions, opts.MaxStreamsPerKey)
	case opts.MaxStreamsPerKey > 0 && opts.StreamKey == nil:
		return nil, fmt.Errorf("%w: MaxStreamsPerKey %d needs a StreamKey, which names the user or tenant of each request",
			ErrInvalidOptions, opts.MaxStreamsPerKey)
	case opts.StreamKey != nil && opts.MaxStreamsPerKey == 0:
		return nil, fmt.Errorf("%w: StreamKey is set but MaxStreamsPerKey is 0; give the streams one key may hold at once",
			ErrInvalidOptions)
	case opts.EmptyRunTimeout < 0:
		return nil, fmt.Errorf("%w: EmptyRunTimeout is %v; it must be 0 (no bound) or positive", ErrInvalidOptions, opts.EmptyRunTimeout)
	case opts.KeepAliveEvent == "message":
		return nil, fmt.Errorf("%w: KeepAliveEvent %q is the type of the progress events, which onmessage takes; "+
			"name another, such as \"heartbeat\"", ErrInvalidOptions, opts.KeepAliveEvent)
	case opts.KeepAliveEvent == "error", opts.KeepAliveEvent == "open":
		return nil, fmt.Errorf("%w: KeepAliveEvent %q is the type of an EventSource's own %s events, which on%s takes: "+
			"a page would take each heartbeat for one; name another, such as \"heartbeat\"",
			ErrInvalidOptions, opts.KeepAliveEvent, opts.KeepAliveEvent, opts.KeepAliveEvent)
	case !eventTypeOK(opts.KeepAliveEvent):
		return nil, fmt.Errorf("%w: KeepAliveEvent %q must be valid UTF-8 without spaces or control characters, such as \"heartbeat\"",
			ErrInvalidOptions, opts.KeepAliveEvent)
	}
	for _, o := range []struct {
		name  string
		value time.Duration
	}{
		{"KeepAlive", opts.KeepAlive}, {"Retry", opts.Retry},
		{"WriteTimeout", opts.WriteTimeout}, {"EmptyRunTimeout", opts.EmptyRunTimeout},
	} {
		// Most likely a number without its unit (15, meant as 15s): a
		// keep-alive comment written back to back, every write timed out.
		if o.value > 0 && o.value < time.Millisecond {
			return nil, fmt.Errorf("%w: %s %v is below 1ms; give a duration with its unit (15 * time.Second, not 15)", ErrInvalidOptions, o.name, o.value)
		}
	}
	h := &Handler{
		src:          src,
		authorize:    opts.Authorize,
		keepAlive:    opts.KeepAlive,
		retry:        opts.Retry,
		writeTimeout: opts.WriteTimeout,
		maxStreams:   int64(opts.MaxStreams),
		streamKey:    opts.StreamKey,
		perKey:       keyLimiter{max: opts.MaxStreamsPerKey},
		closeOnFinal: opts.CloseOnFinal,
		emptyRun:     opts.EmptyRunTimeout,
		logger:       opts.Logger,
	}
	h.frames.seed = maphash.MakeSeed()
	h.keepAliveMsg = []byte(": keep-alive\n\n")
	if opts.KeepAliveEvent != "" {
		// No id field: the client's last event ID stays the last event's.
		h.keepAliveMsg = []byte("event: " + opts.KeepAliveEvent + "\ndata: {}\n\n")
	}
	if h.keepAlive == 0 {
		h.keepAlive = 15 * time.Second
	}
	if h.retry == 0 {
		h.retry = 3 * time.Second
	}
	if h.writeTimeout == 0 {
		h.writeTimeout = 30 * time.Second
	}
	if h.maxStreams == 0 {
		h.maxStreams = 1000
	}
	if h.logger == nil {
		h.logger = slog.Default()
	}
	return h, nil
}

// eventTypeOK reports whether name can be written as an event field's
// value and read back the same: valid UTF-8, without spaces (a leading
// one is stripped) or control characters (CR and LF end the line).
func eventTypeOK(name string) bool {
	if !utf8.ValidString(name) {
		return false
	}
	for _, r := range name {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// Stats returns a snapshot of the counters.
func (h *Handler) Stats() HandlerStats {
	return HandlerStats{
		Active:         int(h.active.Load()),
		Served:         h.served.Load(),
		Rejected:       h.rejected.Load(),
		RejectedPerKey: h.rejectedPerKey.Load(),
		Events:         h.events.Load(),
	}
}

// keyLimiter counts the requests served for each StreamKey. A key is in
// the map while it has requests, so the map holds no more keys than
// requests under way.
type keyLimiter struct {
	max int
	mu  sync.Mutex
	n   map[string]int
}

// acquire takes a slot of key, and reports whether one was free.
func (l *keyLimiter) acquire(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n[key] >= l.max {
		return false
	}
	if l.n == nil {
		l.n = make(map[string]int)
	}
	l.n[key]++
	return true
}

// release gives back a slot of key that acquire took.
func (l *keyLimiter) release(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n[key]--; l.n[key] <= 0 {
		delete(l.n, key)
	}
}

var (
	// errFinal ends a stream after the run's final event.
	errFinal = errors.New("sse: final event sent")
	// errReprobe ends the stream of a client that a later lookup found
	// ahead of its run, or past its end, after the first one failed: it
	// reconnects, and is answered as a working lookup answers it.
	errReprobe = errors.New("sse: the run's newest event is below the client's last event ID")
	// errEmptyRun ends a request whose run had no event within
	// EmptyRunTimeout.
	errEmptyRun = errors.New("sse: no event within the empty-run timeout")
	// errHeadAnswered ends a HEAD request once its stream's headers are
	// written.
	errHeadAnswered = errors.New("sse: HEAD answered")
	// errStopReplay ends the handler's probing replays early.
	errStopReplay = errors.New("sse: stop replay")
)

// ServeHTTP serves one stream. A HEAD request is answered as its GET
// would be, with the stream's headers (or the GET's refusal, or its 204)
// and no body, once its GET would send them: at once for a run with
// events, and for a run without any, with EmptyRunTimeout, when the
// run's first event comes (200) or the bound passes (204); it writes no
// event. Other methods than GET and HEAD get 405. The resume point is the Last-Event-ID
// header, or for a first connect the lastEventId query parameter; a
// malformed one gets 400. Of several Last-Event-ID headers (a proxy or
// a client library that adds its own beside the browser's), the stream
// resumes after the smallest, so that no event is lost, at the cost of
// sending again those after it that the client may have seen. It returns when the client goes away, when a
// write fails or exceeds WriteTimeout, after the final event if
// CloseOnFinal is set, after EmptyRunTimeout for a run without events
// (with 204), or when the source fails. A ResponseWriter that
// cannot flush (a middleware's wrapper that hides http.Flusher and has no
// Unwrap method) could never deliver an event: the request gets 500, and
// the handler logs an error. Every answer, a stream included, says
// Cache-Control: no-store, so that no cache gives one user's events or
// refusal, or one moment's, to another request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		httpError(w, http.StatusMethodNotAllowed, "sse: method "+r.Method+" not allowed; use GET")
		return
	}
	runID, err := h.authorize(r)
	switch {
	case errors.Is(err, ErrUnauthorized):
		httpError(w, http.StatusUnauthorized, err.Error())
		return
	case errors.Is(err, ErrForbidden):
		httpError(w, http.StatusForbidden, err.Error())
		return
	case errors.Is(err, ErrNotFound):
		httpError(w, http.StatusNotFound, err.Error())
		return
	case err != nil:
		if r.Context().Err() == nil { // else the client is gone, and so is the answer
			h.logger.Error("sse: authorize failed; answered 503, to be retried", "error", err, "path", r.URL.Path)
		}
		h.unavailable(w, "sse: authorization is unavailable; retry later")
		return
	case runID == "":
		h.logger.Error("sse: authorize returned an empty run ID", "path", r.URL.Path)
		httpError(w, http.StatusInternalServerError, "sse: authorization failed; try again later")
		return
	}
	after, err := resumePoint(r)
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	if !canFlush(w) {
		h.logger.Error("sse: the ResponseWriter cannot flush, so no event would reach the client; "+
			"a middleware's ResponseWriter wrapper must implement http.Flusher or have an Unwrap method",
			"type", fmt.Sprintf("%T", w), "path", r.URL.Path)
		httpError(w, http.StatusInternalServerError, "sse: this server cannot stream events: its response writer cannot flush")
		return
	}
	if h.streamKey != nil {
		key := h.streamKey(r, runID)
		if !h.perKey.acquire(key) {
			h.rejectedPerKey.Add(1)
			h.retryLater(w, http.StatusTooManyRequests,
				fmt.Sprintf("sse: too many streams of this user or tenant at once (limit %d); close one, or retry later", h.perKey.max))
			return
		}
		defer h.perKey.release(key)
	}
	if n := h.active.Add(1); n > h.maxStreams {
		h.active.Add(-1)
		h.rejected.Add(1)
		h.unavailable(w, fmt.Sprintf("sse: too many streams (limit %d); retry later", h.maxStreams))
		return
	}
	defer h.active.Add(-1)
	h.served.Add(1)

	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(nil)
	ended, empty, from, unsure, unsureEmpty := h.probe(ctx, runID, after)
	if ended {
		noContent(w)
		return
	}
	rc := http.NewResponseController(w)
	// A server's WriteTimeout must not cut a long-lived stream: each write
	// sets a deadline of its own instead, and clears it after.
	deadlines := false
	switch err := rc.SetWriteDeadline(time.Time{}); {
	case h.writeTimeout < 0:
	case err == nil:
		deadlines = true
	case errors.Is(err, http.ErrNotSupported):
		if h.warnedNoDeadline.CompareAndSwap(false, true) {
			h.logger.Warn("sse: the ResponseWriter supports no write deadline, so a client that stops reading "+
				"keeps its stream until the connection fails, and a server WriteTimeout may cut streams; "+
				"give a middleware's ResponseWriter wrapper an Unwrap method",
				"type", fmt.Sprintf("%T", w))
		}
	default:
		h.logger.Warn("sse: cannot set a write deadline; the connection is likely gone", "runId", runID, "error", err)
		return
	}
	s := &stream{w: w, rc: rc, keepAlive: h.keepAlive, writeTimeout: h.writeTimeout, deadlines: deadlines, http1: r.ProtoMajor == 1}
	defer s.close() // no write reaches w once ServeHTTP returns
	// open starts the response: its header, the keep-alive timer and the
	// retry field.
	open := func() error {
		setStreamHeaders(w.Header())
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodHead {
			// The stream's headers, once its GET would send them, and
			// no body: no retry field, no event, no keep-alive.
			return errHeadAnswered
		}
		// The keep-alive is a timer, not a goroutine per stream: it fires
		// only after KeepAlive of silence, and every write pushes it back.
		s.mu.Lock() // a callback's write waits until s.timer is set
		s.timer = time.AfterFunc(h.keepAlive, func() {
			if err := s.write(h.keepAliveMsg); err != nil {
				cancel(err)
			}
		})
		s.mu.Unlock()
		return s.write([]byte("retry: " + strconv.FormatInt(h.retry.Milliseconds(), 10) + "\n\n"))
	}

	if empty {
		// The run may not have started yet, or be gone: the response waits
		// for its first event, so that it can still be answered 204.
		var mu sync.Mutex
		opened := false // set under mu; read without it by the Tail callback and after Tail
		timer := time.AfterFunc(h.emptyRun, func() {
			mu.Lock()
			defer mu.Unlock()
			if !opened {
				cancel(errEmptyRun)
			}
		})
		defer timer.Stop()
		openOnce := func() error {
			if opened {
				return nil
			}
			mu.Lock()
			defer mu.Unlock()
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			opened = true
			return open()
		}
		err = h.tail(ctx, s, runID, from, after, openOnce)
		switch {
		case opened:
		case errors.Is(context.Cause(ctx), errEmptyRun), errors.Is(err, errFinal):
			// No event in time, or the run's first events were at or
			// below the client's last event ID, and ended the run.
			noContent(w)
			return
		case r.Context().Err() == nil:
			// The source failed before the run's first event: an event
			// stream ends, as when it fails later, and the client
			// reconnects.
			_ = openOnce()
		}
	} else if err = open(); err == nil {
		if unsure {
			defer h.reprobe(ctx, runID, after, cancel)()
		}
		var first func() error
		if unsureEmpty {
			// The lookup failed: the run may have no event, and the
			// stream is bounded as a run without events is, but already
			// open, so it ends rather than answer 204; the reconnect is
			// looked up again.
			var got atomic.Bool
			timer := time.AfterFunc(h.emptyRun, func() {
				if !got.Load() {
					cancel(errEmptyRun)
				}
			})
			defer timer.Stop()
			first = func() error {
				if !got.Swap(true) {
					timer.Stop()
				}
				return nil
			}
		}
		err = h.tail(ctx, s, runID, from, after, first)
	}
	switch {
	case errors.Is(err, errHeadAnswered):
	case errors.Is(err, errFinal):
		// The run ended.
	case isWriteError(err):
		h.logWriteError(runID, err)
	case ctx.Err() != nil:
		// The client left.
	case errors.Is(err, progress.ErrEvicted):
		// The source (a Memory past its MaxRuns) no longer holds the
		// run's events, and sent what it kept, the run's final event
		// for a finished run: the run ended as this stream can show it.
		// A host sees it for every view of an old run that opens, and
		// counts it in the source's own stats (MemoryStats.EvictedRuns,
		// Skipped): not a warning per stream.
		h.logger.Debug("sse: stream ended: the source evicted the run", "runId", runID, "error", err)
	case err != nil:
		h.logger.Warn("sse: stream ended by its source", "runId", runID, "error", err)
	}
}

// setStreamHeaders sets the header of an event stream's response:
// no-store, as the stream holds one user's events and a cache (a shared
// one does not key its entries by a cookie) must not keep it.
func setStreamHeaders(hdr http.Header) {
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Accel-Buffering", "no")
}

// tail writes the run's events after after to s until ctx ends, a write
// fails, or (with CloseOnFinal) the final event is written. It reads the
// source from from, at most after: the events up to after, which the
// client has, are not written, but with CloseOnFinal a final one among
// them ends the stream, as the client is then past the run's end. before,
// if not nil, is called for each event read but such a final one, before
// it is written or passed over: an event at or below after still tells
// that the run has events, so that it opens a response that waits for the
// run's first event, and lifts EmptyRunTimeout's bound.
func (h *Handler) tail(ctx context.Context, s *stream, runID string, from, after uint64, before func() error) error {
	return h.src.Tail(ctx, runID, from, func(e progress.Event) error {
		if e.Seq <= after {
			if h.closeOnFinal && e.Type.Final() {
				return errFinal
			}
			if before != nil {
				return before()
			}
			return nil
		}
		if before != nil {
			if err := before(); err != nil {
				return err
			}
		}
		frame, err := h.frames.frame(e)
		if err != nil {
			return err
		}
		if err := s.write(frame); err != nil {
			return err
		}
		h.events.Add(1)
		if h.closeOnFinal && e.Type.Final() {
			return errFinal
		}
		return nil
	})
}

// Bounds of a Handler's frameCache.
const (
	// frameSlots is the number of events it holds. The streams of a run
	// that are at most about this many events behind the first of them
	// to send an event reuse its encoding; one further behind encodes the
	// event for itself. A run that publishes a burst (every node of a
	// graph unchanged, at once) spreads its streams over the burst.
	frameSlots = 1024
	// maxCachedFrame is the largest frame it holds; a larger one is
	// encoded by each stream, as every one was before the cache. A
	// typical event's frame is a few hundred bytes. An entry holds the
	// frame and the event it was encoded from, whose strings are at most
	// as large again, and about 250 bytes more, so the cache holds under
	// 1024 × (2 × 2 KiB + 250 B), 4.5 MiB, and typically under 1 MiB
	// once full.
	maxCachedFrame = 2 << 10
)

// frameCache holds the frames ("id: <seq>\ndata: <JSON>\n\n") of recent
// events, so that the streams that send the same event encode it once: a
// run followed by 1,000 clients otherwise encoded each event 1,000 times.
// It is direct-mapped: an event has one slot, picked by its run ID and
// Seq (consecutive events of a run take consecutive slots), and takes it
// from any other event but a newer one of the same run: a stream far
// behind the others encodes for itself rather than evict what the
// streams between it and the first are still to reuse. A frame is reused
// only for an event equal to the one it was encoded from, field by
// field, run ID included, so it never carries another run's event, nor
// an earlier version of an event with the same run ID and Seq. It is
// safe for concurrent use: a slot holds a pointer to an entry that is
// never modified once stored; two streams that miss at once both encode,
// and the last one stored stays.
type frameCache struct {
	seed  maphash.Seed
	slots [frameSlots]atomic.Pointer[cachedFrame]
}

type cachedFrame struct {
	event progress.Event
	frame []byte // read-only
}

// frame returns e's frame, which the caller must not modify.
func (c *frameCache) frame(e progress.Event) ([]byte, error) {
	slot := &c.slots[(maphash.String(c.seed, e.RunID)+e.Seq)%frameSlots]
	f := slot.Load()
	if f != nil && f.event == e {
		return f.frame, nil
	}
	data, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	frame := make([]byte, 0, len(data)+40) // "id: ", 20 digits, "\ndata: ", "\n\n"
	frame = append(frame, "id: "...)
	frame = strconv.AppendUint(frame, e.Seq, 10)
	frame = append(frame, "\ndata: "...)
	frame = append(frame, data...)
	frame = append(frame, "\n\n"...)
	if len(frame) <= maxCachedFrame && (f == nil || f.event.RunID != e.RunID || f.event.Seq <= e.Seq) {
		slot.Store(&cachedFrame{event: e, frame: frame})
	}
	return frame, nil
}

// logWriteError reports a failed write that says more than "the client
// left".
func (h *Handler) logWriteError(runID string, err error) {
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		h.logger.Info("sse: stream ended: the client read nothing for the write timeout",
			"runId", runID, "writeTimeout", h.writeTimeout)
	case errors.Is(err, http.ErrNotSupported):
		h.logger.Error("sse: stream ended: the ResponseWriter cannot flush", "runId", runID, "error", err)
	}
}

// resumePoint returns the sequence number that r resumes after: its
// Last-Event-ID header, or for a first connect its lastEventId query
// parameter, or 0. Of several headers (or of one that a proxy joined
// them into, "7, 3", whose empty elements it ignores) it returns the smallest: which
// event the client saw last is not the handler's to guess, and one ahead
// of it would skip events, where one behind sends some again. A
// malformed one is an error wrapping ErrBadLastEventID.
func resumePoint(r *http.Request) (uint64, error) {
	v := r.Header.Values("Last-Event-ID")
	if len(v) == 0 {
		return ParseLastEventID(r.URL.Query().Get("lastEventId"))
	}
	least, first := uint64(0), true
	for _, line := range v {
		// A proxy may join repeated headers into one, ", " between them,
		// as HTTP allows for a list, whose empty elements ("5,") are
		// ignored, not read as 0; a header of empty elements alone is
		// empty, so 0, as an empty header is.
		texts := slices.DeleteFunc(strings.Split(line, ","), func(text string) bool {
			return strings.TrimSpace(text) == ""
		})
		if len(texts) == 0 {
			texts = []string{""}
		}
		for _, text := range texts {
			id, err := ParseLastEventID(strings.TrimSpace(text))
			if err != nil {
				return 0, err
			}
			if first || id < least {
				least, first = id, false
			}
		}
	}
	return least, nil
}

// canFlush reports whether http.ResponseController.Flush can flush w: it
// looks for the same methods, through the same Unwrap chain.
func canFlush(w http.ResponseWriter) bool {
	for {
		switch t := w.(type) {
		case interface{ FlushError() error }, http.Flusher:
			return true
		case interface{ Unwrap() http.ResponseWriter }:
			w = t.Unwrap()
		default:
			return false
		}
	}
}

// probe looks at the run before its stream opens. It reports whether the
// client, whose last event is last, has nothing more to receive (ended:
// the run's final event has a Seq of at most last), whether the source
// holds no event of the run at all (empty), and the Seq to read the
// source from: last, or with CloseOnFinal, for a client ahead of every
// event the source holds, the newest of them (0 if none), so that a run
// that then ends below last is seen to end; 0 for a run without events,
// whose first event, even at or below last, opens the response that
// waits for it. It finds out only what the
// options need: ended with CloseOnFinal and a last event, empty with
// EmptyRunTimeout. A source that implements progress.LastEventReader
// answers both with one lookup. Any other is asked for the event at last,
// which settles ended unless the client is past every stored event; only
// then is the run replayed, to find its newest event. A source that fails
// reports neither, and the stream opens as usual, from last; unsure then
// says that ended was needed (see reprobe), and unsureEmpty that empty
// was (the stream then ends if no event comes within EmptyRunTimeout, and
// the client's reconnect is looked up again).
func (h *Handler) probe(ctx context.Context, runID string, last uint64) (ended, empty bool, from uint64, unsure, unsureEmpty bool) {
	needEnded, needEmpty := h.closeOnFinal && last > 0, h.emptyRun > 0
	if !needEnded && !needEmpty {
		return false, false, last, false, false
	}
	if lr, ok := h.src.(progress.LastEventReader); ok {
		e, ok, err := lr.LastEvent(ctx, runID)
		if err != nil {
			return false, false, last, needEnded, needEmpty
		}
		from = last
		if needEnded || !ok {
			from = min(last, e.Seq) // e.Seq is 0 if !ok
		}
		return needEnded && ok && e.Seq <= last && e.Type.Final(), needEmpty && !ok, from, false, false
	}
	if needEnded {
		found, final := false, false
		err := h.src.Replay(ctx, runID, last-1, func(e progress.Event) error {
			found = true
			final = e.Seq == last && e.Type.Final()
			return errStopReplay
		})
		if found {
			return final, false, last, false, false
		}
		if err != nil {
			return false, false, last, true, needEmpty
		}
	}
	// Nothing at or past last: read from the start, to the end only if
	// the newest event decides whether the run ended.
	var latest progress.Event
	err := h.src.Replay(ctx, runID, 0, func(e progress.Event) error {
		latest = e
		if !needEnded {
			return errStopReplay
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStopReplay) {
		return false, false, last, needEnded, needEmpty
	}
	from = last
	if needEnded || latest.Seq == 0 {
		from = min(last, latest.Seq)
	}
	return needEnded && latest.Seq != 0 && latest.Seq <= last && latest.Type.Final(), needEmpty && latest.Seq == 0, from, false, false
}

// reprobe looks the run up again every KeepAlive, from a timer, for the
// open stream of a client whose first lookup failed (a source down for a
// moment), since its last event ID may be ahead of the run: the stream
// reads from that ID, and a run that ends below it would leave it open
// and silent for good. Once a lookup says that the run's newest event is
// below the ID (ahead, or past the end), the stream ends (with
// errReprobe), and the client reconnects to be answered as a working
// lookup answers it: 204 past the end, or read from the run's newest
// event. Once one says the client is not ahead, it stops. It returns a
// function that stops it, for when the stream ends: it cancels ctx, so
// that a lookup under way returns, and waits for it, so that no lookup
// outlives the request.
func (h *Handler) reprobe(ctx context.Context, runID string, last uint64, cancel context.CancelCauseFunc) (stop func()) {
	var (
		mu      sync.Mutex
		t       *time.Timer
		stopped bool
		pending sync.WaitGroup // the check armed or under way
		check   func()
	)
	check = func() {
		defer pending.Done()
		ended, _, from, unsure, _ := h.probe(ctx, runID, last)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case stopped || ctx.Err() != nil:
		case unsure:
			pending.Add(1)
			t = time.AfterFunc(h.keepAlive, check)
		case ended || from < last:
			cancel(errReprobe)
		}
	}
	mu.Lock()
	pending.Add(1)
	t = time.AfterFunc(h.keepAlive, check)
	mu.Unlock()
	return func() {
		mu.Lock()
		stopped = true
		if t.Stop() {
			pending.Done() // the check will not run
		}
		mu.Unlock()
		cancel(context.Canceled)
		pending.Wait()
	}
}

// stream serializes one response's writes: events from the handler's
// goroutine, keep-alives from the keep-alive timer's.
type stream struct {
	mu           sync.Mutex
	w            http.ResponseWriter
	rc           *http.ResponseController
	timer        *time.Timer // fires after keepAlive of silence
	keepAlive    time.Duration
	writeTimeout time.Duration
	deadlines    bool // each write sets a deadline of writeTimeout
	http1        bool // HTTP/1.x: net/http writes the response's end after ServeHTTP
	err          error
}

// writeError is a failure to write to the client, which has left.
type writeError struct{ err error }

func (e *writeError) Error() string { return "sse: write: " + e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

func isWriteError(err error) bool {
	var we *writeError
	return errors.As(err, &we)
}

func (s *stream) write(p []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	if err := s.setDeadline(time.Now().Add(s.writeTimeout)); err != nil {
		return s.fail(err)
	}
	if _, err := s.w.Write(p); err != nil {
		return s.fail(err)
	}
	if err := s.rc.Flush(); err != nil {
		return s.fail(err)
	}
	// No deadline while the stream is idle: on HTTP/2 one that expires
	// resets the stream even with no write pending.
	if err := s.setDeadline(time.Time{}); err != nil {
		return s.fail(err)
	}
	s.timer.Reset(s.keepAlive)
	return nil
}

func (s *stream) setDeadline(t time.Time) error {
	if !s.deadlines {
		return nil
	}
	return s.rc.SetWriteDeadline(t)
}

// fail makes err the error of this write and of every later one.
func (s *stream) fail(err error) error {
	s.err = &writeError{err}
	return s.err
}

// close stops the keep-alive timer and makes later writes fail, so that a
// timer callback running late never touches the finished response. Over
// HTTP/1.x it sets a last write deadline, of writeTimeout: net/http writes
// the end of the response (a stream's last chunk, or the header of a 204)
// after ServeHTTP returns, and with the server's own deadline cleared for
// the stream, that write to a client that has stopped reading would block
// for good, keeping the connection and its goroutine. (net/http clears
// the deadline once the response is done, before it reads the next
// request on the connection. HTTP/2 ends a stream with a frame that flow
// control does not hold back.)
func (s *stream) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.timer != nil { // nil if the response never opened
		s.timer.Stop()
	}
	if s.err == nil {
		s.err = errStreamClosed
	}
	if s.http1 {
		_ = s.setDeadline(time.Now().Add(s.writeTimeout))
	}
}

var errStreamClosed = errors.New("sse: stream closed")

// noContent answers 204 No Content, which stops EventSource. It answers
// this request's Last-Event-ID, or the moment, so no cache may store it
// for another request: a 204 is cacheable by default (RFC 9110, 15.3.5).
func noContent(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

// unavailable answers 503 Service Unavailable with msg, a Retry-After of
// the retry delay in whole seconds (at least 1), and Cache-Control
// no-store: the answer holds for this moment only, and no cache must give
// it to a later request.
func (h *Handler) unavailable(w http.ResponseWriter, msg string) {
	h.retryLater(w, http.StatusServiceUnavailable, msg)
}

// retryLater answers code (503, or 429 beyond MaxStreamsPerKey) as
// unavailable answers 503.
func (h *Handler) retryLater(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Retry-After", strconv.Itoa(int(max(h.retry/time.Second, 1))))
	w.Header().Set("Cache-Control", "no-store")
	httpError(w, code, msg)
}

// httpError answers code with msg as plain text, and Cache-Control
// no-store: every refusal of the handler holds for this request's user
// and moment (a 404 and a 405 are cacheable by default, RFC 9110 15.1,
// and a shared cache would give one user's 404 to another).
func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = fmt.Fprintln(w, msg)
}
