package sse

import (
	"encoding/json"
	"fmt"
	"hash/maphash"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress"
)

var frameTime = time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)

func frameEvent(run string, seq uint64, msg string) progress.Event {
	return progress.Event{RunID: run, Seq: seq, Time: frameTime, Type: progress.NodeSucceeded, Node: "n", Stage: 1, Attempt: 1, Message: msg}
}

// wantFrame is e's frame encoded afresh, as the handler wrote each one
// before the cache.
func wantFrame(t testing.TB, e progress.Event) string {
	t.Helper()
	data, err := json.Marshal(e)
	require.NoError(t, err)
	return fmt.Sprintf("id: %d\ndata: %s\n\n", e.Seq, data)
}

// The streams that send the same event share one encoding, and only
// that event's: a changed event with the same run and Seq, or another
// run's event in the same slot, is encoded afresh.
func TestFrameCache(t *testing.T) {
	c := &frameCache{seed: maphash.MakeSeed()}
	// r2's event at seq otherSeq takes the slot of r1's at seq 1.
	otherSeq := (maphash.String(c.seed, "r1") + 1 - maphash.String(c.seed, "r2")) % frameSlots
	if otherSeq == 0 {
		otherSeq = frameSlots
	}
	big := strings.Repeat("x", maxCachedFrame)
	steps := []struct {
		name  string
		e     progress.Event
		reuse int // the step whose frame this one reuses; -1: a new encoding
	}{
		{"the first stream encodes an event", frameEvent("r1", 1, "a"), -1},
		{"the next stream reuses it", frameEvent("r1", 1, "a"), 0},
		{"a changed event with the same run and seq is encoded", frameEvent("r1", 1, "b"), -1},
		{"and replaces the stale encoding", frameEvent("r1", 1, "b"), 2},
		{"another run's event in the same slot is encoded", frameEvent("r2", otherSeq, "b"), -1},
		{"and replaces the other run's", frameEvent("r1", 1, "b"), -1},
		{"a newer event of the run in the slot is encoded", frameEvent("r1", 1+frameSlots, "b"), -1},
		{"an older one is encoded", frameEvent("r1", 1, "b"), -1},
		{"but leaves the newer one in place", frameEvent("r1", 1+frameSlots, "b"), 6},
		{"an event too large to hold is encoded", frameEvent("r1", 2, big), -1},
		{"each time", frameEvent("r1", 2, big), -1},
		{"an event that differs in its time alone is encoded", func() progress.Event {
			e := frameEvent("r1", 1+frameSlots, "b")
			e.Time = e.Time.Add(time.Nanosecond)
			return e
		}(), -1},
	}
	frames := make([][]byte, len(steps))
	for i, s := range steps {
		f, err := c.frame(s.e)
		require.NoError(t, err, "step %d: %s", i, s.name)
		require.Equal(t, wantFrame(t, s.e), string(f), "step %d: %s", i, s.name)
		frames[i] = f
		if s.reuse >= 0 {
			assert.Same(t, &frames[s.reuse][0], &f[0], "step %d: %s: a new encoding, not step %d's", i, s.name, s.reuse)
			continue
		}
		for j := range i {
			assert.NotSame(t, &frames[j][0], &f[0], "step %d: %s: step %d's frame", i, s.name, j)
		}
	}
}

// An event the wire form cannot carry is an error, and leaves the cache
// as it was.
func TestFrameCacheRefusesAnEventItCannotEncode(t *testing.T) {
	c := &frameCache{seed: maphash.MakeSeed()}
	good := frameEvent("r1", 1, "a")
	first, err := c.frame(good)
	require.NoError(t, err)
	bad := good
	bad.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	_, err = c.frame(bad)
	require.ErrorContains(t, err, "outside RFC 3339")
	again, err := c.frame(good)
	require.NoError(t, err)
	assert.Same(t, &first[0], &again[0])
}

// Streams of several runs, with two versions of one run's events and
// more events than slots, get each event's own frame however their calls
// interleave (run with -race).
func TestFrameCacheConcurrent(t *testing.T) {
	c := &frameCache{seed: maphash.MakeSeed()}
	var events []progress.Event
	for seq := uint64(1); seq <= frameSlots+frameSlots/2; seq++ {
		events = append(events, frameEvent("r1", seq, "a"), frameEvent("r2", seq, "a"), frameEvent("r1", seq, "b"))
	}
	want := make([]string, len(events))
	for i, e := range events {
		want[i] = wantFrame(t, e)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for k := range events {
				i := (k + g*7) % len(events) // each stream a little apart
				f, err := c.frame(events[i])
				if err != nil || string(f) != want[i] {
					t.Errorf("event %d (run %s seq %d %q): frame %q, error %v; want %q",
						i, events[i].RunID, events[i].Seq, events[i].Message, f, err, want[i])
					return
				}
			}
		})
	}
	wg.Wait()
}
