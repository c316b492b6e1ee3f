package sse

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/regengraph/regen/progress"
)

// StatusError is the error of a [Client] whose server answered neither
// 200 with a text/event-stream body nor 204. Like a browser's EventSource,
// the client does not reconnect after it, except after 503 Service
// Unavailable and 429 Too Many Requests, which it waits out (see
// [Client]): [Client.Stream] returns a StatusError for any other status,
// 5xx included. errors.Is matches one of a 401, 403 or 404 with the
// sentinel a [Handler]'s Authorize refuses with ([ErrUnauthorized],
// [ErrForbidden], [ErrNotFound]); see [StatusError.Is].
type StatusError struct {
	// StatusCode is the response's status code.
	StatusCode int
	// ContentType is the response's Content-Type.
	ContentType string
	// Body is the start of the response body, at most 1 KiB: what came
	// of it before a silence of ClientOptions.IdleTimeout, if it stalled.
	Body string
	// RetryAfter is the response's Retry-After header, parsed: its
	// delay-seconds, or its HTTP-date less the response's Date (less the
	// client's clock if the response has no Date), as it was sent,
	// uncapped. It is zero if the header is absent, unparsable, zero or a
	// date already past. A host that calls Stream again after a status
	// that ends it (a 500 or a 502, say) can wait that long first.
	RetryAfter time.Duration
}

// Is reports whether target is the sentinel that a [Handler]'s Authorize
// returns for e's status: [ErrUnauthorized] for 401, [ErrForbidden] for
// 403, [ErrNotFound] for 404. So errors.Is tells a refusal by the same
// value on both sides.
func (e *StatusError) Is(target error) bool {
	switch e.StatusCode {
	case http.StatusUnauthorized:
		return target == ErrUnauthorized
	case http.StatusForbidden:
		return target == ErrForbidden
	case http.StatusNotFound:
		return target == ErrNotFound
	}
	return false
}

// Error reports the status, the content type and the start of the body,
// on one line: the body's surrounding white space (the newline that
// http.Error ends it with) is trimmed, and a body that still holds a line
// break or another control character, or is not valid UTF-8, is quoted.
func (e *StatusError) Error() string {
	body := strings.TrimSpace(e.Body)
	if strings.ContainsFunc(body, unicode.IsControl) || !utf8.ValidString(body) {
		body = strconv.Quote(body)
	}
	return fmt.Sprintf("sse: server answered %d (%s): %s", e.StatusCode, e.ContentType, body)
}

// ClientOptions configures a [Client]. The zero value gives the defaults.
type ClientOptions struct {
	// HTTPClient makes the requests; it must not have a Timeout, which
	// would cut the stream. Each request is made with Request.Close set:
	// no other request takes its connection, during the stream or after
	// it (over HTTP/2 the connection is closed once the stream ends), so
	// that a reconnection after IdleTimeout never goes out on a
	// connection that died without a word; so is each redirected request.
	// Its CheckRedirect is called on each redirect, as ever (the Client
	// makes its requests with a copy of it, to set a redirected request's
	// Close, and its Host: see Header); the HTTPClient is left as given.
	// A redirect it refuses (net/http's default refuses the 10th in a
	// row) ends Stream with its error, as a refusal by the server would,
	// where a network error is reconnected; so does one that net/http
	// cannot follow: a Location that does not parse, a URL without a
	// host, or of a scheme that the Transport does not serve (net/http's
	// serves http, https and those registered with its RegisterProtocol).
	// Default: http.DefaultClient.
	HTTPClient *http.Client
	// Header is added to every request to the URL's origin, for
	// credentials for example (see below for redirects). Its
	// keys are taken as http.CanonicalHeaderKey spells them: keys spelt
	// two ways ("x-tenant", "X-Tenant") go out as one, with the values of
	// both, in the order of the keys sorted. Accept and Cache-Control, in
	// any spelling, are the Client's own (text/event-stream, no-cache),
	// which replace the Header's. A Host, in any spelling, is the host
	// that every request asks for (its Request.Host, as net/http ignores
	// a Host in a request's Header), to reach a virtual host for example;
	// the connection goes to the URL's host, and over TLS the server name
	// is the URL's too. A redirect to the URL's origin (its scheme, host
	// and port), relative or absolute, asks for that Host too, and one to
	// another origin asks for that origin's own host, before HTTPClient's
	// CheckRedirect, if any, sees the request. Without it, a request asks
	// for the URL's host. The Header goes to the URL's origin alone, as
	// credentials for it: a redirect to another origin (another scheme,
	// host or port, a subdomain too) goes without any of its keys (an
	// Authorization, a Cookie, an X-Api-Key alike), and so does every
	// request after it in the chain, back to the URL's origin included,
	// while a redirect within the origin keeps them; the Client's own
	// Accept, Cache-Control and Last-Event-ID go everywhere. (net/http
	// alone sends a custom key to any host, and Authorization and Cookie
	// to the same host name on another port or scheme, or to a
	// subdomain.) Nor does a redirect to another origin carry a Referer,
	// which net/http would set to the whole URL that redirected, its
	// query (a token, say) included. It must not hold Last-Event-ID, in any spelling of the key: the Client
	// sends its own (LastEventID, then the ID of the last event it saw),
	// and a second one would leave the server to choose. Such a Header is
	// refused: Stream returns an error wrapping [ErrInvalidOptions]. So is
	// one that net/http cannot send, which would fail every request: a key
	// that is not an HTTP token, a value with a control character other
	// than a tab. So is one with a header of the connection or of a body,
	// which net/http manages itself and drops without a word, or over
	// HTTP/2 refuses every request for (Connection, Keep-Alive,
	// Proxy-Connection, Upgrade, Transfer-Encoding, Content-Length,
	// Trailer, in any spelling), or with a TE but the one value
	// "trailers" (sent as given), which asks for a transfer coding that
	// net/http cannot read, or with two User-Agents, of which
	// net/http sends the first alone; or with an Accept-Encoding but
	// "identity", with which net/http would leave a compressed stream
	// compressed (without it, net/http asks for gzip and decodes it
	// itself). So is a Host other than one value that net/http sends as
	// it is: two values (over every spelling of the key), an empty one, or
	// one with a byte other than letters, digits and !$%&'()*+,-.:;=[]_~
	// (an international name goes in its ASCII form, xn--), which net/http
	// would replace with an empty Host (over HTTP/2, refuse to send).
	// Default: none.
	Header http.Header
	// LastEventID is sent as Last-Event-ID on the first request, to
	// resume after an event seen earlier. Default: "", from the start.
	LastEventID string
	// Retry is the base delay before reconnecting, until the server sets
	// one with a retry field (which counts as MaxBackoff at most). It is
	// raised to [MinRetry], as the server's is. A positive value below 1ms (a number without its unit, 3 meant
	// as 3s) is refused: Stream returns an error wrapping
	// [ErrInvalidOptions]. Default: 3s.
	Retry time.Duration
	// MaxBackoff caps the delay that grows after consecutive connections
	// that fail or end without an event (see [Client]), and the
	// Retry-After of a 503 or a 429 that the client waits out: a longer
	// one counts as MaxBackoff, and so does a longer retry field of the
	// server's (a retry of a minute, or of 292 years), so that no server
	// makes the client wait longer than 1.5·MaxBackoff (see [Client]). A
	// Retry longer than MaxBackoff, the host's own, is still waited in
	// full: the cap never shortens it. Zero or negative gives the default. A positive
	// value below 1ms (a number without its unit, 30 meant as 30s) is
	// refused: Stream returns an error wrapping [ErrInvalidOptions].
	// Default: 30s.
	MaxBackoff time.Duration
	// IdleTimeout is how long an open stream may stay silent, not a byte
	// of an event, a comment or a keep-alive arriving while the client
	// waits for one, before the client drops the connection and
	// reconnects as after any dropped connection (with Last-Event-ID,
	// after the waits described at [Client]). So a connection that died
	// without a word reaching the client (the server's host gone, a NAT
	// or a firewall that forgot it, a cable cut: no FIN, no RST) is
	// noticed, where a read would otherwise wait until TCP gives up,
	// minutes or hours later. Set it well above the server's keep-alive
	// interval, which a quiet stream waits between two comments; the
	// default is three times [HandlerOptions].KeepAlive's default of 15s.
	// The time the callback given to [Client.Stream] takes does not
	// count, nor the wait for the response's headers, which a [Handler]
	// holds back until a run's first event (see
	// [HandlerOptions].EmptyRunTimeout): that wait is HeaderTimeout's.
	// The body of a refusal (a status but 200 and 204, read for
	// [StatusError].Body) is bounded so too: one that stalls for
	// IdleTimeout is cut there, and the refusal is answered as ever.
	// A negative value turns the timeout off. A positive value below 1ms
	// (a number without its unit, 45 meant as 45s) is refused: Stream
	// returns an error wrapping [ErrInvalidOptions]. Default: 45s.
	IdleTimeout time.Duration
	// HeaderTimeout bounds the wait for a response's headers, from the
	// request's start: a server that accepts the request and never
	// answers it (a stuck handler or proxy, a host gone after the
	// connection was made) ends [Client.Stream] with an error wrapping
	// [ErrHeaderTimeout], as a proxy's 504 Gateway Timeout would end it,
	// rather than hold it until ctx ends. A [Handler] with an
	// [HandlerOptions].EmptyRunTimeout holds the headers of a run without
	// events back until the run's first event, up to that bound: set
	// HeaderTimeout above it (the default is above the 60s of a proxy's
	// read timeout, which the EmptyRunTimeout is to stay below). A
	// Handler without one holds nothing back: it opens the stream of
	// such a run as soon as it has looked the run up (with CloseOnFinal
	// and a last event ID), and the stream waits for the run's events.
	// The stream's time, once open, is IdleTimeout's. A positive value below 1ms (a number without its
	// unit, 90 meant as 90s) is refused: Stream returns an error wrapping
	// [ErrInvalidOptions]. Default: 90s.
	HeaderTimeout time.Duration
}

