package sinktest_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/sinktest"
)

func TestHistoryMemory(t *testing.T) {
	sinktest.History(t, func(*testing.T) progress.History { return progress.NewMemoryHistory() })
}

// appendAll keeps every event appended, duplicates too.
type appendAll struct {
	*progress.MemoryHistory
	mu   sync.Mutex
	dups map[string][]progress.Event
}

func (a *appendAll) Append(ctx context.Context, events ...progress.Event) error {
	if err := a.MemoryHistory.Append(ctx, events...); err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, e := range events {
		a.dups[e.RunID] = append(a.dups[e.RunID], e)
	}
	return nil
}

func (a *appendAll) Replay(ctx context.Context, run string, after uint64, fn func(progress.Event) error) error {
	if err := a.MemoryHistory.Replay(ctx, run, after, fn); err != nil {
		return err
	}
	a.mu.Lock()
	dups := append([]progress.Event(nil), a.dups[run]...)
	a.mu.Unlock()
	seen := make(map[uint64]bool)
	for _, e := range dups {
		if e.Seq > after && seen[e.Seq] {
			if err := fn(e); err != nil {
				return err
			}
		}
		seen[e.Seq] = true
	}
	return nil
}

// lastWins keeps the contents of the last duplicate appended. It
// rebuilds a run's history only for a duplicate, so that the kit's long
// runs of new events cost what they cost a MemoryHistory (a rebuild at
// every append made them quadratic, past the kit's deadline under load).
type lastWins struct{ *progress.MemoryHistory }

// errHeld and errPassed stop lastWins's look for a held event: found,
// or replayed past.
var errHeld, errPassed = errors.New("held"), errors.New("passed")

// holds reports whether the history holds run's event seq.
func (l lastWins) holds(ctx context.Context, run string, seq uint64) bool {
	err := l.MemoryHistory.Replay(ctx, run, seq-1, func(h progress.Event) error {
		if h.Seq == seq {
			return errHeld
		}
		return errPassed
	})
	return errors.Is(err, errHeld)
}

func (l lastWins) Append(ctx context.Context, events ...progress.Event) error {
	for _, e := range events {
		if err := e.Validate(); err != nil {
			return err
		}
	}
	for _, e := range events {
		if l.holds(ctx, e.RunID, e.Seq) {
			var keep []progress.Event
			_ = l.MemoryHistory.Replay(ctx, e.RunID, 0, func(h progress.Event) error {
				if h.Seq != e.Seq {
					keep = append(keep, h)
				}
				return nil
			})
			l.Delete(e.RunID)
			_ = l.MemoryHistory.Append(ctx, keep...)
		}
		_ = l.MemoryHistory.Append(ctx, e)
	}
	return nil
}

// partial stores the valid events of a call that has an invalid one.
type partial struct{ *progress.MemoryHistory }

func (p partial) Append(ctx context.Context, events ...progress.Event) error {
	var err error
	for _, e := range events {
		if e.Validate() != nil {
			err = e.Validate()
			continue
		}
		_ = p.MemoryHistory.Append(ctx, e)
	}
	return err
}

// ignoresCancel replays whatever its context.
type ignoresCancel struct{ *progress.MemoryHistory }

func (i ignoresCancel) Replay(_ context.Context, run string, after uint64, fn func(progress.Event) error) error {
	return i.MemoryHistory.Replay(context.Background(), run, after, fn)
}

// TestBrokenHistory runs History against one broken History.
func TestBrokenHistory(t *testing.T) {
	if os.Getenv(brokenEnv) == "" {
		t.Skip("runs in a child process of TestKitCatchesBrokenHistories")
	}
	sinktest.History(t, func(*testing.T) progress.History {
		m := progress.NewMemoryHistory()
		switch os.Getenv(brokenEnv) {
		case "appendAll":
			return &appendAll{MemoryHistory: m, dups: make(map[string][]progress.Event)}
		case "lastWins":
			return lastWins{m}
		case "partial":
			return partial{m}
		case "ignoresCancel":
			return ignoresCancel{m}
		}
		return m
	})
}

func TestKitCatchesBrokenHistories(t *testing.T) {
	tests := []struct {
		broken  string
		failing []string // subtests that must fail
		passing []string // and some that must not
	}{
		{"appendAll", []string{"Duplicates", "Concurrent"}, []string{"Order", "InvalidEvent"}},
		{"lastWins", []string{"Duplicates", "LastEvent"}, []string{"Order", "ReplayAfter"}},
		{"partial", []string{"InvalidEvent"}, []string{"Order", "Duplicates"}},
		{"ignoresCancel", []string{"Cancel"}, []string{"Order", "CallbackError"}},
		{"correct", nil, []string{"Order", "Duplicates", "ReplayAfter", "UnknownRun", "CallbackError", "Cancel",
			"InvalidEvent", "RunsIsolated", "Text", "LastEvent", "Concurrent"}},
	}
	for _, tt := range tests {
		t.Run(tt.broken, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(os.Args[0], "-test.run=^TestBrokenHistory$", "-test.v")
			cmd.Env = append(os.Environ(), brokenEnv+"="+tt.broken)
			out, err := cmd.CombinedOutput()
			if len(tt.failing) > 0 {
				assert.Error(t, err, "the kit passed a %s History:\n%s", tt.broken, out)
			} else {
				assert.NoError(t, err, "%s", out)
			}
			for _, name := range tt.failing {
				assert.Contains(t, string(out), "--- FAIL: TestBrokenHistory/"+name+" ", "subtest %s should catch a %s History", name, tt.broken)
			}
			for _, name := range tt.passing {
				assert.Contains(t, string(out), "--- PASS: TestBrokenHistory/"+name+" ", "subtest %s", name)
			}
			if t.Failed() {
				t.Logf("child output:\n%s", lastLines(string(out), 60))
			}
		})
	}
}
