package executor_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/progress"
)

// A validator is host code, run as part of the attempt: one that hangs is
// bounded by the attempt's timeout and by a cancel, as a generator that
// hangs is, and cannot hold the run.

func TestHungValidatorTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		var checks atomic.Int32
		e := l.executor(executor.Options{Kinds: map[string]executor.KindOptions{
			graph.KindImage: {
				Timeout: time.Minute,
				Retry:   executor.RetryPolicy{MaxAttempts: 2},
				Validate: func(req executor.Request, _ executor.Asset) error {
					if req.NodeID == "asset:image:segment[1]" {
						checks.Add(1)
						time.Sleep(time.Hour) // a check stuck on something
					}
					return nil
				},
			},
		}})
		start := time.Now()
		rep, err := l.run(e)
		var te *executor.TimeoutError
		require.ErrorAs(t, err, &te)
		assert.Equal(t, time.Minute, te.Timeout)
		assert.Equal(t, []string{"asset:image:segment[1]"}, rep.Failed)
		assert.Equal(t, int32(2), checks.Load(), "each attempt was checked")
		assert.Equal(t, sorted("asset:video:segment[1]", "timeline"), rep.Skipped)
		assert.Len(t, rep.Generated, l.g.Len()-3)
		// Two attempts of a minute, not the two hours the checks take.
		assert.Less(t, time.Since(start), 10*time.Minute)
		// The late verdicts were thrown away: the node is not clean.
		st := l.snapshot().States["asset:image:segment[1]"]
		assert.Equal(t, dirty.StatusFailed, st.Status)
		assert.Empty(t, st.OutputHash)
	})
}

func TestCancelDuringHungValidator(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		release := make(chan struct{})
		defer close(release) // lets the abandoned check end with the test
		var stuck atomic.Bool
		e := l.executor(executor.Options{Kinds: map[string]executor.KindOptions{
			graph.KindScript: {Timeout: 24 * time.Hour, Validate: func(executor.Request, executor.Asset) error {
				stuck.Store(true)
				<-release // only the cancel can end the attempt
				return nil
			}},
		}})
		ctx, cancel := context.WithCancel(context.Background())
		r, err := e.Start(ctx, executor.RunRequest{GraphKey: "lecture", Graph: l.g})
		require.NoError(t, err)
		time.Sleep(time.Hour)
		synctest.Wait()
		require.True(t, stuck.Load(), "the script's check is under way")
		cancel()
		rep, err := r.Wait()
		require.ErrorIs(t, err, executor.ErrCancelled)
		assert.Equal(t, executor.RunCancelled, rep.Record.Status)
		assert.Equal(t, []string{graph.KindScript}, rep.Cancelled)
		assert.Empty(t, rep.Generated)
		assert.Equal(t, dirty.StatusCancelled, l.snapshot().States[graph.KindScript].Status)
		l.requireEventOrder(progress.RunCancelled)
	})
}

func TestHungValidatorInBulkCallTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 60)
		b := &batchFunc{lab: l, fn: func(_ context.Context, reqs []executor.Request) []executor.Outcome {
			return okOutcomes(reqs)
		}}
		reg := l.registry(l)
		reg[graph.KindImage] = b
		e := l.executor(executor.Options{Generators: reg, Kinds: map[string]executor.KindOptions{
			graph.KindImage: {
				Timeout: time.Minute,
				Validate: func(req executor.Request, _ executor.Asset) error {
					if req.NodeID == "asset:image:segment[2]" && req.Attempt == 1 {
						time.Sleep(time.Hour) // stuck in the bulk call's checks only
					}
					return nil
				},
			},
		}})
		start := time.Now()
		rep, err := l.run(e)
		require.NoError(t, err)
		assert.Len(t, rep.Generated, l.g.Len())
		assert.Less(t, time.Since(start), 10*time.Minute, "a hung check held the run")
		l.requireAllClean()
	})
}

// The output of an attempt abandoned at its deadline is thrown away
// unchecked: no host code runs for it, not even after the run is over.
func TestValidatorSkipsAbandonedOutput(t *testing.T) {
	for _, bulk := range []bool{false, true} {
		t.Run(fmt.Sprintf("bulk %v", bulk), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, 30)
				kind := graph.KindScript
				reg := l.registry(l)
				if bulk {
					kind = graph.KindImage
					var first sync.Once
					reg[kind] = &batchFunc{lab: l, fn: func(_ context.Context, reqs []executor.Request) []executor.Outcome {
						slow := false
						first.Do(func() { slow = true })
						if slow {
							time.Sleep(3 * time.Hour) // ignores its context
						}
						return okOutcomes(reqs)
					}}
				} else {
					l.set(kind, func(_ context.Context, req executor.Request) ([]byte, error) {
						if req.Attempt == 1 {
							time.Sleep(3 * time.Hour) // ignores its context
						}
						return nil, nil
					})
				}
				var over atomic.Bool
				var late atomic.Int32
				e := l.executor(executor.Options{Generators: reg, Kinds: map[string]executor.KindOptions{
					kind: {Timeout: time.Minute, Validate: func(executor.Request, executor.Asset) error {
						if over.Load() {
							late.Add(1)
						}
						return nil
					}},
				}})
				_, err := l.run(e)
				require.NoError(t, err)
				over.Store(true)
				time.Sleep(4 * time.Hour) // the abandoned calls return
				synctest.Wait()
				assert.Zero(t, late.Load(), "checks of abandoned outputs, after the run")
			})
		})
	}
}