// ErrHeaderTimeout ends [Client.Stream] when a response's headers did
// not come within [ClientOptions].HeaderTimeout: the server took the
// request and never answered it. The error names the timeout.
var ErrHeaderTimeout = errors.New("sse: no response headers in time")

// MinRetry is the shortest delay a [Client] waits before reconnecting,
// whatever the server's retry field or ClientOptions.Retry says: a retry
// of 0, or a server that ends every connection at once, cannot make every
// client reconnect in a tight loop. At 100 ms it bounds a client to 10
// connection attempts a second even against a server that sends a new
// event on each connection (which resets the backoff), while a person watching
// progress does not notice it, next to the handler's default retry of
// 3 s.
const MinRetry = 100 * time.Millisecond

// defaultMaxBackoff is ClientOptions.MaxBackoff's default.
const defaultMaxBackoff = 30 * time.Second

// defaultIdleTimeout is ClientOptions.IdleTimeout's default: three times
// the handler's default keep-alive, so that a quiet stream of a Handler
// may lose two keep-alive comments, or have them late, and stay open.
const defaultIdleTimeout = 45 * time.Second

// defaultHeaderTimeout is ClientOptions.HeaderTimeout's default: above
// the 60s read timeout of a proxy (nginx's proxy_read_timeout), which a
// Handler's EmptyRunTimeout is to stay below.
const defaultHeaderTimeout = 90 * time.Second

