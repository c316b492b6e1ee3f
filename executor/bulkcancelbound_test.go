package executor_test

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
)

// A bulk call's grace at a cancel (a tenth of its timeout, at most a
// second) outlasted an Options.StoreTimeout shorter than it, so that a
// cancelled run waited for outputs that it could no longer store (the
// run's store calls end StoreTimeout after the cancel) and ended past
// the documented bound, twice StoreTimeout plus Grace. The grace at a
// cancel now ends with the store calls' bound.
func TestBulkCallsGraceAtACancelEndsWithTheStoresBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const storeTimeout, grace = 200 * time.Millisecond, 100 * time.Millisecond
		l := newLab(t, 30)
		started := make(chan struct{})
		var once sync.Once
		b := &batchFunc{lab: l, fn: func(ctx context.Context, reqs []executor.Request) []executor.Outcome {
			once.Do(func() { close(started) })
			<-ctx.Done()
			time.Sleep(900 * time.Millisecond) // within its grace of a second, past StoreTimeout
			return okOutcomes(reqs)
		}}
		reg := l.registry(l)
		reg[graph.KindImage] = b
		e := l.executor(executor.Options{Generators: reg, StoreTimeout: storeTimeout, Grace: grace,
			Kinds: map[string]executor.KindOptions{graph.KindImage: {Timeout: time.Minute}}})
		r, err := e.Start(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g})
		require.NoError(t, err)
		<-started
		cancelled := time.Now()
		r.Cancel()
		rep, err := r.Wait()
		took := time.Since(cancelled)
		require.ErrorIs(t, err, executor.ErrCancelled)
		assert.LessOrEqual(t, took, 2*storeTimeout+grace, "ended within twice StoreTimeout and Grace of the cancel")
		for _, id := range ids(l, graph.KindImage, 0, 1, 2) {
			assert.Contains(t, rep.Cancelled, id)
		}
	})
}
