package executor_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
)

// A cancel gives a single node's call a grace to return its output (see
// d2d63b5), but the grace ran from the cancel whatever was left of the
// call's timeout: a call cancelled just before its deadline was waited
// for past it, and an output returned after its timeout, which the
// executor would have abandoned without the cancel, was kept. The grace
// now ends at the call's deadline at the latest, as the docs say ("at its
// deadline, or a short grace after cancellation, the call is abandoned").
func TestSingleCallGraceEndsAtItsTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		img := ids(l, graph.KindImage, 0)[0]
		gen, started := l.stallAt(img, func(context.Context) {
			time.Sleep(10200 * time.Millisecond) // past its timeout, ignoring its context
		})
		e := l.executor(executor.Options{Generators: l.registry(gen),
			Kinds: map[string]executor.KindOptions{graph.KindImage: {Timeout: 10 * time.Second}}})
		r, err := e.Start(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g})
		require.NoError(t, err)
		<-started
		time.Sleep(9500 * time.Millisecond)
		r.Cancel() // its grace, a second, would end past its timeout
		rep, err := r.Wait()
		require.ErrorIs(t, err, executor.ErrCancelled)
		assert.NotContains(t, rep.Generated, img, "kept an output returned past its call's timeout")
		assert.Contains(t, rep.Cancelled, img)
		assert.Equal(t, dirty.StatusCancelled, l.snapshot().States[img].Status)
	})
}