// Client reads an event stream and reconnects as a browser's EventSource
// does: after a dropped connection it waits the retry delay and sends the
// last event ID it saw as Last-Event-ID, so that the server resumes right
// after it. It is meant for tests and for Go hosts; one Client follows
// one stream at a time.
//
// The retry delay is the base: the server's latest retry field, capped
// at ClientOptions.MaxBackoff, else ClientOptions.Retry, and never less
// than [MinRetry]. The waits are
// drawn at random, so that clients dropped together (by a server's
// restart or deploy) do not come back in lockstep, but none is shorter
// than the base. After a connection that delivered an event, the client waits the
// base plus a random extra of up to half of it: a delay drawn uniformly
// from [base, 1.5·base), where EventSource waits the base exactly; the
// extra is not capped by ClientOptions.MaxBackoff. After consecutive
// connections that fail (a network error) or end without delivering an
// event, it backs off: after the n-th such connection in a row it waits a
// delay drawn uniformly from [d/2, d), where d is the base times 2^n
// capped at ClientOptions.MaxBackoff, and never less than the base (so
// after failures a Retry above MaxBackoff is waited exactly). So with the defaults the
// client reconnects 3-4.5 s after a connection that delivered events
// drops, and a server that is down is retried after 3-6 s, 6-12 s,
// 12-24 s, then every 15-30 s. A connection that delivers an event, or
// stays open for at least MaxBackoff with a byte (a comment, a
// heartbeat) arriving that long after it opened (a quiet stream that a
// proxy ends now and then; the time the callback given to
// [Client.Stream] takes does not count, as a byte read after it may
// have come long before), resets the backoff; nothing else does. An
// event here is any message but a heartbeat: a message of another type
// than "message" that carries nothing (data "{}" or empty) and leaves
// the last event ID as it was, such as a heartbeat of a [Handler] with
// HandlerOptions.KeepAliveEvent. So an event of a host's own type
// ("progress", say) with data is one, with an id or without; the
// silence before a drop for IdleTimeout is none. But a connection whose
// events are the very ones (types, ids and data, in order) of the last
// connection that delivered events, and that does not stay open for
// MaxBackoff, is a replay, which counts as a connection without an
// event: a server that sends the same id-less event on each connection,
// or ignores Last-Event-ID and replays its events from the start, makes
// no progress (the first different event resets the backoff). A server
// that ends each stream after a heartbeat, or a replay, or a proxy that
// takes the request and then sends nothing, is thus retried with the
// growing backoff, not at the base delay for ever.
//
// An open stream on which not a byte arrives for ClientOptions.IdleTimeout
// (45 s by default; a [Handler] writes a keep-alive comment every 15 s)
// counts as dropped: the client closes it and reconnects as above, so
// that it notices a connection that died without a word (the server's
// host gone, a NAT that forgot it). A request whose response's headers
// do not come within ClientOptions.HeaderTimeout (90 s by default) ends
// [Client.Stream] with an error wrapping [ErrHeaderTimeout], as a
// proxy's 504 Gateway Timeout ends it.
//
// A response of 503 Service Unavailable or 429 Too Many Requests (what
// [Handler] answers beyond its MaxStreams, and its MaxStreamsPerKey) is passing, unlike for
// EventSource, which gives up: the client counts it as a failed
// connection and reconnects, with the same Last-Event-ID. It waits the
// backoff, but at least the response's Retry-After (delay-seconds, or an
// HTTP-date taken relative to the response's Date, so that a skew between
// the two clocks does not count), capped at MaxBackoff, plus a random
// extra of up to half of it: so no longer than 1.5·MaxBackoff or the
// backoff, whichever is longer. Without a Retry-After, or with one that
// does not parse or is past, it waits the backoff alone. Every other
// status but 200 and 204 ends [Client.Stream] with a *[StatusError],
// 500, 502 and 504 included, as EventSource ends: the client cannot tell
// whether they will pass.
type Client struct {
	url        string
	hc         *http.Client
	header     http.Header // without Host: that is host
	host       string      // the Request.Host; "": the URL's host
	maxBackoff time.Duration
	idle       time.Duration  // < 0: no idle timeout
	headers    time.Duration  // < 0: no bound on the wait for a response's headers
	optErr     error          // ClientOptions refused: Stream returns it
	rand       func() float64 // the jitter's draw, in [0, 1)
	seed       maphash.Seed   // of the digests that tell a replay

	mu       sync.Mutex
	lastID   string
	retry    time.Duration
	connects int
}

// NewClient returns a Client for url, an http:// or https:// URL, or one
// of a scheme that ClientOptions.HTTPClient's Transport serves (one
// registered with http.Transport.RegisterProtocol, as for a Unix socket,
// or the host's own RoundTripper). A URL that does not parse makes every
// [Client.Stream] return an error wrapping [ErrInvalidOptions] that says
// why, without connecting; so does a URL that net/http refuses to ask
// (of a scheme the Transport does not serve, none, as
// "localhost:8080/runs/r1", whose scheme is "localhost", or without a
// host), at its first request, which the Transport refuses before it
// connects. Options it refuses (a Retry,
// MaxBackoff, IdleTimeout or HeaderTimeout below 1ms but positive, a
// Header with Last-Event-ID, one that net/http cannot send, one with a
// header net/http manages itself, or an Accept-Encoding, Host or
// User-Agent it would not handle as given) make every [Client.Stream] return an error
// wrapping [ErrInvalidOptions], without connecting. The URL's userinfo
// (http://user:pass@host/), if any, goes as basic credentials (unless
// ClientOptions.Header has an Authorization) to the URL's origin alone,
// as the Header does: with each redirect within it, relative or
// absolute, and with none to another origin, nor back from it.
func NewClient(url string, opts ClientOptions) *Client {
	c := &Client{url: url, hc: opts.HTTPClient, header: make(http.Header, len(opts.Header)), lastID: opts.LastEventID, retry: opts.Retry,
		maxBackoff: opts.MaxBackoff, idle: opts.IdleTimeout, headers: opts.HeaderTimeout, rand: rand.Float64, seed: maphash.MakeSeed()}
	for _, o := range []struct {
		name    string
		value   time.Duration
		example string // the option with its unit
		other   string // what else is allowed
	}{
		{"Retry", opts.Retry, "3 * time.Second, not 3", "0 for the default"},
		{"MaxBackoff", opts.MaxBackoff, "30 * time.Second, not 30", "0 for the default"},
		{"IdleTimeout", opts.IdleTimeout, "45 * time.Second, not 45", "a negative one for no timeout"},
		{"HeaderTimeout", opts.HeaderTimeout, "90 * time.Second, not 90", "a negative one for no timeout"},
	} {
		// Most likely a number without its unit: a retry of MinRetry
		// where seconds were meant, a backoff that never grows past
		// it, every stream dropped at once.
		if o.value > 0 && o.value < time.Millisecond {
			c.optErr = fmt.Errorf("%w: %s %v is below 1ms; give a duration with its unit (%s), or %s",
				ErrInvalidOptions, o.name, o.value, o.example, o.other)
			break
		}
	}
	for _, k := range slices.Sorted(maps.Keys(opts.Header)) {
		// One key as net/http spells it, so that the Client's own Accept
		// and Cache-Control replace the Header's, however spelt, rather
		// than go out beside them.
		ck := http.CanonicalHeaderKey(k)
		c.header[ck] = append(c.header[ck], opts.Header[k]...)
	}
	// net/http sends Request.Host, and ignores a Host in Header.
	hosts := c.header["Host"]
	delete(c.header, "Host")
	// The Client's own replace them: what is left in c.header is the
	// host's alone, which a redirect to another origin drops.
	delete(c.header, "Accept")
	delete(c.header, "Cache-Control")
	if len(hosts) == 1 {
		c.host = hosts[0] // checked below
	}
	if c.optErr == nil {
		for _, k := range slices.Sorted(maps.Keys(opts.Header)) {
			// Sent beside the Client's own, the server would pick one of
			// the two: a resume from the wrong event, or a start over.
			if strings.EqualFold(k, "Last-Event-ID") {
				c.optErr = fmt.Errorf("%w: Header %q is the Last-Event-ID, which the Client sends itself; "+
					"set ClientOptions.LastEventID to resume after an event", ErrInvalidOptions, k)
				break
			}
			// net/http would refuse every request: the Client, taking
			// that for a network error, would reconnect for ever.
			if !headerToken(k) {
				c.optErr = fmt.Errorf("%w: Header key %q is not an HTTP token, which net/http refuses to send; "+
					"a key is letters, digits and any of !#$%%&'*+-.^_`|~", ErrInvalidOptions, k)
				break
			}
			if slices.ContainsFunc(opts.Header[k], func(v string) bool { return !headerSafe(v) }) {
				c.optErr = fmt.Errorf("%w: Header %q has a value with a control character (a line break, NUL), which net/http refuses to send; "+
					"only a tab is allowed", ErrInvalidOptions, k)
				break
			}
			// net/http manages these itself: it drops them without a
			// word, or over HTTP/2 refuses every request, which the
			// Client would take for a network error.
			switch ck := http.CanonicalHeaderKey(k); ck {
			case "Te":
				// "trailers", the one TE that HTTP/2 allows, goes out as
				// given; any other asks for a transfer coding that
				// net/http cannot read (over HTTP/2, that a server refuses).
				if v := c.header[ck]; len(v) != 1 || v[0] != "trailers" {
					c.optErr = fmt.Errorf("%w: Header %q asks for a transfer coding, which net/http cannot read (over HTTP/2, a server refuses it): "+
						`leave it out, or give the one value "trailers"`, ErrInvalidOptions, k)
				}
			case "Connection", "Keep-Alive", "Proxy-Connection", "Upgrade", "Transfer-Encoding", "Content-Length", "Trailer":
				c.optErr = fmt.Errorf("%w: Header %q is the connection's or a body's, which net/http manages itself, dropping or refusing it "+
					"(over HTTP/2, with every request): leave it out", ErrInvalidOptions, k)
			case "Accept-Encoding":
				// With the request's own, net/http leaves a compressed
				// stream compressed, which the Decoder cannot read.
				if slices.ContainsFunc(opts.Header[k], func(v string) bool { return !strings.EqualFold(strings.TrimSpace(v), "identity") }) {
					c.optErr = fmt.Errorf("%w: Header %q asks for a compressed stream, which net/http would then leave compressed for the Client to read; "+
						`leave it out (net/http asks for gzip, and decodes it, itself), or give "identity"`, ErrInvalidOptions, k)
				}
			case "User-Agent":
				if n := len(c.header[ck]); n > 1 {
					c.optErr = fmt.Errorf("%w: Header %q has %d values (over every spelling of its key); net/http sends the first alone: give one",
						ErrInvalidOptions, ck, n)
				}
			}
			if c.optErr != nil {
				break
			}
			// The Host must be one that net/http sends as it is.
			if ck := http.CanonicalHeaderKey(k); ck == "Host" {
				if n := len(hosts); n != 1 {
					c.optErr = fmt.Errorf("%w: Header %q has %d values (over every spelling of its key); "+
						"a request has one host: give one, or leave Host out to send the URL's", ErrInvalidOptions, ck, n)
					break
				}
				if h := hosts[0]; h == "" {
					c.optErr = fmt.Errorf("%w: Header %q is empty; give the host to ask for, or leave Host out to send the URL's",
						ErrInvalidOptions, k)
					break
				} else if !hostSafe(h) {
					// net/http would send an empty Host in its place,
					// without an error (over HTTP/2, refuse every request).
					c.optErr = fmt.Errorf("%w: Header %q value %q is not a host net/http sends; a host is letters, digits and any of "+
						"!$%%&'()*+,-.:;=[]_~ (an international name in its ASCII form, xn--)", ErrInvalidOptions, k, h)
					break
				}
			}
		}
	}
	if c.optErr == nil {
		c.optErr = checkParse(url)
	}
	if c.hc == nil {
		c.hc = http.DefaultClient
	}
	if c.retry <= 0 {
		c.retry = 3 * time.Second
	}
	if c.maxBackoff <= 0 {
		c.maxBackoff = defaultMaxBackoff
	}
	if c.idle == 0 {
		c.idle = defaultIdleTimeout
	}
	if c.headers == 0 {
		c.headers = defaultHeaderTimeout
	}
	return c
}

