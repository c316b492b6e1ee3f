package sse

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/regengraph/regen/progress"
)

// StatusError is the error of a [Client] whose server answered neither
// 200 with a text/event-stream body nor 204. Like a browser's EventSource,
// the client does not reconnect after it.
type StatusError struct {
	// StatusCode is the response's status code.
	StatusCode int
	// ContentType is the response's Content-Type.
	ContentType string
	// Body is the start of the response body, at most 1 KiB.
	Body string
}

// Error reports the status, the content type and the start of the body.
func (e *StatusError) Error() string {
	return fmt.Sprintf("sse: server answered %d (%s): %s", e.StatusCode, e.ContentType, e.Body)
}

// ClientOptions configures a [Client]. The zero value gives the defaults.
type ClientOptions struct {
	// HTTPClient makes the requests; it must not have a Timeout, which
	// would cut the stream. Default: http.DefaultClient.
	HTTPClient *http.Client
	// Header is added to every request, for credentials for example.
	Header http.Header
	// LastEventID is sent as Last-Event-ID on the first request, to
	// resume after an event seen earlier. Default: "", from the start.
	LastEventID string
	// Retry is the pause before reconnecting, until the server sets one
	// with a retry field. Default: 3s.
	Retry time.Duration
}

// Client reads an event stream and reconnects as a browser's EventSource
// does: after a dropped connection it waits the retry delay and sends the
// last event ID it saw as Last-Event-ID, so that the server resumes right
// after it. It is meant for tests and for Go hosts; one Client follows
// one stream at a time.
type Client struct {
	url    string
	hc     *http.Client
	header http.Header

	mu       sync.Mutex
	lastID   string
	retry    time.Duration
	connects int
}

// NewClient returns a Client for url.
func NewClient(url string, opts ClientOptions) *Client {
	c := &Client{url: url, hc: opts.HTTPClient, header: opts.Header.Clone(), lastID: opts.LastEventID, retry: opts.Retry}
	if c.hc == nil {
		c.hc = http.DefaultClient
	}
	if c.retry <= 0 {
		c.retry = 3 * time.Second
	}
	return c
}

// LastEventID returns the last event ID seen: what the next connection
// sends as Last-Event-ID. It is safe to call while Stream runs.
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
// connection fails or ends, until ctx ends (it returns
// context.Cause(ctx)), fn returns an error (it returns that error), or the
// server answers 204 No Content (it returns nil). A response other than
// 200 with Content-Type text/event-stream ends it with a *[StatusError],
// an event over [MaxEventSize] with [ErrTooLarge], and a last event ID
// (the server's, or ClientOptions.LastEventID) with a control character,
// which an HTTP header cannot carry, with an error wrapping
// [ErrBadLastEventID] when it would be sent.
func (c *Client) Stream(ctx context.Context, fn func(Message) error) error {
	for {
		done, err := c.connect(ctx, fn)
		if done || ctx.Err() != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			return err
		}
		c.mu.Lock()
		delay := c.retry
		c.mu.Unlock()
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return context.Cause(ctx)
		}
	}
}

// Events is [Client.Stream] with each message's data decoded as a
// progress.Event. A message that is not an event (data that is not a
// JSON object, such as "null" or malformed JSON, or an object that is not
// in the event's documented form) ends it with an error wrapping
// progress.ErrInvalidJSON.
func (c *Client) Events(ctx context.Context, fn func(progress.Event) error) error {
	return c.Stream(ctx, func(m Message) error {
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
// refuse the reconnection.
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
	if errors.Is(err, errFollowEnd) {
		return nil
	}
	return err
}

// errFollowEnd ends Follow's stream at the final event; it never leaves it.
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

// clip shortens s to at most n bytes, marking the cut with "...".
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "..."
}

// connect runs one connection. done reports that the stream must not be
// reconnected; err is then what Stream returns.
func (c *Client) connect(ctx context.Context, fn func(Message) error) (done bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return true, fmt.Errorf("sse: %w", err)
	}
	for k, v := range c.header {
		req.Header[k] = append([]string(nil), v...)
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	lastID := c.LastEventID()
	if !headerSafe(lastID) {
		// net/http refuses to send it, each time: reconnecting would
		// fail forever without a word.
		return true, fmt.Errorf("%w %q: it has a control character, which a Last-Event-ID header cannot carry, so the stream cannot resume after it",
			ErrBadLastEventID, clip(lastID, 64))
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return false, err // a network error: reconnect
	}
	defer resp.Body.Close()
	ct := resp.Header.Get("Content-Type")
	switch mediaType, _, _ := mime.ParseMediaType(ct); {
	case resp.StatusCode == http.StatusNoContent:
		return true, nil
	case resp.StatusCode != http.StatusOK || mediaType != "text/event-stream":
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return true, &StatusError{StatusCode: resp.StatusCode, ContentType: ct, Body: string(body)}
	}
	c.mu.Lock()
	c.connects++
	c.mu.Unlock()
	d := NewDecoder(resp.Body)
	d.idBuf, d.lastID = lastID, lastID
	for {
		m, err := d.Next()
		if retry, ok := d.Retry(); ok {
			c.mu.Lock()
			c.retry = retry
			c.mu.Unlock()
		}
		c.mu.Lock()
		c.lastID = d.LastEventID()
		c.mu.Unlock()
		if errors.Is(err, ErrTooLarge) {
			return true, err // the server would send it again
		}
		if err != nil {
			return false, err // the connection ended: reconnect
		}
		if err := fn(m); err != nil {
			return true, err
		}
	}
}
