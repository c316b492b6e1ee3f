package executor_test

import (
	"context"
	"errors"
	"strings"
	"sync"
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

// A node whose attempts fail while it is edited is superseded, as one
// that succeeds is: its new parameters were never tried, so it is no
// failure of the run; it stays dirty, its dependents are skipped as a
// superseded node's, and a Converge round remakes it.
func TestFailedAttemptOfAnEditedNodeIsSuperseded(t *testing.T) {
	const video = "asset:video:segment[3]"
	for _, tc := range []struct {
		name     string
		converge int
	}{
		{name: "left dirty"},
		{name: "converge remakes it", converge: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, 60)
				e := l.executor(executor.Options{Converge: tc.converge})
				_, err := l.run(e)
				require.NoError(t, err)
				l.resetCalls()
				// Its old parameters fail; the edited ones succeed.
				l.set(video, func(_ context.Context, req executor.Request) ([]byte, error) {
					if req.Rev == 0 {
						return nil, executor.Permanent(errors.New("provider refused the prompt"))
					}
					return nil, nil
				})
				r, err := e.Start(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g,
					Marks: []dirty.Mark{{ID: video, Reason: dirty.ReasonForced}}})
				require.NoError(t, err)
				time.Sleep(10 * time.Second)
				synctest.Wait()
				_, err = e.Edit(context.Background(), l.g, "lecture", video)
				require.NoError(t, err)
				rep, err := r.Wait()
				require.NoError(t, err)
				assert.Empty(t, rep.Failed)
				assert.Zero(t, rep.Record.Counts.Failed)
				assert.Empty(t, l.eventsOf(progress.NodeFailed))
				sup := l.eventsOf(progress.NodeSuperseded)
				require.Len(t, sup, 1)
				assert.Equal(t, video, sup[0].Node)
				assert.Contains(t, sup[0].Message, "edited while it ran")
				assert.Contains(t, sup[0].Message, "provider refused the prompt")
				skipped := l.eventsOf(progress.NodeSkipped)
				require.Len(t, skipped, 1)
				assert.Equal(t, "timeline", skipped[0].Node)
				assert.Contains(t, skipped[0].Message, "upstream "+video+" was superseded")
				if tc.converge == 0 {
					assert.Equal(t, 1, rep.Rounds)
					assert.Equal(t, []string{video}, rep.Superseded)
					assert.Equal(t, 1, rep.Record.Counts.Superseded)
					assert.Equal(t, []string{"timeline"}, rep.Skipped)
					assert.Equal(t, sorted(video, "timeline"), rep.Dirty)
					st := l.snapshot().States[video]
					assert.Equal(t, dirty.StatusDirty, st.Status)
					assert.Equal(t, int64(1), st.Rev)
					assert.Empty(t, st.LastError, "the failure of the old parameters is not recorded")
					// The next run makes it with its new parameters.
					rep, err = l.run(e)
					require.NoError(t, err)
					assert.Equal(t, sorted(video, "timeline"), rep.Generated)
				} else {
					assert.Equal(t, 2, rep.Rounds)
					// Listed under their last outcome alone.
					assert.Equal(t, sorted(video, "timeline"), rep.Generated)
					assert.Empty(t, rep.Superseded)
					assert.Empty(t, rep.Skipped)
					assert.Empty(t, rep.Dirty)
				}
				l.requireAllClean()
				l.requireEventOrder(progress.RunFinished)
			})
		})
	}
}

// editingAssets is an asset store whose Gets, once armed, first run
// onGet, once, and then fail for good: a node's inputs that cannot be
// read, while the node is edited. It has no GetMany.
type editingAssets struct {
	executor.AssetStore
	armed atomic.Bool
	once  sync.Once
	onGet func()
}

func (a *editingAssets) Get(ctx context.Context, ref string) (executor.Asset, error) {
	if a.armed.Load() {
		a.once.Do(a.onGet)
		return executor.Asset{}, executor.Permanent(errors.New("asset store: disk gone"))
	}
	return a.AssetStore.Get(ctx, ref)
}

// A node that fails before its call, its inputs unreadable, while it is
// edited, is superseded too, and its event says it failed before its
// call.
func TestFailedReadOfAnEditedNodeIsSuperseded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		l := newLab(t, 30)
		assets := &editingAssets{AssetStore: l.assets}
		e, err := executor.New(executor.Options{Generators: l.registry(l), States: l.states, Assets: assets,
			Runs: l.runs, Sink: l})
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, e.Close(ctx)) })
		_, err = l.run(e)
		require.NoError(t, err)
		assets.onGet = func() {
			_, err := e.Edit(ctx, l.g, "lecture", "timeline")
			assert.NoError(t, err)
		}
		assets.armed.Store(true)
		l.resetCalls()
		rep, err := e.Run(ctx, executor.RunRequest{GraphKey: "lecture", Graph: l.g,
			Marks: []dirty.Mark{{ID: "timeline", Reason: dirty.ReasonForced}}})
		require.NoError(t, err)
		assert.Empty(t, rep.Failed)
		assert.Equal(t, []string{"timeline"}, rep.Superseded)
		assert.Empty(t, l.calledIDs(), "no generator was called")
		sup := l.eventsOf(progress.NodeSuperseded)
		require.Len(t, sup, 1)
		assert.True(t, strings.HasPrefix(sup[0].Message, "edited while it ran: it failed before its call (read the output of "), sup[0].Message)
		assert.True(t, strings.HasSuffix(sup[0].Message, "asset store: disk gone): the failure was not recorded, and it stays dirty"), sup[0].Message)
		st := l.snapshot().States["timeline"]
		assert.Equal(t, dirty.StatusDirty, st.Status)
		assert.Equal(t, int64(1), st.Rev)
	})
}