// LastEventID returns the stream's last event ID: what the next
// connection, or the next [Client.Stream] call, sends as Last-Event-ID.
// It counts an event only once Stream's fn has returned nil for it: after
// fn returned an error for an event, it is the last event ID as it was
// before that event, so that resuming from it (by calling Stream again,
// or with a new Client whose ClientOptions.LastEventID it is) delivers
// that event again. An event without an id field keeps the ID before it,
// as in a browser. It is safe to call while Stream runs.
func (c *Client) LastEventID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastID
}

// Connects returns how many responses the client has opened a stream on.
// It is safe to call while Stream runs.
func (c *Client) Connects() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.connects
}

// Stream connects and calls fn for each message, reconnecting when the
// connection fails, ends or stays silent for ClientOptions.IdleTimeout,
// or the server answers 503 or 429 (after the
// delay described at [Client]; a cancelled ctx ends the wait at once),
// until ctx ends (it returns context.Cause(ctx)), fn returns an error (it
// returns that error), or the server answers 204 No Content (it returns
// nil). An event fn returned an error for is not taken: [Client.LastEventID]
// stays before it, and the next Stream delivers it again. To stop right
// after an event that fn has taken, cancel ctx from fn, with a cause for
// Stream to return, and return nil: once ctx is done, fn is not called
// again, even for an event already read. Any other response than 200
// with Content-Type text/event-stream, 204, 503 or 429 ends it with a
// *[StatusError], no response headers within ClientOptions.HeaderTimeout
// with an error wrapping [ErrHeaderTimeout], a redirect that the
// HTTPClient's CheckRedirect refuses with an error wrapping its error,
// one that net/http cannot follow (see ClientOptions.HTTPClient) with an
// error wrapping net/http's, an event over
// [MaxEventSize] with [ErrTooLarge], and a
// last event ID (the server's, or ClientOptions.LastEventID) with a
// control character, which an HTTP header cannot carry, with an error
// wrapping [ErrBadLastEventID] when it would be sent. Options that
// [NewClient] refused end it at once, with an error wrapping
// [ErrInvalidOptions], and so does a URL that does not parse or that
// net/http refuses to ask (see [NewClient]), with an error saying so.
func (c *Client) Stream(ctx context.Context, fn func(Message) error) error {
	if c.optErr != nil {
		return c.optErr
	}
	fails := 0 // consecutive connections that failed or ended without an event
	var last replay
	for {
		healthy, done, err := c.connect(ctx, fn, &last)
		if done || ctx.Err() != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			return err
		}
		if healthy {
			fails = 0
		} else {
			fails++
		}
		c.mu.Lock()
		base := c.retry
		c.mu.Unlock()
		u := c.rand()
		wait := reconnectDelay(base, c.maxBackoff, fails, u)
		if se := (*StatusError)(nil); errors.As(err, &se) && se.RetryAfter > 0 {
			// A 503 or a 429 (the others are done): at least what it asked.
			wait = max(wait, spread(min(se.RetryAfter, c.maxBackoff), u))
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return context.Cause(ctx)
		}
	}
}

