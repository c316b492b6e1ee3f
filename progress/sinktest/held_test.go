package sinktest_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/sinktest"
)

// recorder is a testing.TB that records failures instead of reporting
// them, and ends the goroutine at FailNow, as testing.T does: the kit's
// helpers are run on it in a goroutine of their own.
type recorder struct {
	testing.TB
	mu     sync.Mutex
	failed []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed = append(r.failed, fmt.Sprintf(format, args...))
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	runtime.Goexit()
}

func (r *recorder) FailNow() {
	r.Errorf("FailNow")
	runtime.Goexit()
}

func (r *recorder) Failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.failed) > 0
}

// tailFails is a source whose Tail fails at once.
type tailFails struct{ *progress.Memory }

var errTailFails = errors.New("tail fails")

func (tailFails) Tail(context.Context, string, uint64, func(progress.Event) error) error {
	return errTailFails
}

// tailSkipsSecond is a source whose Tail never delivers seq 2.
type tailSkipsSecond struct{ *progress.Memory }

func (s tailSkipsSecond) Tail(ctx context.Context, run string, after uint64, fn func(progress.Event) error) error {
	return s.Memory.Tail(ctx, run, after, func(e progress.Event) error {
		if e.Seq == 2 {
			return nil
		}
		return fn(e)
	})
}

// HeldPerReader fails its test, rather than wait for ever, when a
// reader's Tail ends, or never delivers an event it holds readers at,
// and leaves no reader behind; and it refuses a burst or a number of
// readers below 1.
func TestHeldPerReaderFailsRatherThanHangs(t *testing.T) {
	sinktest.SetWait(t, time.Second)
	tests := []struct {
		name           string
		source         func(m *progress.Memory) progress.Source
		readers, burst int
	}{
		{"tail fails", func(m *progress.Memory) progress.Source { return tailFails{m} }, 3, 10},
		{"tail skips seq 2", func(m *progress.Memory) progress.Source { return tailSkipsSecond{m} }, 3, 10},
		{"no burst", func(m *progress.Memory) progress.Source { return m }, 3, 0},
		{"no readers", func(m *progress.Memory) progress.Source { return m }, 0, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := progress.NewMemory(progress.MemoryOptions{})
			rec := &recorder{TB: t}
			ended := make(chan struct{})
			go func() {
				defer close(ended)
				sinktest.HeldPerReader(rec, m, tt.source(m), tt.readers, tt.burst)
			}()
			select {
			case <-ended:
			case <-time.After(20 * time.Second):
				t.Fatal("HeldPerReader did not return: it waits for ever for readers that will not come")
			}
			assert.True(t, rec.Failed(), "HeldPerReader must fail its test")
			assert.Zero(t, m.Stats().Readers, "HeldPerReader left readers behind")
		})
	}
}

// freesOnBurst is a sink that holds a large buffer from a run's first
// event until the next publish: the heap shrinks while the burst goes in.
type freesOnBurst struct {
	*progress.Memory
	held []byte
}

func (s *freesOnBurst) Publish(ctx context.Context, events ...progress.Event) error {
	if len(events) == 1 && events[0].Seq == 1 {
		s.held = make([]byte, 64<<20)
		s.held[len(s.held)-1] = 1
	} else {
		s.held = nil
	}
	return s.Memory.Publish(ctx, events...)
}

// A heap that shrinks while the readers are held (the sink, or anything
// else in the process, frees more than the burst adds) gives 0, not the
// difference wrapped around to about 1.8e19 bytes per reader.
func TestHeldPerReaderHeapShrinks(t *testing.T) {
	m := progress.NewMemory(progress.MemoryOptions{})
	held := sinktest.HeldPerReader(t, &freesOnBurst{Memory: m}, m, 2, 10)
	assert.Less(t, held, float64(1<<30), "bytes held per reader")
}
