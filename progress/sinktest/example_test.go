package sinktest_test

import (
	"testing"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/sinktest"
)

// A backend that is both a Sink and a Source checks itself with the kit
// from a test of its package; here, progress.Memory. The function returns
// a new pair for each subtest: the Sink the executor would publish to,
// and the Source a progress view reads back from.
func Example() {
	testMyBackend := func(t *testing.T) {
		sinktest.Run(t, func(*testing.T) (progress.Sink, progress.Source) {
			m := progress.NewMemory(progress.MemoryOptions{})
			return m, m
		})
	}
	_ = testMyBackend // func TestMyBackend(t *testing.T) { ... } in the host's code
}

// A Source that falls back to a History checks that too, with the History
// at hand: the kit appends to it the events that only it is to hold.
func ExampleRunHistory() {
	testMyBackend := func(t *testing.T) {
		sinktest.RunHistory(t, func(*testing.T) (progress.Sink, progress.Source, progress.History) {
			h := progress.NewMemoryHistory()
			m := progress.NewMemory(progress.MemoryOptions{History: h})
			return m, m, h
		})
	}
	_ = testMyBackend // func TestMyBackendHistory(t *testing.T) { ... } in the host's code
}

// A History, an archive that a Source falls back to, checks itself alone.
func ExampleHistory() {
	testMyHistory := func(t *testing.T) {
		sinktest.History(t, func(*testing.T) progress.History {
			return progress.NewMemoryHistory()
		})
	}
	_ = testMyHistory // func TestMyHistory(t *testing.T) { ... } in the host's code
}
