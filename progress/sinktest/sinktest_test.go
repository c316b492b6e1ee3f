package sinktest_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"go.uber.org/goleak"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/sinktest"
)

// brokenEnv makes this binary run the kit against one broken pair; the
// parent test checks that the kit fails it, in the subtests expected.
const brokenEnv = "REGEN_SINKTEST_BROKEN"

func TestMain(m *testing.M) {
	if os.Getenv(brokenEnv) == "" {
		goleak.VerifyTestMain(m)
		return
	}
	os.Exit(m.Run())
}

// duplicating delivers every event twice.
type duplicating struct{ *progress.Memory }

func (d duplicating) Replay(ctx context.Context, run string, after uint64, fn func(progress.Event) error) error {
	return d.Memory.Replay(ctx, run, after, twice(fn))
}

func (d duplicating) Tail(ctx context.Context, run string, after uint64, fn func(progress.Event) error) error {
	return d.Memory.Tail(ctx, run, after, twice(fn))
}

func twice(fn func(progress.Event) error) func(progress.Event) error {
	return func(e progress.Event) error {
		if err := fn(e); err != nil {
			return err
		}
		return fn(e)
	}
}

// offByOne replays from after+1: it loses the first event a reader asks for.
type offByOne struct{ *progress.Memory }

func (o offByOne) Replay(ctx context.Context, run string, after uint64, fn func(progress.Event) error) error {
	return o.Memory.Replay(ctx, run, after+1, fn)
}

func (o offByOne) Tail(ctx context.Context, run string, after uint64, fn func(progress.Event) error) error {
	return o.Memory.Tail(ctx, run, after+1, fn)
}

// lenient accepts invalid events.
type lenient struct{ *progress.Memory }

func (l lenient) Publish(ctx context.Context, events ...progress.Event) error {
	var ok []progress.Event
	for _, e := range events {
		if e.Validate() == nil {
			ok = append(ok, e)
		}
	}
	return l.Memory.Publish(ctx, ok...)
}

func TestBrokenPair(t *testing.T) {
	if os.Getenv(brokenEnv) == "" {
		t.Skip("runs in a child process of TestKitCatchesBrokenPairs")
	}
	sinktest.Run(t, func(t *testing.T) (progress.Sink, progress.Source) {
		m := progress.NewMemory(progress.MemoryOptions{})
		switch os.Getenv(brokenEnv) {
		case "duplicating":
			return m, duplicating{m}
		case "offByOne":
			return m, offByOne{m}
		case "lenient":
			return lenient{m}, m
		}
		return m, m
	})
}

// TestBrokenHistoryPair runs RunHistory against one broken triple.
func TestBrokenHistoryPair(t *testing.T) {
	if os.Getenv(brokenEnv) == "" {
		t.Skip("runs in a child process of TestKitCatchesBrokenPairs")
	}
	sinktest.RunHistory(t, func(t *testing.T) (progress.Sink, progress.Source, progress.History) {
		h := progress.NewMemoryHistory()
		switch os.Getenv(brokenEnv) {
		case "ignoresHistory":
			m := progress.NewMemory(progress.MemoryOptions{})
			return m, m, h
		case "duplicatingHistory":
			m := progress.NewMemory(progress.MemoryOptions{History: h})
			return m, duplicating{m}, h
		}
		m := progress.NewMemory(progress.MemoryOptions{History: h})
		return m, m, h
	})
}

func TestKitCatchesBrokenPairs(t *testing.T) {
	tests := []struct {
		test    string // TestBrokenPair or TestBrokenHistoryPair
		broken  string
		failing []string // subtests that must fail
		passing []string // and some that must not
	}{
		{"TestBrokenPair", "duplicating", []string{"Order", "ReplayAfter", "NoDuplicates", "Seam"}, []string{"InvalidEvent"}},
		{"TestBrokenPair", "offByOne", []string{"Order", "ReplayAfter", "TailAfter", "Seam"}, []string{"InvalidEvent", "ReplayUnknownRun"}},
		{"TestBrokenPair", "lenient", []string{"InvalidEvent"}, []string{"Order", "Seam", "CancelTail"}},
		{"TestBrokenPair", "correct", nil, []string{"Order", "ReplayAfter", "TailAfter", "NoDuplicates", "Seam", "CancelTail", "InvalidEvent"}},
		{"TestBrokenHistoryPair", "ignoresHistory", []string{"HistoryOnly", "HistoryThenLive", "HistoryOnlyEnded"}, nil},
		{"TestBrokenHistoryPair", "duplicatingHistory", []string{"HistoryOnly", "HistoryThenLive", "HistoryOnlyEnded"}, nil},
		{"TestBrokenHistoryPair", "correct", nil, []string{"HistoryOnly", "HistoryThenLive", "HistoryOnlyEnded"}},
	}
	for _, tt := range tests {
		t.Run(tt.test+"/"+tt.broken, func(t *testing.T) {
			t.Parallel()
			checkBrokenChild(t, tt.test, tt.broken, tt.failing, tt.passing)
		})
	}
}

// checkBrokenChild runs test, a test of the kit on a backend that
// brokenEnv makes broken (or correct), in a child process, and checks
// that exactly the subtests failing fail and those passing pass.
func checkBrokenChild(t *testing.T, test, broken string, failing, passing []string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), brokenEnv+"="+broken)
	out, err := cmd.CombinedOutput()
	if len(failing) > 0 {
		assert.Error(t, err, "the kit passed a %s backend", broken)
	} else {
		assert.NoError(t, err)
	}
	for _, name := range failing {
		assert.Contains(t, string(out), "--- FAIL: "+test+"/"+name+" ", "subtest %s should catch a %s backend", name, broken)
	}
	for _, name := range passing {
		assert.Contains(t, string(out), "--- PASS: "+test+"/"+name+" ", "subtest %s", name)
	}
	if t.Failed() {
		t.Logf("child output:\n%s", lastLines(string(out), 60))
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
