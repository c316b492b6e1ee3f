package sinktest_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/sinktest"
)

// fillsAtStartOnly is a source that reads the History once, at the start
// of a read, then its live copy: a gap that opens in the live copy while
// a reader follows it (the live backend refused a batch that the archive
// took) is passed over, though the History holds it.
type fillsAtStartOnly struct {
	live *progress.Memory // without a History: it skips gaps
	h    progress.History
}

func (s fillsAtStartOnly) read(ctx context.Context, live func(context.Context, string, uint64, func(progress.Event) error) error,
	run string, after uint64, fn func(progress.Event) error) error {
	last := after
	err := s.h.Replay(ctx, run, after, func(e progress.Event) error {
		last = e.Seq
		return fn(e)
	})
	if err != nil {
		return err
	}
	return live(ctx, run, last, fn)
}

func (s fillsAtStartOnly) Replay(ctx context.Context, run string, after uint64, fn func(progress.Event) error) error {
	return s.read(ctx, s.live.Replay, run, after, fn)
}

func (s fillsAtStartOnly) Tail(ctx context.Context, run string, after uint64, fn func(progress.Event) error) error {
	return s.read(ctx, s.live.Tail, run, after, fn)
}

// TestLiveGapBrokenHistoryPair runs RunHistory against one broken triple.
func TestLiveGapBrokenHistoryPair(t *testing.T) {
	if os.Getenv(brokenEnv) == "" {
		t.Skip("runs in a child process of TestLiveGapKitCatchesBroken")
	}
	sinktest.SetWait(t, 5*time.Second)
	sinktest.RunHistory(t, func(t *testing.T) (progress.Sink, progress.Source, progress.History) {
		h := progress.NewMemoryHistory()
		switch os.Getenv(brokenEnv) {
		case "fillsAtStartOnly":
			live := progress.NewMemory(progress.MemoryOptions{})
			return progress.NewFanout(progress.NewArchive(h), live), fillsAtStartOnly{live: live, h: h}, h
		}
		m := progress.NewMemory(progress.MemoryOptions{History: h})
		return progress.NewFanout(progress.NewArchive(h), m), m, h
	})
}

// TestLiveGapKitCatchesBroken runs RunHistory, in a child process,
// against a source that reads the History only when a read starts: no
// subtest opened a gap in the live copy while a reader followed it.
func TestLiveGapKitCatchesBroken(t *testing.T) {
	tests := []struct {
		broken  string
		failing []string
		passing []string
	}{
		{"fillsAtStartOnly", []string{"HistoryFillsLiveGap"}, nil},
		{"correct", nil, []string{"HistoryFillsLiveGap"}},
	}
	for _, tt := range tests {
		t.Run(tt.broken, func(t *testing.T) {
			t.Parallel()
			checkBrokenChild(t, "TestLiveGapBrokenHistoryPair", tt.broken, tt.failing, tt.passing)
		})
	}
}
