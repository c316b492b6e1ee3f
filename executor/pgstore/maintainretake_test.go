package pgstore_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/internal/testenv"
)

// Maintain held the runs it resumed with plain Hold: a Postgres blip
// ended their locks' sessions and cancelled them at once, with
// lock-lost, their paid calls under way cut, whatever HoldFor offered a
// host's own runs. With MaintainOptions.Retake, a resumed run's lock is
// taken again on a new session: the run goes on to its end, its call
// under way uncut, and its key's lock is freed at its end.
func TestMaintainRetakesTheLockOfAResumedRun(t *testing.T) {
	t.Parallel() // its own schema
	s, pg := newStore(t)
	ctx := testenv.Context(t, 60*time.Second)
	key := testenv.UniqueName(t)
	leftRunning(t, ctx, s, "dead", key, build(t, 30), time.Now().Add(-time.Hour).Truncate(time.Second))
	p := newProvider()
	started, release := p.holdKind(graph.KindVideo)
	e := newExecutor(t, s, p.registry())
	logs := &logBuffer{}
	passes, stop := maintaining(t, ctx, s, e, pgstore.MaintainOptions{Every: time.Hour, Retake: 30 * time.Second,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	pass := next(t, ctx, passes)
	require.NoError(t, pass.Err)
	require.Len(t, pass.LeftRunning, 1)
	r := pass.LeftRunning[0]
	require.Equal(t, pgstore.Resumed, r.Outcome)
	<-started

	lockKey := s.GraphLockKey(key)
	ended := lockHolder(t, pg.Pool, lockKey)
	require.NotZero(t, ended, "the resumed run's lock's session")
	endLockSession(t, ctx, pg, s, key)
	for !strings.Contains(logs.String(), "re-taken") {
		select {
		case <-r.Run.Done():
			t.Fatal("the resumed run ended as its lock's session did")
		case <-ctx.Done():
			t.Fatal("the lock was not re-taken")
		case <-time.After(10 * time.Millisecond):
		}
	}
	assert.NotContains(t, []int32{0, ended}, lockHolder(t, pg.Pool, lockKey), "the session holding the lock")

	close(release)
	rep, err := r.Wait()
	require.NoError(t, err, "the resumed run goes on under the re-taken lock, and its lock is freed")
	assert.Equal(t, executor.RunSucceeded, rep.Record.Status)
	p.mu.Lock()
	for id, n := range p.calls {
		assert.Equal(t, 1, n, "calls of %s: the call under way was not cut", id)
	}
	p.mu.Unlock()
	assert.Zero(t, lockSessions(t, pg.Pool, lockKey, true), "the new session's lock is freed")
	require.Error(t, stop(context.Canceled))
}
