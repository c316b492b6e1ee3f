package executor_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
)

// cancelOnCommit applies, once armed, the next commit, then ends the
// caller's ctx (cancel) and loses the commit's reply, as a connection
// that a cancelled request drops does: the call fails with an error
// that may pass (ctxErr: ctx's own error; else a lost connection).
type cancelOnCommit struct {
	*executor.MemoryStates
	ctxErr bool

	mu     sync.Mutex
	cancel context.CancelFunc
}

func (s *cancelOnCommit) arm(cancel context.CancelFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cancel = cancel
}

func (s *cancelOnCommit) Commit(ctx context.Context, key string, expect int64, changes []executor.Change) (int64, error) {
	s.mu.Lock()
	cancel := s.cancel
	s.cancel = nil
	s.mu.Unlock()
	v, err := s.MemoryStates.Commit(ctx, key, expect, changes)
	if err != nil || cancel == nil {
		return v, err
	}
	cancel()
	if s.ctxErr {
		return 0, ctx.Err()
	}
	return 0, errors.New("read tcp 127.0.0.1:5432: connection reset by peer")
}

// A Start or an Edit whose commit went through while its ctx ended, its
// reply lost, returned an error that did not say that the commit may
// have gone through ("commit the plan of ...: context canceled"), though
// the package doc and the README promise that a Start that fails changes
// nothing unless its error says so: here the key's graph was the run's
// and its plan's nodes dirty (a host had no hint to resume the run), and
// an Edit that a host made again gave its nodes a second revision.
func TestReview10StartOrEditWhoseCommitWentThroughAsCtxEndedSaysSo(t *testing.T) {
	for _, ctxErr := range []bool{false, true} {
		name := "lost connection"
		if ctxErr {
			name = "ctx's error"
		}
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				l := newLab(t, 30)
				s := &cancelOnCommit{MemoryStates: l.states, ctxErr: ctxErr}
				e, err := executor.New(executor.Options{Generators: l.registry(l), States: s, Assets: l.assets, Runs: l.runs})
				require.NoError(t, err)
				defer func() { require.NoError(t, e.Close(ctx)) }()
				_, err = e.Run(ctx, executor.RunRequest{GraphKey: "lecture", Graph: l.g, RunID: "first"})
				require.NoError(t, err)
				before := l.snapshot()

				g4, err := graph.Build(graph.Lecture(), 40)
				require.NoError(t, err)
				sctx, cancel := context.WithCancel(ctx)
				s.arm(cancel)
				_, err = e.Start(sctx, executor.RunRequest{GraphKey: "lecture", Graph: g4, RunID: "new"})
				require.Error(t, err)
				assert.NotEqual(t, before.Version, l.snapshot().Version, "the plan was committed")
				assert.Contains(t, err.Error(), "may have gone through")
				assert.ErrorIs(t, err, executor.ErrCancelled)

				ectx, cancel := context.WithCancel(ctx)
				s.arm(cancel)
				v := l.snapshot().Version
				_, err = e.Edit(ectx, g4, "lecture", "script")
				require.Error(t, err)
				assert.Equal(t, v+1, l.snapshot().Version, "the edit was committed")
				assert.Contains(t, err.Error(), "may have gone through")
				assert.ErrorIs(t, err, context.Canceled)
			})
		})
	}
}
