package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// An idle keep-alive connection is closed by the service after
// idleTimeout, even one that never authenticated (each held a goroutine
// and a file descriptor for good); a header block over maxHeaderBytes is
// refused with 431; and an event stream, an active request however long
// it lasts, is not cut by the idle timeout.
func TestIdleConnectionsAreClosed(t *testing.T) {
	defer func(d time.Duration) { idleTimeout = d }(idleTimeout)
	idleTimeout = 100 * time.Millisecond
	h := startService(t, 100*time.Millisecond) // a run of 10 s has several nodes: it lasts longer than idleTimeout

	addr := strings.TrimPrefix(h.base, "http://")
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	fmt.Fprintf(c, "GET /runs/x HTTP/1.1\r\nHost: %s\r\n\r\n", addr) // no credentials
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	// A bound against a hang, far above idleTimeout: the service closes
	// the connection, and the read ends with EOF, not with the deadline.
	require.NoError(t, c.SetReadDeadline(time.Now().Add(30*time.Second)))
	_, err = br.ReadByte()
	assert.ErrorIs(t, err, io.EOF, "the idle keep-alive connection was left open")

	req, err := http.NewRequest("GET", h.base+"/runs/x", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("X-Big", strings.Repeat("a", 2*maxHeaderBytes))
	resp, err = h.hc.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusRequestHeaderFieldsTooLarge, resp.StatusCode, "a header block of %d bytes", 2*maxHeaderBytes)

	// An event stream is a request under way: read to its end on one
	// connection, no reconnection, it has every event of the run.
	var run started
	require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/idle/runs", `{"seconds": 10}`, &run))
	req, err = http.NewRequest("GET", h.base+run.Events, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err = h.hc.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err, "the event stream was cut")
	assert.Contains(t, string(body), `"type":"run.finished"`, "the stream ended before the run's final event")
	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, h.leaks)
}
