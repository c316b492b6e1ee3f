package testenv

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"
)

// RedisServer is a private redis-server on a free loopback port, without
// persistence, in its own temporary directory: a fault test can kill it and
// restart it on the same port. It is stopped when the test ends. Only the
// process it started is ever signalled.
type RedisServer struct {
	// Addr is "127.0.0.1:<port>".
	Addr string
	// URL is "redis://127.0.0.1:<port>/0".
	URL string

	t    testing.TB
	port int
	dir  string

	mu   sync.Mutex
	proc *process // nil while killed
}

// StartRedisServer starts a private redis-server, skipping the test (failing
// it in CI) if the redis-server binary is not installed.
func StartRedisServer(t testing.TB) *RedisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		Unavailable(t, "redis-server is not installed (%v); install Debian's redis-server package", err)
		return nil
	}
	s := &RedisServer{t: t, dir: t.TempDir()}
	t.Cleanup(func() { s.stop() })
	// A free port can be taken between our probe and redis's bind: retry.
	var err error
	for range 5 {
		s.port, err = freePort()
		if err != nil {
			t.Fatalf("testenv: free port: %v", err)
		}
		if err = s.start(); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("testenv: start redis-server: %v", err)
	}
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
	s.URL = "redis://" + s.Addr + "/0"
	return s
}

// Kill sends SIGKILL to the server's own process and waits for it to exit:
// a crash, with no chance to save anything.
func (s *RedisServer) Kill() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		s.t.Fatalf("testenv: Kill: redis-server on port %d is not running", s.port)
	}
	s.proc.kill()
	s.proc = nil
}

// Restart starts the server again on the same port, empty.
func (s *RedisServer) Restart() {
	s.t.Helper()
	if err := s.start(); err != nil {
		s.t.Fatalf("testenv: restart redis-server on port %d: %v", s.port, err)
	}
}

// Running reports whether the server process is up.
func (s *RedisServer) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc != nil
}

func (s *RedisServer) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		s.proc.kill()
		s.proc = nil
	}
}

// process is one started redis-server; its waiter goroutine exits with it.
type process struct {
	cmd    *exec.Cmd
	out    *bytes.Buffer
	exited chan struct{} // closed when cmd.Wait returns
	err    error         // cmd.Wait's result, set before exited closes
}

func (p *process) kill() {
	_ = p.cmd.Process.Kill() // this process only, by its own PID
	<-p.exited
}

// start runs redis-server and waits until it answers PING.
func (s *RedisServer) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return fmt.Errorf("already running")
	}
	p := &process{out: new(bytes.Buffer), exited: make(chan struct{})}
	p.cmd = exec.Command("redis-server",
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--daemonize", "no",
		"--loglevel", "warning",
	)
	p.cmd.Dir = s.dir
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		return err
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(10 * time.Second)
	for ping(addr) != nil {
		select {
		case <-p.exited:
			return fmt.Errorf("redis-server exited (%v): %s", p.err, p.out.String())
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			p.kill()
			return fmt.Errorf("redis-server on %s did not answer PING within 10s: %s", addr, p.out.String())
		}
	}
	s.proc = p
	return nil
}

// ping sends PING on a fresh connection and expects +PONG.
func ping(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
