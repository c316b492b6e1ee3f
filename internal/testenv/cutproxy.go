package testenv

import (
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
)

// CutProxy is a TCP proxy on loopback whose connections a test can cut,
// as a middlebox or a network fault does: a statement whose connection
// is cut while the server holds it (waiting for a lock) stays on the
// server, which does not see the connection go. It can also silence
// them, as a fault that sends no reset does. It takes new connections
// after a cut or a silence. It listens on 127.0.0.1 alone and forwards
// to one address, the test server's.
type CutProxy struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []*proxiedConn
}

// proxiedConn is one client connection of a [CutProxy] and the
// connection to the server it forwards to.
type proxiedConn struct {
	client, server net.Conn
	silent         atomic.Bool
}

// NewCutProxy starts a proxy to addr (host:port), stopped when the test
// ends, after it cut the connections it still holds.
func NewCutProxy(t testing.TB, addr string) *CutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: proxy listener: %v", err)
	}
	p := &CutProxy{ln: ln}
	p.wg.Go(func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", addr)
			if err != nil {
				client.Close()
				continue
			}
			c := &proxiedConn{client: client, server: server}
			p.mu.Lock()
			p.conns = append(p.conns, c)
			p.mu.Unlock()
			p.wg.Go(func() { c.pipe(server, client) })
			p.wg.Go(func() { c.pipe(client, server) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		p.Cut()
		p.wg.Wait()
	})
	return p
}

// CutPostgres starts a [CutProxy] to the server that c connects to, and
// points c at the proxy (without fallbacks, which would bypass it).
func CutPostgres(t testing.TB, c *pgxpool.Config) *CutProxy {
	t.Helper()
	p := NewCutProxy(t, net.JoinHostPort(c.ConnConfig.Host, strconv.Itoa(int(c.ConnConfig.Port))))
	c.ConnConfig.Host, c.ConnConfig.Port, c.ConnConfig.Fallbacks = "127.0.0.1", p.Port(), nil
	return p
}

// Port is the proxy's port on 127.0.0.1.
func (p *CutProxy) Port() uint16 { return uint16(p.ln.Addr().(*net.TCPAddr).Port) }

// Cut closes every connection the proxy holds. It is safe for
// concurrent use.
func (p *CutProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.client.Close()
		c.server.Close()
	}
	p.conns = nil
}

// Silence makes every connection the proxy holds now drop every byte,
// both ways, without closing it, as a network fault that sends no reset
// does: a client's read on it waits until its own timeout, or until a
// [CutProxy.Cut]. It is safe for concurrent use.
func (p *CutProxy) Silence() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.silent.Store(true)
	}
}

// pipe copies src to dst, dropping what it reads once c is silenced,
// and closes dst when src or dst fails.
func (c *proxiedConn) pipe(dst, src net.Conn) {
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !c.silent.Load() {
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
