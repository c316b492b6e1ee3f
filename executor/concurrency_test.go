package executor_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
)

// sameTakes is a bulk image generator whose takes depend on the node only,
// as a deterministic provider's or a cache's would: two runs get the same
// output, hash and asset reference. Run B's image 1 is refused.
type sameTakes struct{ *lab }

func (s sameTakes) GenerateBatch(ctx context.Context, reqs []executor.Request) []executor.Outcome {
	time.Sleep(8 * time.Second)
	out := make([]executor.Outcome, len(reqs))
	for i, r := range reqs {
		if r.RunID == "B" && r.NodeID == "asset:image:segment[1]" {
			out[i].Err = executor.Permanent(errors.New("refused"))
			continue
		}
		out[i].Asset = executor.Asset{Data: []byte("take 2 of " + r.NodeID)}
	}
	return out
}

// failsOnce is a state store whose first commit that pick selects
// reports an error: after applying it when applied is set, else without.
// hook runs before the error returns.
type failsOnce struct {
	executor.StateStore
	applied bool
	pick    func([]executor.Change) bool
	hook    func()
	done    bool
}

func (s *failsOnce) Commit(ctx context.Context, key string, expect int64, changes []executor.Change) (int64, error) {
	if s.done || !s.pick(changes) {
		return s.StateStore.Commit(ctx, key, expect, changes)
	}
	if s.applied {
		if v, err := s.StateStore.Commit(ctx, key, expect, changes); err != nil {
			return v, err
		}
	}
	s.done = true
	s.hook()
	return 0, errors.New("connection lost")
}

// Run A's commit of images 0 and 1 fails without being applied; before A
// reloads, run B commits the same take of image 0 and fails image 1. A
// must not take its commit for applied on the strength of image 0: what
// it reports generated is stored clean.
func TestConcurrentRunsSameTakeIsNoProofOfCommit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		_, err := l.run(l.executor(executor.Options{}))
		require.NoError(t, err)
		image0, image1 := "asset:image:segment[0]", "asset:image:segment[1]"
		reg := l.registry(l)
		reg[graph.KindImage] = sameTakes{l}
		var e *executor.Executor
		states := &failsOnce{StateStore: l.states,
			pick: func(cs []executor.Change) bool {
				clean := func(id string) bool {
					return slices.ContainsFunc(cs, func(c executor.Change) bool {
						return c.ID == id && c.State.Status == dirty.StatusClean
					})
				}
				return clean(image0) && clean(image1)
			},
			hook: func() {
				b, err := e.Start(context.Background(), executor.RunRequest{RunID: "B", GraphKey: "lecture", Graph: l.g})
				require.NoError(t, err)
				_, err = b.Wait()
				require.Error(t, err, "B's image 1 was refused")
			}}
		e, err = executor.New(executor.Options{Generators: reg, States: states, Assets: l.assets, Runs: l.runs})
		require.NoError(t, err)
		force := []dirty.Mark{{ID: image0, Reason: dirty.ReasonForced}, {ID: image1, Reason: dirty.ReasonForced}}
		a, err := e.Start(context.Background(), executor.RunRequest{RunID: "A", GraphKey: "lecture", Graph: l.g, Marks: force})
		require.NoError(t, err)
		repA, _ := a.Wait()
		require.NotNil(t, repA)
		snap := l.snapshot()
		for _, id := range append(slices.Clone(repA.Generated), repA.Unchanged...) {
			assert.Equal(t, dirty.StatusClean, snap.States[id].Status, "A reports %s made or kept; the store holds it %s", id, snap.States[id].Status)
		}
		assert.Contains(t, repA.Superseded, image1)
		require.NoError(t, e.Close(context.Background()))
	})
}

// flakyCommits is a state store whose commits of results fail at random,
// before or after being applied. Commits that only mark nodes dirty (the
// start of a run, an edit) do not fail, so that the test can count edits.
type flakyCommits struct {
	executor.StateStore
	mu  sync.Mutex
	rng *rand.Rand
	p   float64
}

func (s *flakyCommits) Commit(ctx context.Context, key string, expect int64, changes []executor.Change) (int64, error) {
	s.mu.Lock()
	before, after := s.rng.Float64() < s.p/2, s.rng.Float64() < s.p/2
	s.mu.Unlock()
	if !slices.ContainsFunc(changes, func(c executor.Change) bool { return c.State.Status != dirty.StatusDirty }) {
		before, after = false, false
	}
	if before {
		return 0, errors.New("lost before the commit")
	}
	v, err := s.StateStore.Commit(ctx, key, expect, changes)
	if err == nil && after {
		return 0, errors.New("lost after the commit")
	}
	return v, err
}

// bulkOf makes a generator a bulk one: each request on its own goroutine.
type bulkOf struct{ executor.GeneratorFunc }

func (b bulkOf) GenerateBatch(ctx context.Context, reqs []executor.Request) []executor.Outcome {
	out := make([]executor.Outcome, len(reqs))
	var wg sync.WaitGroup
	for i, r := range reqs {
		wg.Go(func() { out[i].Asset, out[i].Err = b.Generate(ctx, r) })
	}
	wg.Wait()
	return out
}

