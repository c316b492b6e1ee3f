package executor_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
)

// drainPuts fails the first fails Puts of the keys that contain key,
// as a store that is down for a while.
type drainPuts struct {
	executor.AssetStore
	key   string
	mu    sync.Mutex
	fails int
}

func (f *drainPuts) Put(ctx context.Context, key string, a executor.Asset) (string, error) {
	f.mu.Lock()
	if strings.Contains(key, f.key) && f.fails > 0 {
		f.fails--
		f.mu.Unlock()
		return "", errors.New("connection reset by peer")
	}
	f.mu.Unlock()
	return f.AssetStore.Put(ctx, key, a)
}

// A drain keeps an output made during it whose Put failed beyond the
// store's retries: its node's next attempt, at once (the drain cuts its
// backoff short), puts it again, without a generator call, and the run
// then ends, drained.
func TestDrainPutsAgainAnOutputMade(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		assets := &drainPuts{AssetStore: l.assets, key: "/script/", fails: 6}
		e, err := executor.New(executor.Options{Generators: l.registry(l), States: l.states, Assets: assets, Runs: l.runs, Sink: l,
			Default: executor.KindOptions{Retry: executor.RetryPolicy{MaxAttempts: 3, InitialInterval: 5 * time.Second, MaxInterval: 5 * time.Second}}})
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, e.Close(context.Background())) })
		r, err := e.Start(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g})
		require.NoError(t, err)
		time.Sleep(time.Second)
		require.Equal(t, []string{"script"}, l.activeAll())
		r.Drain(nil)
		rep, err := r.Wait()
		require.ErrorIs(t, err, executor.ErrDrained)
		assert.Equal(t, []string{"script"}, rep.Generated)
		assert.Equal(t, []string{"script"}, l.calledIDs())
		assert.Equal(t, 1, l.callsOf("script"), "the output was paid for again")
		l.requireStoredClean([]string{"script"})
	})
}
