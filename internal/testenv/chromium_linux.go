package testenv

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ChromiumEnv names a browser binary for the real-browser tests; without
// it they look for Debian's chromium on PATH.
const ChromiumEnv = "REGEN_CHROMIUM"

// FindChromium returns a headless-capable Chromium. When there is none
// the test skips, except under CI=true, where .ci/run installs Debian's
// chromium package, so that CI never passes on a skip.
func FindChromium(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(ChromiumEnv); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "no Chromium on PATH (install Debian's chromium package, or set " + ChromiumEnv + "): the real-browser test cannot run"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// Chromium is a headless Chromium showing a page.
type Chromium struct {
	// Exited is closed once Chromium has exited and its stderr is
	// complete.
	Exited chan struct{}
	// Stop kills Chromium and its helpers and waits for it to exit. The
	// test calls it, with defer, from the goroutine that started it; a
	// second call does nothing.
	Stop   func()
	stderr lockedBuffer
}

// lockedBuffer is a bytes.Buffer that one goroutine may write while
// another reads it: Chromium's stderr, copied by exec's goroutine, read
// by a test that gives up on a page before it stops the browser.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Stderr returns the last n lines of Chromium's stderr so far: all of
// it once Exited is closed (or Stop has returned). It may be called
// while Chromium runs.
func (c *Chromium) Stderr(n int) string {
	lines := strings.Split(strings.TrimRight(c.stderr.String(), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// StartChromium starts browser, headless, on url.
func StartChromium(t testing.TB, browser, url string) *Chromium {
	t.Helper()
	c := &Chromium{Exited: make(chan struct{})}
	cmd := exec.Command(browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--no-default-browser-check", "--disable-extensions", "--user-data-dir="+t.TempDir(),
		url)
	cmd.Stderr = &c.stderr
	// Its own process group: Chromium starts helper processes, which end
	// with it. It is killed, too, if the test binary dies without running
	// the deferred Stop (go test's -timeout panics, a signal): the kernel
	// sends Pdeathsig when the thread that started it exits, so that
	// thread stays locked to this goroutine until Stop.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	runtime.LockOSThread()
	// Helpers that outlive Chromium may hold its stderr open: Wait gives
	// up on them after WaitDelay.
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("start Chromium: %v", err)
	}
	go func() {
		_ = cmd.Wait()
		close(c.Exited)
	}()
	c.Stop = sync.OnceFunc(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-c.Exited
		runtime.UnlockOSThread()
	})
	return c
}

// PostResult is the handler of a test page's POST of what it saw: the
// body goes to result, whose first value is kept (later ones are
// dropped, as from a page that reports again).
func PostResult(result chan<- []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if body, err := io.ReadAll(r.Body); err == nil {
			select {
			case result <- body:
			default:
			}
		}
	}
}