// Events is [Client.Stream] with each message's data decoded as a
// progress.Event. Only messages of type "message" are events, as only
// they reach a page's onmessage: a message of another type, such as the
// heartbeats of a [Handler] with HandlerOptions.KeepAliveEvent, is
// skipped. A message that is not an event (data that is not a JSON
// object, such as "null" or malformed JSON, or an object that is not in
// the event's documented form) ends it with an error wrapping
// progress.ErrInvalidJSON, and is not taken: [Client.LastEventID] stays
// before it, as for an event fn returns an error for.
func (c *Client) Events(ctx context.Context, fn func(progress.Event) error) error {
	return c.Stream(ctx, func(m Message) error {
		if m.Type != "message" {
			return nil // a heartbeat, or an event of the host's own
		}
		e, err := decodeEvent(m.Data)
		if err != nil {
			return fmt.Errorf("sse: event id %q: %w", m.ID, err)
		}
		return fn(e)
	})
}

// Follow is [Client.Events] until the run ends: it returns nil right
// after fn has taken the run's final event (run.finished, run.failed or
// run.cancelled), without waiting for the server to close the stream and
// refuse the reconnection. [Client.LastEventID] is then the final
// event's. A nil error means that alone; every other ending is an error:
//
//   - The server answered 204 No Content before the final event (a run
//     unknown, expired, or with no event within the handler's
//     EmptyRunTimeout; a last event ID at or past the run's end): an
//     error wrapping [ErrNoFinalEvent], where [Client.Stream] and
//     [Client.Events] return nil.
//   - The server refused the request: a *[StatusError], which errors.Is
//     matches with [ErrUnauthorized] for a 401, [ErrForbidden] for a
//     403 and [ErrNotFound] for a 404 (a [Handler]'s Authorize refusing
//     an unknown run); a 400 is a [Handler]'s refusal of the last event
//     ID, and any other status but 503 and 429 (which the client waits
//     out) ends it too.
//   - The server took the request and sent no response headers within
//     ClientOptions.HeaderTimeout: an error wrapping [ErrHeaderTimeout].
//   - ClientOptions.HTTPClient's CheckRedirect refused a redirect (as
//     net/http's default refuses the 10th in a row): an error wrapping
//     its error. A redirect that net/http cannot follow (a Location that
//     does not parse, a URL it cannot ask): an error wrapping net/http's.
//   - fn's error, ctx's cause, and the errors of Events: an event over
//     [MaxEventSize] ([ErrTooLarge]), a message that is no event
//     (progress.ErrInvalidJSON), a last event ID no header can carry
//     ([ErrBadLastEventID]), refused options ([ErrInvalidOptions]).
//
// A stream that ends, or drops, before the final event is no ending:
// Follow reconnects with the last event ID, as Stream does, and the
// answer decides (more events, a 204, a refusal), so that a backend
// waiting for a run bounds the wait with ctx.
func (c *Client) Follow(ctx context.Context, fn func(progress.Event) error) error {
	err := c.Events(ctx, func(e progress.Event) error {
		if err := fn(e); err != nil {
			return err
		}
		if e.Type.Final() {
			return errFollowEnd
		}
		return nil
	})
	switch {
	case errors.Is(err, errFollowEnd):
		return nil
	case err == nil:
		// Stream's nil: a 204, before fn took a final event.
		if id := c.LastEventID(); id != "" {
			return fmt.Errorf("%w: the server answered 204 No Content after event id %q: it has no event after it "+
				"(the run's final event is gone, or was at or before that ID)", ErrNoFinalEvent, clip(id, 64))
		}
		return fmt.Errorf("%w: the server answered 204 No Content before any event: it has none of the run "+
			"(a run ID it does not know, a run expired, or one that had no event within the handler's EmptyRunTimeout)",
			ErrNoFinalEvent)
	}
	return err
}

// reconnectDelay returns the wait before the next connection, with base
// raised to MinRetry: after a healthy connection (fails is 0), a draw from
// [base, 1.5·base), not capped by maxBackoff; after fails unhealthy
// connections in a row, a draw from [d/2, d) with d = base·2^fails capped
// at max(maxBackoff, base), and at least base. u, in [0, 1), places the
// draw.
func reconnectDelay(base, maxBackoff time.Duration, fails int, u float64) time.Duration {
	base = max(base, MinRetry)
	if fails <= 0 {
		return spread(base, u)
	}
	d := max(maxBackoff, base)
	if fails < 63 && base <= d>>fails {
		d = base << fails // no overflow: at most d
	}
	return max(d/2+time.Duration(u*float64(d-d/2)), base)
}

// spread returns d plus a random extra of up to half of d, placed by u in
// [0, 1): a draw from [d, 1.5·d), or the largest Duration if that is
// smaller.
func spread(d time.Duration, u float64) time.Duration {
	half := d / 2
	extra := time.Duration(u * float64(half))
	if extra >= half && half > 0 {
		extra = half - 1 // u*half rounded up, for a large half
	}
	if d > math.MaxInt64-extra {
		return math.MaxInt64
	}
	return d + extra
}

// retryAfter parses h's Retry-After: delay-seconds (a number too large
// for a Duration is the largest one), or an HTTP-date less h's Date, or
// less now if h has no valid Date. It returns 0 for a header absent or
// unparsable, or a date not after the Date.
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v != "" && strings.Trim(v, "0123456789") == "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n > math.MaxInt64/int64(time.Second) {
			return math.MaxInt64 // all digits: ParseInt fails only on range
		}
		return time.Duration(n) * time.Second
	}
	at, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	if date, err := http.ParseTime(h.Get("Date")); err == nil {
		now = date
	}
	return max(at.Sub(now), 0)
}

// ErrNoFinalEvent ends [Client.Follow] when the server answered 204 No
// Content before the run's final event reached the callback: it has no
// event after the client's last event ID, so none will come. From a
// [Handler], that is a run of which its source holds no event (a run ID
// it does not know, a run expired, or one not started within
// [HandlerOptions].EmptyRunTimeout), or a last event ID at or past the
// run's end (CloseOnFinal), its final event already taken or gone. The
// run's outcome is then not in its events: a backend looks at its record
// (executor.RunStore). The error says whether the 204 came before any
// event or after which event ID.
var ErrNoFinalEvent = errors.New("sse: no final event")

// errFollowEnd ends Follow's stream at the final event, which fn has
// taken (connect counts it in the last event ID); it never leaves Follow.
var errFollowEnd = errors.New("sse: final event")

// decodeEvent decodes a message's data as an event. It calls
// Event.UnmarshalJSON itself, because json.Unmarshal would report bad
// syntax with a bare *json.SyntaxError before calling it, and it refuses
// data that is not an object, which UnmarshalJSON would take for an empty
// event ("null"), as it refuses an object without a run ID or a sequence
// number.
func decodeEvent(data string) (progress.Event, error) {
	var e progress.Event
	b := []byte(data)
	if t := bytes.TrimLeft(b, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return e, fmt.Errorf("%w: data %q is not a JSON object; an event is one", progress.ErrInvalidJSON, clip(data, 64))
	}
	if err := e.UnmarshalJSON(b); err != nil {
		return progress.Event{}, err
	}
	// Keys are optional on the wire, but every event has a run and a
	// sequence number: an object without them ("{}") is not one.
	if err := e.Validate(); err != nil {
		return progress.Event{}, fmt.Errorf("%w: %w", progress.ErrInvalidJSON, err)
	}
	return e, nil
}

