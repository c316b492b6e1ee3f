package executor_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
)

// With Options.Converge a node settles in each round it is planned in,
// and the Report listed it under each outcome (superseded and then
// cancelled, skipped and then generated), while Counts' doc says that the
// lists and the counts name each node once: a host that summed them
// counted more nodes than it had. Each node is now in the list of its
// last outcome alone, the one its last settling event said.
func TestConvergeReportsEachNodesLastOutcomeOnce(t *testing.T) {
	const video = "asset:video:segment[3]"
	for _, tc := range []struct {
		name   string
		cancel bool // the run is cancelled as round 2 remakes the video
		want   map[string][]string
	}{
		{"remade in round 2", false, map[string][]string{"generated": {video, "timeline"}}},
		{"cancelled in round 2", true, map[string][]string{"cancelled": {video}, "skipped": {"timeline"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, 60)
				e := l.executor(executor.Options{Converge: 1})
				_, err := l.run(e)
				require.NoError(t, err)
				var run atomic.Pointer[executor.Run]
				// Its old parameters fail, so that round 1 supersedes it and
				// skips the timeline; round 2 makes the edited one.
				l.set(video, func(ctx context.Context, req executor.Request) ([]byte, error) {
					if req.Rev == 0 {
						return nil, executor.Permanent(errors.New("provider refused the prompt"))
					}
					if tc.cancel {
						run.Load().Cancel()
						<-ctx.Done()
						return nil, ctx.Err()
					}
					return nil, nil
				})
				r, err := e.Start(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g,
					Marks: []dirty.Mark{{ID: video, Reason: dirty.ReasonForced}}})
				require.NoError(t, err)
				run.Store(r)
				time.Sleep(10 * time.Second)
				synctest.Wait()
				_, err = e.Edit(context.Background(), l.g, "lecture", video)
				require.NoError(t, err)
				rep, err := r.Wait()
				if tc.cancel {
					require.ErrorIs(t, err, executor.ErrCancelled)
				} else {
					require.NoError(t, err)
				}
				require.Equal(t, 2, rep.Rounds)
				lists := map[string][]string{"generated": rep.Generated, "unchanged": rep.Unchanged, "failed": rep.Failed,
					"skipped": rep.Skipped, "superseded": rep.Superseded, "cancelled": rep.Cancelled}
				seen := map[string]string{}
				for name, ids := range lists {
					for _, id := range ids {
						if other, ok := seen[id]; ok {
							t.Errorf("%s is in %s and in %s", id, other, name)
						}
						seen[id] = name
					}
				}
				got := map[string][]string{}
				for name, ids := range lists {
					if len(ids) > 0 {
						got[name] = ids
					}
				}
				assert.Equal(t, tc.want, got)
				c := rep.Record.Counts
				assert.Equal(t, []int{len(rep.Generated), len(rep.Unchanged), len(rep.Failed), len(rep.Skipped), len(rep.Superseded), len(rep.Cancelled)},
					[]int{c.Generated, c.Unchanged, c.Failed, c.Skipped, c.Superseded, c.Cancelled}, "Counts")
			})
		})
	}
}