// TestPropertyConcurrentRuns drives random interleavings of three runs
// and edits on one graph: random marks (forced or edited), edits while
// runs go on, random latencies, permanent failures, cancels, Converge,
// bulk or single images, outputs that are the same for every run (so that
// early cutoff happens) or not, and commits that fail before or after
// being applied. Once everything has ended: no edit is lost (each node's
// revision counts its edits), no clean node was made from inputs the
// store no longer holds, and a plain run then leaves every node clean and
// consistent.
func TestPropertyConcurrentRuns(t *testing.T) {
	seeds := uint64(400)
	if testing.Short() {
		seeds = 50
	}
	for seed := range seeds {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { concurrentRuns(t, seed) })
		})
	}
}

func concurrentRuns(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 7))
	l := newLab(t, 30)
	_, err := l.run(l.executor(executor.Options{}))
	require.NoError(t, err)
	var nodes []string
	for n := range l.g.Len() {
		nodes = append(nodes, l.g.NodeID(graph.Node(n)))
	}
	type call struct {
		delay     time.Duration
		fail, own bool // a permanent failure; an output of this run's own
	}
	calls := map[string]call{} // by "<run>/<node>"
	for r := range 3 {
		for _, id := range nodes {
			calls[fmt.Sprintf("R%d/%s", r, id)] = call{delay: time.Duration(1+rng.IntN(30)) * time.Second,
				fail: rng.IntN(12) == 0, own: rng.IntN(2) == 0}
		}
	}
	gen := executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
		c := calls[req.RunID+"/"+req.NodeID]
		if err := pause(ctx, c.delay); err != nil {
			return executor.Asset{}, err
		}
		if c.fail {
			return executor.Asset{}, executor.Permanent(errors.New("refused"))
		}
		data := defaultData(req)
		if c.own {
			data = append(data, "/"+req.RunID...)
		}
		return executor.Asset{Data: data}, nil
	})
	reg := l.registry(gen)
	if rng.IntN(2) == 0 {
		reg[graph.KindImage] = bulkOf{gen}
	}
	states := &flakyCommits{StateStore: l.states, rng: rand.New(rand.NewPCG(seed, 9)), p: float64(rng.IntN(3)) * 0.1}
	e, err := executor.New(executor.Options{Generators: reg, States: states, Assets: l.assets, Runs: l.runs,
		Converge: rng.IntN(3)})
	require.NoError(t, err)
	defer func() { require.NoError(t, e.Close(context.Background())) }()

	var mu sync.Mutex
	edits := map[string]int64{} // the revision each node must end at
	for id, st := range l.snapshot().States {
		edits[id] = st.Rev
	}
	var wg sync.WaitGroup
	for r := range 3 {
		at := time.Duration(rng.IntN(60)) * time.Second
		var marks []dirty.Mark
		for range rng.IntN(3) {
			reason := dirty.ReasonForced
			if rng.IntN(2) == 0 {
				reason = dirty.ReasonEdited
			}
			marks = append(marks, dirty.Mark{ID: nodes[rng.IntN(len(nodes))], Reason: reason})
		}
		cancelAfter := time.Duration(-1)
		if rng.IntN(4) == 0 {
			cancelAfter = time.Duration(rng.IntN(90)) * time.Second
		}
		wg.Go(func() {
			time.Sleep(at)
			run, err := e.Start(context.Background(), executor.RunRequest{RunID: fmt.Sprint("R", r), GraphKey: "lecture",
				Graph: l.g, Marks: marks})
			require.NoError(t, err)
			mu.Lock()
			seen := map[string]bool{} // a run's edited marks bump a node's revision once
			for _, m := range marks {
				if m.Reason == dirty.ReasonEdited && !seen[m.ID] {
					seen[m.ID] = true
					edits[m.ID]++
				}
			}
			mu.Unlock()
			if cancelAfter >= 0 {
				time.Sleep(cancelAfter)
				run.Cancel()
			}
			_, _ = run.Wait() // failures and cancels are part of the draw
		})
	}
	for range rng.IntN(3) {
		at := time.Duration(rng.IntN(120)) * time.Second
		id := nodes[rng.IntN(len(nodes))]
		wg.Go(func() {
			time.Sleep(at)
			_, err := e.Edit(context.Background(), l.g, "lecture", id)
			require.NoError(t, err)
			mu.Lock()
			edits[id]++
			mu.Unlock()
		})
	}
	wg.Wait()

	snap := l.snapshot()
	for _, id := range nodes {
		require.Equal(t, edits[id], snap.States[id].Rev, "the edits of %s", id)
		if snap.States[id].Status == dirty.StatusClean {
			requireMadeFrom(t, l, snap, id)
		}
	}
	// A plain run regenerates whatever is not clean, and what depends on
	// it: afterwards everything is clean and consistent.
	_, err = l.run(l.executor(executor.Options{}))
	require.NoError(t, err)
	l.requireAllClean()
	requireConsistent(t, l)
}

// requireMadeFrom fails unless node id's stored input hash is the hash of
// its revision and its dependencies' stored outputs.
func requireMadeFrom(t *testing.T, l *lab, snap executor.Snapshot, id string) {
	t.Helper()
	n, err := l.g.Lookup(id)
	require.NoError(t, err)
	var inputs []string
	for _, d := range l.g.Deps(n) {
		inputs = append(inputs, snap.States[l.g.NodeID(d)].OutputHash)
	}
	st := snap.States[id]
	require.Equal(t, dirty.InputHash(st.Rev, inputs), st.InputHash, "clean node %s was made from inputs no longer stored", id)
}
