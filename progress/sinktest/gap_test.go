package sinktest_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/sinktest"
)

// errAtGap ends the inner read of stallsAtGap at the first gap.
var errAtGap = errors.New("gap")

// stallsAtGap is a source that delivers a run's events only as long as
// their Seqs follow on: its Replay ends at the first gap, and its Tail
// waits there for the missing Seqs until its context ends. A downstream
// sink of a progress.Buffered gets such gaps whenever the Buffered drops
// events or hands a failed batch to its fallback: a reader of this source
// then never sees the rest of the run, its final event included.
type stallsAtGap struct{ *progress.Memory }

func (s stallsAtGap) read(ctx context.Context, read func(context.Context, string, uint64, func(progress.Event) error) error,
	run string, after uint64, fn func(progress.Event) error) error {
	last := after
	err := read(ctx, run, after, func(e progress.Event) error {
		if last != 0 && e.Seq > last+1 {
			return errAtGap
		}
		last = e.Seq
		return fn(e)
	})
	return err
}

func (s stallsAtGap) Replay(ctx context.Context, run string, after uint64, fn func(progress.Event) error) error {
	err := s.read(ctx, s.Memory.Replay, run, after, fn)
	if errors.Is(err, errAtGap) {
		return nil
	}
	return err
}

func (s stallsAtGap) Tail(ctx context.Context, run string, after uint64, fn func(progress.Event) error) error {
	err := s.read(ctx, s.Memory.Tail, run, after, fn)
	if errors.Is(err, errAtGap) {
		<-ctx.Done() // waits for the missing Seqs, which never come
		return context.Cause(ctx)
	}
	return err
}

// TestGapBrokenPair runs Run against one broken pair.
func TestGapBrokenPair(t *testing.T) {
	if os.Getenv(brokenEnv) == "" {
		t.Skip("runs in a child process of TestGapKitCatchesBroken")
	}
	sinktest.SetWait(t, 5*time.Second)
	sinktest.Run(t, func(t *testing.T) (progress.Sink, progress.Source) {
		m := progress.NewMemory(progress.MemoryOptions{})
		switch os.Getenv(brokenEnv) {
		case "stallsAtGap":
			return m, stallsAtGap{m}
		case "deafBeforeFirst":
			return m, deafBeforeFirst{m}
		}
		return m, m
	})
}

// TestGapKitCatchesBroken runs the kit, in a child process, against a
// source that stops at a gap in a run's Seqs, and checks that the subtest
// meant to catch it fails, and that the correct pair passes it: no
// subtest of the kit published a run with a gap.
func TestGapKitCatchesBroken(t *testing.T) {
	tests := []struct {
		broken  string
		failing []string
		passing []string
	}{
		{"stallsAtGap", []string{"Gap"}, nil},
		// Tail waited for a run's first event deaf to its context: the
		// kit cancelled only tails of runs with events.
		{"deafBeforeFirst", []string{"CancelTail"}, nil},
		{"correct", nil, []string{"Gap", "CancelTail"}},
	}
	for _, tt := range tests {
		t.Run(tt.broken, func(t *testing.T) {
			t.Parallel()
			checkBrokenChild(t, "TestGapBrokenPair", tt.broken, tt.failing, tt.passing)
		})
	}
}

// deafBeforeFirst is a source whose Tail, once it has checked its
// context, waits for the first event of a run with none without watching
// its context (for 6 s here, so that the kit's child process ends), as
// one that blocks on a read with no deadline does: a browser that
// connects before its run starts, and leaves, holds a goroutine and a
// connection until the run starts.
type deafBeforeFirst struct{ *progress.Memory }

func (s deafBeforeFirst) Tail(ctx context.Context, run string, after uint64, fn func(progress.Event) error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	for deadline := time.Now().Add(6 * time.Second); time.Now().Before(deadline); {
		if _, found, err := s.Memory.LastEvent(context.Background(), run); err != nil || found {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	return s.Memory.Tail(ctx, run, after, fn)
}

// deafTail is a source whose Tail never hears its context's
// cancellation: it returns only when its callback fails.
type deafTail struct{ *progress.Memory }

func (s deafTail) Tail(ctx context.Context, run string, after uint64, fn func(progress.Event) error) error {
	return s.Memory.Tail(context.WithoutCancel(ctx), run, after, fn)
}

// TestDeafTailBrokenPair runs Run's CancelTail against a deaf Tail.
func TestDeafTailBrokenPair(t *testing.T) {
	if os.Getenv(brokenEnv) == "" {
		t.Skip("runs in a child process of TestKitReportsADeafTail")
	}
	sinktest.SetWait(t, 2*time.Second)
	sinktest.Run(t, func(t *testing.T) (progress.Sink, progress.Source) {
		m := progress.NewMemory(progress.MemoryOptions{})
		return m, deafTail{m}
	})
}

// The kit reports a Tail that does not return once cancelled, rather
// than wait for it for ever, at its tailer's cleanup, until the test
// binary's timeout: a panic that names no subtest and prints none of the
// kit's messages.
func TestKitReportsADeafTail(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestDeafTailBrokenPair$/^CancelTail$", "-test.v", "-test.count=1", "-test.timeout=60s")
	cmd.Env = append(os.Environ(), brokenEnv+"=deafTail")
	out, err := cmd.CombinedOutput()
	assert.Error(t, err, "the kit passed a deaf Tail")
	assert.NotContains(t, string(out), "panic: test timed out", "the kit waited for the deaf Tail until the timeout")
	assert.Contains(t, string(out), "--- FAIL: TestDeafTailBrokenPair/CancelTail ", "CancelTail should catch a deaf Tail")
	if t.Failed() {
		t.Logf("child output:\n%s", lastLines(string(out), 40))
	}
}