// checkURL returns an error wrapping ErrInvalidOptions that says what to
// give for u, which net/http refused to ask (see netHTTPRefusal): of a
// scheme but http and https, which the Transport does not serve, none,
// or without a host; nil if u is none of these.
func checkURL(u string) error {
	parsed, err := url.Parse(u)
	switch {
	case err != nil:
		return nil
	case !strings.EqualFold(parsed.Scheme, "http") && !strings.EqualFold(parsed.Scheme, "https"):
		return fmt.Errorf("%w: URL %q has the scheme %q, which the HTTPClient's Transport does not serve; "+
			"give an http:// or https:// URL, or a Transport that serves the scheme", ErrInvalidOptions, clip(redact(u), 128), parsed.Scheme)
	case parsed.Host == "":
		return fmt.Errorf("%w: URL %q has no host; give the server's, as in http://host:port/path", ErrInvalidOptions, clip(redact(u), 128))
	}
	return nil
}

// checkParse returns an error wrapping ErrInvalidOptions that says why u
// does not parse as a URL (net/http would refuse every request of it),
// nil if it parses.
func checkParse(u string) error {
	_, err := url.Parse(u)
	if err == nil {
		return nil
	}
	if ue := (*url.Error)(nil); errors.As(err, &ue) {
		err = ue.Err // without url.Parse's own quote of u
	}
	reason := err.Error()
	if i, j, beyond := passwordSpan(u); j > i {
		// net/url quotes what it could not read (a port, an escape),
		// which may be the password's start.
		reason = maskQuoted(reason, u[i-1:j])
		if beyond {
			reason += " (in a password, '/', '?', '#' and '@' must be percent-encoded, as url.UserPassword encodes them)"
		}
	}
	return fmt.Errorf("%w: URL %q does not parse: %s; give an absolute URL, as in http://host:port/path",
		ErrInvalidOptions, clip(redact(u), 128), reason)
}

// maskQuoted returns reason with each quoted string (as %q writes one)
// that secret holds masked: "xxxxx", after a leading ':' kept.
func maskQuoted(reason, secret string) string {
	var b strings.Builder
	for {
		k := strings.IndexByte(reason, '"')
		if k < 0 {
			break
		}
		q, err := strconv.QuotedPrefix(reason[k:])
		if err != nil {
			break
		}
		b.WriteString(reason[:k])
		reason = reason[k+len(q):]
		v, err := strconv.Unquote(q)
		switch {
		case err != nil || v == "" || !strings.Contains(secret, v):
			b.WriteString(q)
		case strings.HasPrefix(v, ":"):
			b.WriteString(`":xxxxx"`)
		default:
			b.WriteString(`"xxxxx"`)
		}
	}
	b.WriteString(reason)
	return b.String()
}

// redact returns u with its password, if it has one, masked as
// url.URL.Redacted masks it ("xxxxx"), so that an error that quotes u
// does not hold it: for a URL that parses, as Redacted writes it; for one
// that does not, the text that passwordSpan finds masked in place. A URL
// without a password is returned as it is.
func redact(u string) string {
	if parsed, err := url.Parse(u); err == nil {
		if _, ok := parsed.User.Password(); ok {
			return parsed.Redacted()
		}
		return u
	}
	if i, j, _ := passwordSpan(u); j > i {
		return u[:i] + "xxxxx" + u[j:]
	}
	return u
}

// passwordSpan returns where the password of u, a URL that url.Parse
// refuses, is: u[i:j], j > i, or j == i if u has none. It is the text
// between the authority's first ':' and its last '@' (where url.Parse
// would look for them); or, if the authority has no '@' but one comes
// later, between the authority's first ':' and the last '@' of u: a
// password with a '/', '?' or '#' left unencoded (a base64 secret, say)
// ends the authority before its '@', and url.Parse takes its start for
// a port. beyond reports that second case, in which a URL without a
// password, but with a port that does not parse and an '@' in its path
// or query, has more than its port masked: better than a password shown.
func passwordSpan(u string) (i, j int, beyond bool) {
	start := strings.Index(u, "//")
	if start < 0 || strings.ContainsAny(u[:start], "/?#") {
		return 0, 0, false // no authority
	}
	start += 2
	end := len(u)
	if k := strings.IndexAny(u[start:], "/?#"); k >= 0 {
		end = start + k
	}
	colon := strings.IndexByte(u[start:end], ':')
	at := strings.LastIndexByte(u[start:end], '@')
	if at < 0 {
		at = strings.LastIndexByte(u[end:], '@')
		if at < 0 {
			return 0, 0, false
		}
		at += end - start
		beyond = true
	}
	if colon < 0 || colon > at {
		return 0, 0, false // no password
	}
	return start + colon + 1, start + at, beyond
}

// headerSafe reports whether net/http sends s as a header value: no
// control character but tab.
func headerSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// hostSafe reports whether net/http sends s as a request's Host as it
// is: it sends an empty Host (over HTTP/2, no request) in place of one
// with any other byte than letters, digits and !$%&'()*+,-.:;=[]_~ (once
// an international name is in its ASCII form, which is asked of the host
// here).
func hostSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!$%&'()*+,-.:;=[]_~", c) >= 0) {
			return false
		}
	}
	return true
}

// headerToken reports whether net/http sends s as a header key: an HTTP
// token, one or more of letters, digits and !#$%&'*+-.^_`|~.
func headerToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// clip shortens s to at most n bytes, marking the cut with "...".
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "..."
}

