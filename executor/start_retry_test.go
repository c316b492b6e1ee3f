package executor_test

import (
	"context"
	"errors"
	"maps"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
)

// startOutage fails the first calls of the store calls at the start of a
// run: Load of the states, Missing (or Exists, without an AssetChecker)
// of the clean nodes' assets, and GetRun of a given run ID, each its
// fails[method] first calls, with err.
type startOutage struct {
	*executor.MemoryStore
	err   error
	mu    sync.Mutex
	fails map[string]int
	calls map[string]int
}

func (s *startOutage) shake(method string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[method]++
	if s.calls[method] <= s.fails[method] {
		return s.err
	}
	return nil
}

func (s *startOutage) Load(ctx context.Context, key string) (executor.Snapshot, error) {
	if err := s.shake("Load"); err != nil {
		return executor.Snapshot{}, err
	}
	return s.MemoryStore.Load(ctx, key)
}

func (s *startOutage) Missing(ctx context.Context, refs []string) ([]string, error) {
	if err := s.shake("Missing"); err != nil {
		return nil, err
	}
	return s.MemoryStore.Missing(ctx, refs)
}

func (s *startOutage) GetRun(ctx context.Context, id string) (executor.Record, error) {
	if err := s.shake("GetRun"); err != nil {
		return executor.Record{}, err
	}
	return s.MemoryStore.GetRun(ctx, id)
}

// existsOnlyStore is an asset store without the optional interfaces: the check
// of the clean nodes' assets calls Exists, one a node.
type existsOnlyStore struct {
	executor.AssetStore
	outage *startOutage
}

func (s existsOnlyStore) Exists(ctx context.Context, ref string) (bool, error) {
	if err := s.outage.shake("Exists"); err != nil {
		return false, err
	}
	return s.AssetStore.Exists(ctx, ref)
}

// The store calls at the start of a run (the Load of the states, the
// check of the clean nodes' assets, the check of a given run ID) are made
// again after a failure that may pass, as a node's are: a connection lost
// once does not fail Start, nor Plan. An error wrapped in Permanent is
// not retried, and one that lasts fails Start after 5 calls. Before,
// Start failed at the first error of each.
func TestStartRetriesAPassingStoreError(t *testing.T) {
	reset := errors.New("connection reset by peer")
	for _, tc := range []struct {
		name      string
		err       error
		fails     map[string]int
		exists    bool // the asset store has no Missing: Exists is called
		wantErr   bool
		wantCalls map[string]int
	}{
		{"Load once", reset, map[string]int{"Load": 1}, false, false, map[string]int{"Load": 2}},
		{"Load four times", reset, map[string]int{"Load": 4}, false, false, map[string]int{"Load": 5}},
		{"Missing once", reset, map[string]int{"Missing": 1}, false, false, map[string]int{"Missing": 2}},
		{"Exists once", reset, map[string]int{"Exists": 1}, true, false, nil},
		{"Exists permanent", executor.Permanent(reset), map[string]int{"Exists": 1}, true, true, map[string]int{"Exists": 1}},
		{"GetRun once", reset, map[string]int{"GetRun": 1}, false, false, map[string]int{"GetRun": 2}},
		{"Load for good", reset, map[string]int{"Load": 100}, false, true, map[string]int{"Load": 5}},
		{"Load permanent", executor.Permanent(reset), map[string]int{"Load": 100}, false, true, map[string]int{"Load": 1}},
		{"Missing permanent", executor.Permanent(reset), map[string]int{"Missing": 100}, false, true, map[string]int{"Missing": 1}},
	} {
		for _, via := range []string{"Start", "Plan"} {
			t.Run(tc.name+"/"+via, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					l := newLab(t, 60)
					ms := executor.NewMemoryStore()
					first, err := executor.New(executor.Options{Generators: l.registry(l), States: ms, Assets: ms, Runs: ms})
					require.NoError(t, err)
					_, err = first.Run(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g})
					require.NoError(t, err)
					require.NoError(t, first.Close(context.Background()))

					shaky := &startOutage{MemoryStore: ms, err: tc.err, fails: tc.fails, calls: map[string]int{}}
					var assets executor.AssetStore = shaky
					if tc.exists {
						assets = existsOnlyStore{AssetStore: ms, outage: shaky}
					}
					e, err := executor.New(executor.Options{Generators: l.registry(l), States: shaky, Assets: assets, Runs: shaky})
					require.NoError(t, err)
					defer func() { require.NoError(t, e.Close(context.Background())) }()
					req := executor.RunRequest{GraphKey: "lecture", Graph: l.g, Marks: []dirty.Mark{narration3}, RunID: "second"}
					if via == "Plan" {
						plan, _, err := e.Plan(context.Background(), req)
						if tc.wantErr {
							require.ErrorIs(t, err, reset)
							return
						}
						require.NoError(t, err)
						assert.Equal(t, 3, plan.Len(), "the narration, its video and the timeline")
						return
					}
					r, err := e.Start(context.Background(), req)
					shaky.mu.Lock()
					calls := maps.Clone(shaky.calls)
					shaky.mu.Unlock()
					for method, want := range tc.wantCalls {
						assert.Equal(t, want, calls[method], "calls of %s", method)
					}
					if tc.wantErr {
						require.ErrorIs(t, err, reset)
						assert.NotErrorIs(t, err, executor.ErrCancelled)
						return
					}
					require.NoError(t, err)
					rep, err := r.Wait()
					require.NoError(t, err)
					assert.Equal(t, sorted(narration3.ID, "asset:video:segment[3]", "timeline"), rep.Generated)
				})
			})
		}
	}
}

// Resume and RerunFailed read the run's record with the same retries: a
// connection lost once does not refuse them. A run that is not recorded
// is refused at once, without retries.
func TestResumeRetriesAPassingStoreError(t *testing.T) {
	for _, via := range []string{"Resume", "RerunFailed"} {
		t.Run(via, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, 30)
				ms := executor.NewMemoryStore()
				shaky := &startOutage{MemoryStore: ms, err: errors.New("connection reset by peer"), fails: map[string]int{}, calls: map[string]int{}}
				e, err := executor.New(executor.Options{Generators: l.registry(l), States: shaky, Assets: shaky, Runs: shaky})
				require.NoError(t, err)
				defer func() { require.NoError(t, e.Close(context.Background())) }()
				rep, err := e.Run(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g})
				require.NoError(t, err)

				again := e.Resume
				if via == "RerunFailed" {
					again = e.RerunFailed
				}
				shaky.mu.Lock()
				shaky.fails["GetRun"], shaky.calls["GetRun"] = 1, 0
				shaky.mu.Unlock()
				r, err := again(context.Background(), l.g, rep.Record.ID)
				require.NoError(t, err)
				_, err = r.Wait()
				require.NoError(t, err)

				shaky.mu.Lock()
				shaky.fails["GetRun"], shaky.calls["GetRun"] = 0, 0
				shaky.mu.Unlock()
				_, err = again(context.Background(), l.g, "never-recorded")
				require.ErrorIs(t, err, executor.ErrNotFound)
				shaky.mu.Lock()
				assert.Equal(t, 1, shaky.calls["GetRun"], "calls of GetRun for a run not recorded")
				shaky.mu.Unlock()
			})
		})
	}
}
