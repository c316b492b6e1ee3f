package executor_test

import (
	"context"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
)

// conflictCallers are the calls that reload and try again after losing a
// commit race: each, on an executor whose states are s, whose every
// commit now loses (s fails them with a conflict), after the setup the
// call needs.
var conflictCallers = []struct {
	name string
	// setup returns the states (which the test then makes lose every
	// commit) and the call.
	setup func(t *testing.T) (*editOutage, func(ctx context.Context) error)
}{
	{"Edit", func(t *testing.T) (*editOutage, func(ctx context.Context) error) {
		l := newLab(t, 30)
		s := &editOutage{MemoryStates: executor.NewMemoryStates()}
		e, err := executor.New(executor.Options{Generators: l.registry(l), States: s})
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, e.Close(context.Background())) })
		return s, func(ctx context.Context) error {
			_, err := e.Edit(ctx, l.g, "lecture", "script")
			return err
		}
	}},
	// A run's start commits its plan, and lost to a busy key (another
	// run committing its results, edits) after 16 tries at once: under
	// load TestEditTxAndRunsLoseNoEdit (pgstore) saw a run fail so.
	{"Run", func(t *testing.T) (*editOutage, func(ctx context.Context) error) {
		l := newLab(t, 30)
		s := &editOutage{MemoryStates: executor.NewMemoryStates()}
		e, err := executor.New(executor.Options{Generators: l.registry(l), States: s, Logger: slog.New(slog.DiscardHandler)})
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, e.Close(context.Background())) })
		return s, func(ctx context.Context) error {
			_, err := e.Run(ctx, executor.RunRequest{GraphKey: "lecture", Graph: l.g})
			return err
		}
	}},
	{"Forget", func(t *testing.T) (*editOutage, func(ctx context.Context) error) {
		s, e, short := shrunkOnOutage(t)
		return s, func(ctx context.Context) error {
			_, err := e.Forget(ctx, short, "lecture")
			return err
		}
	}},
}

// loseEveryCommit makes every later commit of s fail, unapplied, with a
// conflict, and returns the number of commits made so far.
func loseEveryCommit(s *editOutage) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = &executor.ConflictError{GraphKey: "lecture", Expected: 1, Actual: 2}
	s.failAll = true
	return s.commits
}

// Edit and Forget reloaded and committed again at once after each lost
// commit race, up to 64 times: under contention they spun, and two
// writers that lost to each other retried in step. They now wait a
// short, jittered, growing pause between the tries (in the bubble's
// clock, so no real time passes), still 64 retries at most.
func TestConflictRetriesBackOff(t *testing.T) {
	for _, c := range conflictCallers {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s, call := c.setup(t)
				var took []time.Duration
				for range 2 {
					before := loseEveryCommit(s)
					start := time.Now()
					err := call(t.Context())
					took = append(took, time.Since(start))
					require.ErrorIs(t, err, executor.ErrConflict)
					s.mu.Lock()
					commits := s.commits - before
					s.mu.Unlock()
					assert.Equal(t, 65, commits, "the first commit and 64 retries")
				}
				for _, d := range took {
					assert.Greater(t, d, 64*time.Millisecond/2, "a pause between the tries")
					assert.LessOrEqual(t, d, 2*time.Second, "short pauses")
				}
				assert.NotEqual(t, took[0], took[1], "jittered")
			})
		})
	}
}

// A cancel during the pause after a lost commit race ends the call at
// once, with an error that wraps ctx's and the conflict.
func TestConflictRetryPauseEndsWithItsContext(t *testing.T) {
	for _, c := range conflictCallers {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s, call := c.setup(t)
				loseEveryCommit(s)
				ctx, cancel := context.WithCancel(t.Context())
				done := make(chan error, 1)
				go func() { done <- call(ctx) }()
				synctest.Wait() // in its pause, after a lost commit
				start := time.Now()
				cancel()
				err := <-done
				assert.Zero(t, time.Since(start), "it ends at once")
				require.ErrorIs(t, err, context.Canceled)
				assert.ErrorIs(t, err, executor.ErrConflict, "and the conflict it was retrying")
				s.mu.Lock()
				defer s.mu.Unlock()
				assert.Less(t, s.commits, 65, "it stopped retrying")
			})
		})
	}
}