// connect runs one connection. done reports that the stream must not be
// reconnected; err is then what Stream returns. A 503 or a 429 is not
// done: its err is the *StatusError whose RetryAfter Stream waits out.
// healthy reports that the connection delivered events (messages but
// heartbeats) other than those of the last connection that delivered
// any, noted in last, or had a byte arriving maxBackoff or more after it
// opened, fn's time left out, which resets the backoff. A stream silent for c.idle is ended as a dropped connection.
func (c *Client) connect(ctx context.Context, fn func(Message) error, last *replay) (healthy, done bool, err error) {
	connCtx, drop := context.WithCancelCause(ctx)
	defer drop(nil)
	req, err := http.NewRequestWithContext(connCtx, http.MethodGet, c.url, nil)
	if err != nil {
		return false, true, fmt.Errorf("sse: %w", err) // a URL that does not parse is refused in NewClient
	}
	for k, v := range c.header {
		req.Header[k] = append([]string(nil), v...)
	}
	if c.host != "" {
		req.Host = c.host
	}
	// No other request is to take the stream's connection, during the
	// stream or after it: over HTTP/2, dropping a silent stream resets
	// only the stream, and the reconnection would go out on the same
	// connection, dead as it may be, and wait for its headers for good.
	// Over HTTP/1.1 a stream holds its connection anyway.
	req.Close = true
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	lastID := c.LastEventID()
	if !headerSafe(lastID) {
		// net/http refuses to send it, each time: reconnecting would
		// fail forever without a word.
		return false, true, fmt.Errorf("%w %q: it has a control character, which a Last-Event-ID header cannot carry, so the stream cannot resume after it",
			ErrBadLastEventID, clip(lastID, 64))
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	redirected := false // set by following's CheckRedirect, in Do
	resp, err := c.do(c.following(&redirected), req, drop)
	if errors.Is(context.Cause(connCtx), errHeaderTimeout) && ctx.Err() == nil {
		if resp != nil {
			resp.Body.Close() // came as the bound passed: too late
		}
		return false, true, fmt.Errorf("%w: the server took the request and sent no response headers within %v (ClientOptions.HeaderTimeout)",
			ErrHeaderTimeout, c.headers)
	}
	if rr := (*redirectRefused)(nil); errors.As(err, &rr) {
		return false, true, fmt.Errorf("sse: %w", err) // the HTTPClient's CheckRedirect: not to be asked again
	}
	if what := netHTTPRefusal(err); what == "URL" && !redirected {
		// The Client's URL, which net/http refuses each time.
		if err := checkURL(c.url); err != nil {
			return false, true, err
		}
		return false, true, fmt.Errorf("%w: net/http refuses to ask the URL (give an http:// or https:// URL with a host, "+
			"or one of a scheme that the HTTPClient's Transport serves): %w", ErrInvalidOptions, err)
	} else if what != "" {
		// The server would redirect there again, and net/http refuse it.
		return false, true, fmt.Errorf("sse: the server redirected to a URL that net/http cannot follow "+
			"(an http:// or https:// URL with a host, or one of a scheme that the HTTPClient's Transport serves): %w", err)
	}
	if err != nil {
		return false, false, err // a network error: reconnect
	}
	defer resp.Body.Close()
	var body io.Reader = resp.Body
	if c.idle > 0 {
		// Cancelling the request's context ends a Read that waits: that
		// of a stream, or of a refusal's body that stalls.
		t := time.AfterFunc(c.idle, func() { drop(errIdle) })
		t.Stop() // armed by each Read
		defer t.Stop()
		body = &idleReader{r: resp.Body, timer: t, idle: c.idle}
	}
	ct := resp.Header.Get("Content-Type")
	switch mediaType, _, _ := mime.ParseMediaType(ct); {
	case resp.StatusCode == http.StatusNoContent:
		return false, true, nil
	case resp.StatusCode != http.StatusOK || mediaType != "text/event-stream":
		text, _ := io.ReadAll(io.LimitReader(body, 1024))
		passing := resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusTooManyRequests
		return false, !passing, &StatusError{StatusCode: resp.StatusCode, ContentType: ct, Body: string(text),
			RetryAfter: retryAfter(resp.Header, time.Now())}
	}
	c.mu.Lock()
	c.connects++
	c.mu.Unlock()
	delivered := false
	var got maphash.Hash // the events delivered, to tell a replay
	got.SetSeed(c.seed)
	tracked := &lastByteReader{r: body}
	d := NewDecoder(tracked)
	d.idBuf, d.lastID = lastID, lastID
	for {
		m, err := d.Next()
		if retry, ok := d.Retry(); ok {
			c.mu.Lock()
			c.retry = min(retry, c.maxBackoff) // the host's bound, as on a Retry-After
			c.mu.Unlock()
		}
		if err != nil {
			// Every dispatch so far was of a message fn took, or of no
			// message (an id field with no data).
			c.setLastID(d.LastEventID())
		}
		if errors.Is(err, ErrTooLarge) {
			return delivered, true, err // the server would send it again
		}
		if err != nil {
			// The connection ended, or went silent: reconnect.
			if errors.Is(context.Cause(connCtx), errIdle) && ctx.Err() == nil {
				err = fmt.Errorf("%w after %v: %w", errIdle, c.idle, err)
			}
			// Up for maxBackoff counts to the last byte: not the silence
			// that IdleTimeout cut, which is no sign of a live server,
			// nor the callback's time.
			return last.fresh(delivered, got.Sum64()) || tracked.lastFor >= c.maxBackoff, false, err
		}
		if ctx.Err() != nil {
			// Cancelled, maybe by fn for the last event: no event after.
			return delivered, true, context.Cause(ctx)
		}
		// Progress: an event. A heartbeat (as a Handler's
		// KeepAliveEvent) is none.
		if !heartbeat(m, d.beforeID) {
			delivered = true
			writeEvent(&got, m)
		}
		if err := fn(m); err != nil {
			if errors.Is(err, errFollowEnd) {
				c.setLastID(m.ID) // taken
			} else {
				c.setLastID(d.beforeID) // not taken: the next Stream delivers it again
			}
			return true, true, err
		}
		c.setLastID(m.ID)
	}
}

// replay is the digest of the events of the last connection of a Stream
// that delivered any, to tell a connection that delivers the very same
// ones (a server that replays an id-less event on each connection, or
// its events from the start, ignoring Last-Event-ID): no progress.
type replay struct {
	sum uint64
	ok  bool // a connection delivered events
}

// fresh reports whether a connection that delivered events (if delivered)
// with the digest sum made progress: it delivered events, and not those
// of the last connection that delivered any. It then notes sum.
func (r *replay) fresh(delivered bool, sum uint64) bool {
	if !delivered {
		return false
	}
	again := r.ok && r.sum == sum
	r.sum, r.ok = sum, true
	return !again
}

// writeEvent adds m's type, id and data to h, each after its length, so
// that no two sequences of messages write the same bytes.
func writeEvent(h *maphash.Hash, m Message) {
	for _, f := range [...]string{m.Type, m.ID, m.Data} {
		var n [binary.MaxVarintLen64]byte
		h.Write(binary.AppendUvarint(n[:0], uint64(len(f))))
		h.WriteString(f)
	}
}

// heartbeat reports whether m, which followed the last event ID before,
// is a heartbeat rather than an event: a message of another type than
// "message" that carries nothing (data "{}", as a Handler's
// KeepAliveEvent writes, or empty) and leaves the last event ID as it
// was. An event of a host's own type with data is progress, with an id or
// without.
func heartbeat(m Message, before string) bool {
	return m.Type != "message" && m.ID == before && (m.Data == "{}" || m.Data == "")
}

// errHeaderTimeout is the cause with which a request whose response's
// headers did not come within ClientOptions.HeaderTimeout is dropped.
var errHeaderTimeout = errors.New("sse: no response headers")

// do makes req, dropping it (with drop, which cancels its context) if
// its response's headers do not come within c.headers: then the cause of
// req's context is errHeaderTimeout, also if they came just as the
// bound passed.
func (c *Client) do(hc *http.Client, req *http.Request, drop context.CancelCauseFunc) (*http.Response, error) {
	if c.headers < 0 {
		return hc.Do(req)
	}
	var mu sync.Mutex
	answered := false
	t := time.AfterFunc(c.headers, func() {
		mu.Lock()
		defer mu.Unlock()
		if !answered {
			drop(errHeaderTimeout)
		}
	})
	defer t.Stop()
	resp, err := hc.Do(req)
	mu.Lock()
	answered = true
	mu.Unlock()
	return resp, err
}

// following returns a copy of c's HTTPClient whose CheckRedirect makes
// each redirected request as c makes its first: with Request.Close set,
// which net/http leaves out, so that no other request takes a stream's
// connection after a redirect either; and, with a Host in c's Header,
// with that Host if it goes to the first request's origin (net/http
// keeps it over a relative redirect alone), and none if it goes to
// another (where the Host would be wrong); and, once the chain has left
// the first request's origin, without any key of c's Header, the host's
// credentials for that origin (see homeChain), and before that with the
// first request's userinfo, if its URL has none of its own; and without
// a Referer if it goes to another origin than the request that
// redirected (net/http's is that request's whole URL). It then
// calls the HTTPClient's own CheckRedirect (net/http's default if nil),
// which has the last word. It sets *redirected once a redirect comes, so that a
// refusal by net/http tells the redirect's URL from the Client's. A copy
// for each connection leaves the host's HTTPClient as it was, and takes
// any change the host made to it since.
func (c *Client) following(redirected *bool) *http.Client {
	hc := *c.hc
	check := c.hc.CheckRedirect
	hc.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		*redirected = true
		req.Close = true
		if !homeChain(req, via) {
			// The host's headers are its credentials for its URL's
			// origin: none goes to another, nor back from it.
			for k := range c.header {
				delete(req.Header, k)
			}
		} else if req.URL.User == nil {
			// net/http carries the URL's userinfo over a relative
			// redirect alone; within the origin, an absolute one is
			// the same server's too.
			req.URL.User = via[0].URL.User
		}
		if !sameOrigin(req.URL, via[len(via)-1].URL) {
			// net/http's Referer is the whole URL that redirected: its
			// path and query (a token, say) are not another origin's.
			req.Header.Del("Referer")
		}
		switch {
		case c.host == "":
		case sameOrigin(req.URL, via[0].URL):
			req.Host = c.host
		default:
			req.Host = "" // the URL's
		}
		var err error
		if check != nil {
			err = check(req, via)
		} else if len(via) >= 10 {
			err = errors.New("stopped after 10 redirects") // net/http's default
		}
		if err == nil || err == http.ErrUseLastResponse { //nolint:errorlint // net/http compares so
			return err
		}
		return &redirectRefused{err}
	}
	return &hc
}

