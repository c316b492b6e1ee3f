package testenv

import (
	"io"
	"net"
	"strconv"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
)

// CutProxy is a TCP proxy on loopback whose connections a test can cut,
// as a middlebox or a network fault does: a statement whose connection
// is cut while the server holds it (waiting for a lock) stays on the
// server, which does not see the connection go. It takes new
// connections after a cut. It listens on 127.0.0.1 alone and forwards
// to one address, the test server's.
type CutProxy struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
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
			p.mu.Lock()
			p.conns = append(p.conns, client, server)
			p.mu.Unlock()
			p.wg.Go(func() { _, _ = io.Copy(server, client); server.Close() })
			p.wg.Go(func() { _, _ = io.Copy(client, server); client.Close() })
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
		c.Close()
	}
	p.conns = nil
}
