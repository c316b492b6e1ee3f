package sse_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/sinktest"
	"github.com/regengraph/regen/progress/sse"
)

// pipeListener hands an http.Server the server ends of net.Pipe
// connections: a write blocks until the client reads it all, as a write
// to a socket whose buffers a client that stopped reading has filled.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error   { l.once.Do(func() { close(l.done) }); return nil }
func (l *pipeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// dial returns the client end of a new connection.
func (l *pipeListener) dial() net.Conn {
	client, server := net.Pipe()
	l.conns <- server
	return client
}

// A stream that ends on the server's side (here after the run's final
// event, with CloseOnFinal) while its client has stopped reading is still
// bounded by WriteTimeout: net/http writes the end of the response (the
// last chunk) after ServeHTTP returns, and the handler had cleared the
// write deadline after its last write, and the server's own WriteTimeout
// with it, so that write blocked for good. The connection and its
// goroutine stayed until the client went away, and http.Server.Shutdown
// waited for them. Now the handler leaves a deadline of WriteTimeout for
// that write.
func TestHandlerEndOfAStreamIsBoundedByWriteTimeout(t *testing.T) {
	mem := progress.NewMemory(progress.MemoryOptions{})
	h, err := sse.NewHandler(mem, sse.HandlerOptions{Authorize: byPath, CloseOnFinal: true,
		WriteTimeout: 50 * time.Millisecond, KeepAlive: time.Hour, Logger: quiet()})
	require.NoError(t, err)
	all := sinktest.Events("r1", 1, 2)
	all[1].Type = progress.RunFinished
	require.NoError(t, mem.Publish(t.Context(), all...))

	closed := make(chan struct{})
	srv := &http.Server{Handler: h, ConnState: func(_ net.Conn, s http.ConnState) {
		if s == http.StateClosed {
			close(closed)
		}
	}}
	l := newPipeListener()
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(l)
	}()
	conn := l.dial()
	defer func() {
		conn.Close()
		srv.Close()
		<-served
	}()
	go fmt.Fprint(conn, "GET /runs/r1 HTTP/1.1\r\nHost: x\r\n\r\n") // a pipe write waits for the server's read
	r := bufio.NewReader(conn)
	// Read the response up to the final event's frame and the end of its
	// chunk, then stop reading.
	final := fmt.Sprintf("id: %d\n", all[1].Seq)
	for {
		line, err := r.ReadString('\n')
		require.NoError(t, err)
		if line == final {
			break
		}
	}
	for _, want := range []string{"data: ", "\n", "\r\n"} {
		line, err := r.ReadString('\n')
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(line, want), "line %q", line)
	}
	select {
	case <-closed:
	case <-time.After(wait):
		t.Fatal("the server's connection to a client that stopped reading outlived its ended stream")
	}
}