// homeChain reports whether req, redirected from via, and every request
// of via stay on the first request's origin: a chain that has left it
// once, to come back, is not its own any more (its server chose where
// it goes).
func homeChain(req *http.Request, via []*http.Request) bool {
	for _, r := range via[1:] {
		if !sameOrigin(r.URL, via[0].URL) {
			return false
		}
	}
	return sameOrigin(req.URL, via[0].URL)
}

// netHTTPRefusal tells whether err, from http.Client.Do, is net/http's
// refusal of a request, which no network error causes and every new
// request meets again: "Location" for a redirect's Location that does
// not parse; "URL" for a URL of a scheme that the Transport does not
// serve (http.Transport serves http, https and the schemes registered
// with its RegisterProtocol), or without a host; "" for any other
// error. net/http has no sentinel for them: its messages tell.
func netHTTPRefusal(err error) string {
	ue := (*url.Error)(nil)
	if !errors.As(err, &ue) || ue.Err == nil {
		return ""
	}
	switch msg := ue.Err.Error(); {
	case strings.HasPrefix(msg, "failed to parse Location header "):
		return "Location"
	case strings.HasPrefix(msg, "unsupported protocol scheme "), msg == "http: no Host in request URL":
		return "URL"
	}
	return ""
}

// redirectRefused is the error of an HTTPClient's CheckRedirect, which
// ends Stream, where a network error is reconnected: the same request
// would be refused again.
type redirectRefused struct{ err error }

func (e *redirectRefused) Error() string { return "redirect refused: " + e.err.Error() }
func (e *redirectRefused) Unwrap() error { return e.err }

// sameOrigin reports whether a and b have the same scheme, host and port,
// a port left out being the scheme's default.
func sameOrigin(a, b *url.URL) bool {
	port := func(u *url.URL) string {
		if p := u.Port(); p != "" {
			return p
		}
		switch strings.ToLower(u.Scheme) {
		case "http":
			return "80"
		case "https":
			return "443"
		}
		return ""
	}
	return strings.EqualFold(a.Scheme, b.Scheme) && strings.EqualFold(a.Hostname(), b.Hostname()) && port(a) == port(b)
}

// errIdle is the cause with which a connection whose stream stayed silent
// for ClientOptions.IdleTimeout is dropped.
var errIdle = errors.New("sse: no byte of the stream")

// idleReader is a stream's body whose Reads are each bounded by idle: a
// Read that waits longer for a byte fires timer, which drops the
// connection, so that the Read returns an error. Only the time spent in
// Read counts, not the time between Reads that the callback takes.
type idleReader struct {
	r     io.Reader
	timer *time.Timer
	idle  time.Duration
}

func (r *idleReader) Read(p []byte) (int, error) {
	r.timer.Reset(r.idle)
	n, err := r.r.Read(p)
	r.timer.Stop()
	return n, err
}

// lastByteReader is a stream's body that records when the last byte came,
// in the time spent in its Reads: the time between them, which the
// callback takes, does not count, as a byte read after a slow callback
// may have come long before.
type lastByteReader struct {
	r       io.Reader
	waited  time.Duration // in Reads so far
	lastFor time.Duration // waited when a byte last came
}

func (r *lastByteReader) Read(p []byte) (int, error) {
	start := time.Now()
	n, err := r.r.Read(p)
	r.waited += time.Since(start)
	if n > 0 {
		r.lastFor = r.waited
	}
	return n, err
}

// setLastID sets the last event ID that LastEventID returns.
func (c *Client) setLastID(id string) {
	c.mu.Lock()
	c.lastID = id
	c.mu.Unlock()
}
