package executor_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/progress"
)

// commitsDown is a state store whose commits that make node id clean
// fail with a lost connection while down is set.
type commitsDown struct {
	*executor.MemoryStates
	id   string
	down atomic.Bool
}

func (c *commitsDown) Commit(ctx context.Context, key string, expect int64, changes []executor.Change) (int64, error) {
	for _, ch := range changes {
		if ch.ID == c.id && ch.State.Status == dirty.StatusClean && c.down.Load() {
			return 0, errRefused
		}
	}
	return c.MemoryStates.Commit(ctx, key, expect, changes)
}

// An outside team's trial (B2): a node whose output was made, and whose
// Put failed beyond Options.StoreRetry, waited out its kind's backoff
// (20 s) to put it again, and a drain then, the store back and nothing
// else running, took the rest of that backoff (15.7 s), where a cancel
// put the output at once: Run.Drain says that a node waiting out its
// retry's backoff has no call under way, and that a run with none ends at
// once. So did a node whose results commit failed, waiting out its
// backoff to commit its output again. A drain now cuts either backoff
// short, as a cancel does: the output is stored and committed at once,
// and the run ends, drained, with the output kept and paid for once.
func TestDrainCutsAPutOrCommitsBackoffShort(t *testing.T) {
	for _, tc := range []struct {
		name string
		down string // "Put" or "Commit"
	}{
		{"put again", "Put"},
		{"commit again", "Commit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, 30)
				assets := &drainPuts{AssetStore: l.assets, key: "/script/"}
				states := &commitsDown{MemoryStates: l.states, id: "script"}
				if tc.down == "Put" {
					assets.fails = 1 << 20
				} else {
					states.down.Store(true)
				}
				backoff := 20 * time.Second
				e, err := executor.New(executor.Options{Generators: l.registry(l), States: states, Assets: assets, Runs: l.runs, Sink: l,
					Default: executor.KindOptions{Retry: executor.RetryPolicy{MaxAttempts: 3, InitialInterval: backoff, MaxInterval: backoff}}})
				require.NoError(t, err)
				t.Cleanup(func() { require.NoError(t, e.Close(context.Background())) })
				r, err := e.Start(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g})
				require.NoError(t, err)
				// The script's call ends at 20 s, its store's retries
				// within 1.5 s: its node then waits out its backoff.
				var retrying []progress.Event
				for len(retrying) == 0 {
					time.Sleep(100 * time.Millisecond)
					for _, ev := range l.eventsOf(progress.NodeRetrying) {
						if ev.Node == "script" {
							retrying = append(retrying, ev)
						}
					}
				}
				require.Len(t, retrying, 1)
				if tc.down == "Put" {
					require.True(t, strings.Contains(retrying[0].Error, "store asset"), retrying[0].Error)
				} else {
					require.True(t, strings.Contains(retrying[0].Message, "commit the output made again"), retrying[0].Message)
				}
				time.Sleep(time.Second)
				// The store is back, and nothing else runs.
				assets.mu.Lock()
				assets.fails = 0
				assets.mu.Unlock()
				states.down.Store(false)
				require.Empty(t, l.activeAll())
				drained := time.Now()
				r.Drain(nil)
				rep, err := r.Wait()
				took := time.Since(drained)
				require.ErrorIs(t, err, executor.ErrDrained)
				assert.Less(t, took, time.Second, "the drain waited out the backoff")
				assert.Equal(t, []string{"script"}, rep.Generated)
				assert.Equal(t, 1, l.callsOf("script"), "the output was paid for again")
				l.requireStoredClean([]string{"script"})
			})
		})
	}
}
