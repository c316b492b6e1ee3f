package testenv

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
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
// it in CI) if the redis-server binary is not installed. Its port is free
// when picked, but another process may take it before redis-server binds
// it: then, or when the server does not answer, StartRedisServer tries
// again on another port, up to five ports, and fails the test naming each
// port and what went wrong there.
func StartRedisServer(t testing.TB) *RedisServer {
	t.Helper()
	return startRedisServer(t, freePort)
}

// startTries is how many ports StartRedisServer tries.
const startTries = 5

// RequireRedisServer calls [Unavailable] unless the redis-server binary
// is on PATH, and reports whether it is (false only for a t whose Skipf
// and Fatalf return).
func RequireRedisServer(t testing.TB) bool {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		Unavailable(t, "redis-server is not installed (%v); install Debian's redis-server package", err)
		return false
	}
	return true
}

// startRedisServer is StartRedisServer with the port picker given.
func startRedisServer(t testing.TB, pickPort func() (int, error)) *RedisServer {
	t.Helper()
	if !RequireRedisServer(t) {
		return nil
	}
	s := &RedisServer{t: t, dir: t.TempDir()}
	t.Cleanup(func() { s.stop() })
	var tries []string
	for range startTries {
		port, err := pickPort()
		if err != nil {
			t.Fatalf("testenv: free port: %v", err)
		}
		s.port = port
		err = s.start()
		if err == nil {
			s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
			s.URL = "redis://" + s.Addr + "/0"
			return s
		}
		tries = append(tries, fmt.Sprintf("port %d: %v", port, err))
	}
	t.Fatalf("testenv: start redis-server: %d tries failed, each on a port that was free when picked:\n%s",
		startTries, strings.Join(tries, "\n"))
	return nil
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

// Restart starts the server again on the same port, empty. It fails the
// test if another process took the port while the server was down.
func (s *RedisServer) Restart() {
	s.t.Helper()
	if err := s.start(); err != nil {
		s.t.Fatalf("testenv: restart redis-server on port %d: %v", s.port, err)
	}
}

// Pause stops the server's process (SIGSTOP) until Resume, or until the
// test's cleanups: it keeps its connections open and answers nothing, as
// a server that hangs, or a network cut that sends no reset, does.
func (s *RedisServer) Pause() {
	s.t.Helper()
	s.signal("Pause", syscall.SIGSTOP)
	s.t.Cleanup(func() { s.signal("", syscall.SIGCONT) }) // before the clients' cleanups
}

// Resume continues a paused server (SIGCONT).
func (s *RedisServer) Resume() {
	s.t.Helper()
	s.signal("Resume", syscall.SIGCONT)
}

// signal sends sig to the server's own process; what names the caller,
// whose test fails if the server is not running ("" for none).
func (s *RedisServer) signal(what string, sig syscall.Signal) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		if what != "" {
			s.t.Fatalf("testenv: %s: redis-server on port %d is not running", what, s.port)
		}
		return
	}
	if err := s.proc.cmd.Process.Signal(sig); err != nil && what != "" { // this process only, by its own PID
		s.t.Fatalf("testenv: %s: redis-server on port %d: %v", what, s.port, err)
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

// start runs redis-server and waits until it answers on s.port. The
// answer must come from the process it started: if another redis-server
// holds the port, the one started cannot bind it, and start kills it and
// fails rather than hand the test someone else's server.
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
	for {
		pid, err := serverPID(addr)
		if err == nil && pid == p.cmd.Process.Pid {
			break
		}
		if err == nil {
			p.kill()
			return fmt.Errorf("another redis-server (pid %d) answers on %s, not the one started (pid %d): the port was taken", pid, addr, p.cmd.Process.Pid)
		}
		select {
		case <-p.exited:
			return fmt.Errorf("redis-server exited (%v): %s", p.err, lastLines(p.out.String(), 2))
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			p.kill()
			return fmt.Errorf("redis-server on %s did not answer within 10s (last: %v): %s", addr, err, lastLines(p.out.String(), 2))
		}
	}
	s.proc = p
	return nil
}

// lastLines returns the last n lines of a log, joined by " | ": the
// reason redis-server gives for stopping, without its start-up banner.
func lastLines(log string, n int) string {
	lines := strings.Split(strings.TrimSpace(log), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], " | ")
}

// serverPID asks the redis-server at addr, on a fresh connection, for
// its process ID (INFO server).
func serverPID(addr string) (int, error) {
	conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("INFO server\r\n")); err != nil {
		return 0, err
	}
	r := bufio.NewReader(conn)
	head, err := r.ReadString('\n')
	if err != nil {
		return 0, err
	}
	size, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(head, "$"), "\r\n"))
	if !strings.HasPrefix(head, "$") || err != nil || size < 0 || size > 1<<20 {
		return 0, fmt.Errorf("INFO server answered %q", head)
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(line, "process_id:"); ok {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return 0, fmt.Errorf("INFO server has no process_id")
}

// freePort returns a loopback port that nothing listens on, below the
// kernel's range of ephemeral ports: a test that kills its redis-server
// and restarts it on the same port must not find the port taken
// meanwhile by the local end of some outgoing connection, which the
// kernel picks from that range.
func freePort() (int, error) {
	low := ephemeralLow()
	const first = 20000
	if low <= first+100 {
		// An odd range: take a port the kernel picks.
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port, nil
	}
	var err error
	for range 50 {
		port := first + rand.IntN(low-first)
		var l net.Listener
		if l, err = net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
			l.Close()
			return port, nil
		}
	}
	return 0, fmt.Errorf("no free port in [%d, %d): %w", first, low, err)
}

// ephemeralLow returns the lowest port of the kernel's ephemeral range,
// or 32768 when it cannot be read.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n <= 0 || n > 65535 {
		return 32768
	}
	return n
}
