package progress_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/sinktest"
)

// seqTailer tails a run of a Memory from its start, in a goroutine of
// its own, and keeps the Seq of each event it has.
type seqTailer struct {
	mu     sync.Mutex
	got    []uint64
	cancel context.CancelFunc
	done   chan error
}

// tailSeqs starts a seqTailer of run on m. each, if not nil, is called
// with each event once its Seq is kept, and may block the tailer.
func tailSeqs(ctx context.Context, m *progress.Memory, run string, each func(progress.Event)) *seqTailer {
	ctx, cancel := context.WithCancel(ctx)
	s := &seqTailer{cancel: cancel, done: make(chan error, 1)}
	go func() {
		s.done <- m.Tail(ctx, run, 0, func(e progress.Event) error {
			s.mu.Lock()
			s.got = append(s.got, e.Seq)
			s.mu.Unlock()
			if each != nil {
				each(e)
			}
			return nil
		})
	}()
	return s
}

// holdAt returns a tailer's each (see tailSeqs) that holds the tailer at
// the event of Seq seq until release is closed, and a channel that is
// closed once the tailer is held there.
func holdAt(seq uint64) (each func(progress.Event), at <-chan struct{}, release chan struct{}) {
	reached, release := make(chan struct{}), make(chan struct{})
	return func(e progress.Event) {
		if e.Seq == seq {
			close(reached)
			<-release
		}
	}, reached, release
}

// seqs returns a copy of the Seqs the tailer has had so far.
func (s *seqTailer) seqs() []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]uint64(nil), s.got...)
}

// stop cancels the tailer and checks that its Tail returned
// context.Canceled once it did.
func (s *seqTailer) stop(t *testing.T) {
	t.Helper()
	s.cancel()
	assert.ErrorIs(t, <-s.done, context.Canceled)
}

// assertRefused checks that Tail and Replay of a Memory made with opts,
// which holds events 1..3 of run "a", refuse opts with ErrInvalidOptions
// and an error that contains want. The context has an hour, so that a
// Tail that took opts would wait rather than return.
func assertRefused(t *testing.T, opts progress.MemoryOptions, want string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	m := progress.NewMemory(opts)
	require.NoError(t, m.Publish(ctx, sinktest.Events("a", 1, 3)...))
	err := m.Tail(ctx, "a", 0, func(progress.Event) error { return nil })
	require.ErrorIs(t, err, progress.ErrInvalidOptions)
	assert.ErrorContains(t, err, want)
	err = m.Replay(ctx, "a", 0, func(progress.Event) error { return nil })
	require.ErrorIs(t, err, progress.ErrInvalidOptions)
	assert.ErrorContains(t, err, want)
}
