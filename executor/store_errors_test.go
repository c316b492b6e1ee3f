package executor_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/progress"
)

// shakyStates fails commits as told: after applying them (a lost reply),
// or without applying them.
type shakyStates struct {
	*executor.MemoryStates
	mu         sync.Mutex
	commits    int
	lostReply  map[int]bool // commit numbers applied, then reported failed
	failBefore int          // commits from this number on fail unapplied (0: never)
}

func (s *shakyStates) Commit(ctx context.Context, key string, expect int64, changes []executor.Change) (int64, error) {
	s.mu.Lock()
	s.commits++
	n := s.commits
	s.mu.Unlock()
	if s.failBefore > 0 && n >= s.failBefore {
		return 0, errors.New("connection reset")
	}
	v, err := s.MemoryStates.Commit(ctx, key, expect, changes)
	if err == nil && s.lostReply[n] {
		return 0, errors.New("connection reset after commit")
	}
	return v, err
}

func TestCommitWhoseReplyWasLostIsKept(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 60)
		shaky := &shakyStates{MemoryStates: l.states, lostReply: map[int]bool{1: true, 3: true, 4: true}}
		e, err := executor.New(executor.Options{Generators: l.registry(l), States: shaky, Assets: l.assets})
		require.NoError(t, err)
		rep, err := l.run(e)
		require.NoError(t, err)
		assert.Len(t, rep.Generated, l.g.Len())
		l.requireAllClean()
		require.NoError(t, e.Close(context.Background()))
	})
}

func TestCommitThatKeepsFailingFailsItsNodes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		shaky := &shakyStates{MemoryStates: l.states, failBefore: 1}
		e, err := executor.New(executor.Options{Generators: l.registry(l), States: shaky, Assets: l.assets})
		require.NoError(t, err)
		rep, err := l.run(e)
		require.ErrorIs(t, err, executor.ErrRunFailed)
		assert.Equal(t, []string{"script"}, rep.Failed, "the script's result could not be recorded")
		assert.Len(t, rep.Skipped, l.g.Len()-1)
		var re *executor.RunError
		require.ErrorAs(t, err, &re)
		assert.ErrorContains(t, re.Failed[0], "record result")
		assert.Zero(t, l.snapshot().Version, "nothing was recorded")
		require.NoError(t, e.Close(context.Background()))
	})
}

func TestSinkPanicNeverFailsTheRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		calls := 0
		sink := progress.SinkFunc(func(context.Context, ...progress.Event) error {
			calls++
			panic("sink bug")
		})
		e, err := executor.New(executor.Options{Generators: l.registry(l), States: l.states, Assets: l.assets, Sink: sink})
		require.NoError(t, err)
		rep, err := l.run(e)
		require.NoError(t, err)
		assert.Equal(t, executor.RunSucceeded, rep.Record.Status)
		assert.Positive(t, calls)
		rep2, err := l.run(e, dirty.Mark{ID: "asset:music", Reason: dirty.ReasonEdited})
		require.NoError(t, err)
		assert.Equal(t, []string{"asset:music"}, rep2.Generated[:1])
	})
}
