package main

import (
	"context"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/regengraph/regen/internal/testenv"
)

// stallProxy forwards TCP connections to a server until stall, from which
// it forwards nothing more, either way, until close: a network, or a
// server, that stalls.
type stallProxy struct {
	ln      net.Listener
	target  string
	stalled chan struct{}
	once    sync.Once
	mu      sync.Mutex
	conns   []net.Conn
	wg      sync.WaitGroup
}

// newStallProxy starts a stallProxy to target (HOST:PORT) on a loopback
// port of its own; the test's end closes it.
func newStallProxy(t *testing.T, target string) *stallProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &stallProxy{ln: ln, target: target, stalled: make(chan struct{})}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *stallProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(s, c)
		go p.pipe(c, s)
	}
}

// pipe copies from src to dst until either ends; once the proxy stalls,
// what it reads is dropped.
func (p *stallProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		select {
		case <-p.stalled:
			n = 0
		default:
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// stall stops the forwarding.
func (p *stallProxy) stall() { p.once.Do(func() { close(p.stalled) }) }

// close ends the proxy and its connections, and waits for its goroutines.
func (p *stallProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// The shutdown gave this process's lock up with a bound of its own,
// unlockTimeout, from when it began: a Postgres that stalls held a
// shutdown whose time was up that long more (10 s past shutdownTimeout).
// The unlock now ends with the shutdown's context: the lock's connection
// is closed, and the server frees the lock when it sees it end.
func TestShutdownBoundsTheUnlockOfItsProcesssLock(t *testing.T) {
	pg, rd := testenv.NewPostgres(t), testenv.NewRedis(t)
	u, err := url.Parse(testenv.PostgresURL())
	require.NoError(t, err)
	proxy := newStallProxy(t, u.Host)
	u.Host = proxy.ln.Addr().String()
	leaks := goleak.IgnoreCurrent()
	c := config{addr: "127.0.0.1:0", postgresURL: u.String(), redisURL: testenv.RedisURL(),
		schema: pg.Schema, prefix: rd.Prefix, token: token, retain: time.Hour, pruneEvery: time.Hour, recoverEvery: time.Hour}
	s, err := start(context.Background(), c, slog.New(slog.NewTextHandler(testWriter{t}, nil)))
	require.NoError(t, err)
	proxy.stall()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond) // the shutdown's time, soon up
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.shutdown(ctx) }()
	select {
	case <-done:
	case <-time.After(unlockTimeout / 2): // a bound below that of the old unlock, not a timing assertion
		proxy.close()
		<-done
		t.Fatal("the shutdown, its time up, waited for the unlock of its process's lock")
	}
	proxy.close()
	goleak.VerifyNone(t, leaks)
}
