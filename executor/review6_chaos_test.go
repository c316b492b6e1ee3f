package executor_test

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/progress"
)

// chaosGen is a generator, single and bulk, whose every attempt does what
// a hash of the seed, the node and the attempt says.
type chaosGen struct {
	seed  uint64
	mu    sync.Mutex
	calls map[string]int
	tame  bool // every call succeeds at once
	late  sync.WaitGroup
}

func (c *chaosGen) roll(id string, attempt int) int {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d/%s/%d", c.seed, id, attempt)
	return int(h.Sum64() % 100)
}

func (c *chaosGen) one(ctx context.Context, req executor.Request) (executor.Asset, error) {
	c.mu.Lock()
	if req.GraphKey == "k" {
		c.calls[req.NodeID]++
	}
	tame := c.tame
	c.mu.Unlock()
	a := executor.Asset{Data: defaultData(req)}
	if req.ID.Kind == graph.KindNarration {
		a.Length = 10 * time.Second
	}
	if tame {
		return a, nil
	}
	x := c.roll(req.NodeID, req.Attempt)
	d := time.Duration(x%7) * time.Second
	switch {
	case x < 60:
		if err := pause(ctx, d); err != nil {
			return executor.Asset{}, err
		}
		return a, nil
	case x < 75:
		if err := pause(ctx, d); err != nil {
			return executor.Asset{}, err
		}
		return executor.Asset{}, errors.New("flaky")
	case x < 80:
		return executor.Asset{}, executor.Permanent(errors.New("bad prompt"))
	case x < 88:
		time.Sleep(time.Hour) // ignores ctx
		return a, nil
	case x < 90:
		panic("boom")
	}
	return a, nil
}

func (c *chaosGen) Generate(ctx context.Context, req executor.Request) (executor.Asset, error) {
	return c.one(ctx, req)
}

func (c *chaosGen) GenerateBatch(ctx context.Context, reqs []executor.Request) []executor.Outcome {
	c.mu.Lock()
	tame := c.tame
	c.mu.Unlock()
	out := make([]executor.Outcome, len(reqs))
	x := c.roll("batch "+reqs[0].NodeID, reqs[0].Attempt)
	if !tame && x < 5 {
		return out[:len(out)-1] // one outcome short
	}
	for i, req := range reqs {
		if !tame && x < 15 && ctx.Err() != nil {
			return out // the rest left unfilled
		}
		a, err := c.one(ctx, req)
		if !tame && x < 20 && i == len(reqs)-1 {
			continue // the last left unfilled
		}
		out[i] = executor.Outcome{Asset: a, Err: err}
		if !tame && x > 90 {
			req.Progress.Report(executor.Note{Message: "made " + req.NodeID})
		}
	}
	if !tame && x > 95 {
		c.late.Add(1)
		go func() {
			defer c.late.Done()
			time.Sleep(time.Minute)
			reqs[0].Progress.Report(executor.Note{Message: "late"}) // after the return
		}()
	}
	return out
}

// flakyStore is a MemoryStore whose Load, Commit and Put fail now and
// then, as over a lost connection: a Commit or Put may fail before it is
// applied, or after (its reply lost).
type flakyStore struct {
	*executor.MemoryStore
	mu    sync.Mutex
	rng   *rand.Rand
	on    bool
	lost  int
	micro bool
}

func (f *flakyStore) roll() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.on {
		return 100
	}
	return f.rng.IntN(100)
}

var errLost = errors.New("connection lost")

func (f *flakyStore) Load(ctx context.Context, key string) (executor.Snapshot, error) {
	if f.roll() < 30 {
		return executor.Snapshot{}, errLost
	}
	snap, err := f.MemoryStore.Load(ctx, key)
	if f.micro {
		// As Postgres keeps them: microseconds, in another zone.
		for id, st := range snap.States {
			st.UpdatedAt = st.UpdatedAt.Truncate(time.Microsecond).In(time.FixedZone("X", 3600))
			snap.States[id] = st
		}
	}
	return snap, err
}

func (f *flakyStore) Get(ctx context.Context, ref string) (executor.Asset, error) {
	if f.roll() < 5 {
		return executor.Asset{}, errLost
	}
	return f.MemoryStore.Get(ctx, ref)
}

func (f *flakyStore) GetMany(ctx context.Context, refs []string) ([]executor.Asset, error) {
	if f.roll() < 5 {
		return nil, errLost
	}
	return f.MemoryStore.GetMany(ctx, refs)
}

func (f *flakyStore) Exists(ctx context.Context, ref string) (bool, error) {
	if f.roll() < 5 {
		return false, errLost
	}
	return f.MemoryStore.Exists(ctx, ref)
}

func (f *flakyStore) Missing(ctx context.Context, refs []string) ([]string, error) {
	if f.roll() < 5 {
		return nil, errLost
	}
	return f.MemoryStore.Missing(ctx, refs)
}

func (f *flakyStore) PutRun(ctx context.Context, rec executor.Record) error {
	switch x := f.roll(); {
	case x < 5:
		return errLost
	case x < 10:
		if err := f.MemoryStore.PutRun(ctx, rec); err != nil {
			return err
		}
		return errLost
	}
	return f.MemoryStore.PutRun(ctx, rec)
}

func (f *flakyStore) GetRun(ctx context.Context, id string) (executor.Record, error) {
	if f.roll() < 5 {
		return executor.Record{}, errLost
	}
	return f.MemoryStore.GetRun(ctx, id)
}

func (f *flakyStore) Commit(ctx context.Context, key string, expect int64, changes []executor.Change) (int64, error) {
	switch x := f.roll(); {
	case x < 8:
		return 0, errLost
	case x < 16:
		if _, err := f.MemoryStore.Commit(ctx, key, expect, changes); err != nil {
			return 0, err
		}
		f.mu.Lock()
		f.lost++
		f.mu.Unlock()
		return 0, errLost
	}
	return f.MemoryStore.Commit(ctx, key, expect, changes)
}

func (f *flakyStore) Put(ctx context.Context, key string, a executor.Asset) (string, error) {
	switch x := f.roll(); {
	case x < 8:
		return "", errLost
	case x < 12:
		if _, err := f.MemoryStore.Put(ctx, key, a); err != nil {
			return "", err
		}
		return "", errLost
	}
	return f.MemoryStore.Put(ctx, key, a)
}

// TestReview6Chaos runs a lecture with a generator whose attempts
// succeed, fail, fail for good, hang past their timeout or panic, a bulk
// call that returns short or leaves slots unfilled, a validator that
// refuses, hangs or panics, a store whose calls fail now and then (a
// commit or a Put going through with its reply lost), under random
// options, with edits, a cancel, a second run, a deletion of the graph or
// a run of another graph meanwhile; then checks what a host relies on:
// each node in one list of the report and settled once a round, the
// events in order, no clean node made from stale inputs nor without its
// asset, Report.Dirty as the store says, the record as the report; and
// that a Resume (or RerunFailed) calls only what is not clean, once, and
// leaves the graph clean.
func TestReview6Chaos(t *testing.T) {
	seeds := uint64(400)
	if testing.Short() {
		seeds = 50
	}
	for seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { chaosRun(t, seed) })
		})
	}
}

func chaosRun(t *testing.T, seed uint64) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, 99))
	g, err := graph.Build(graph.Lecture(), 10*(1+rng.IntN(6)))
	require.NoError(t, err)
	gen := &chaosGen{seed: seed, calls: map[string]int{}}
	reg := registryFor(g, gen)
	if rng.IntN(2) == 0 {
		// Single generators for some kinds.
		single := executor.GeneratorFunc(gen.Generate)
		reg[graph.KindNarration] = single
	}
	mem := progress.NewMemory(progress.MemoryOptions{})
	store := &flakyStore{MemoryStore: executor.NewMemoryStore(), rng: rand.New(rand.NewPCG(seed, 7)), on: rng.IntN(2) == 0, micro: rng.IntN(2) == 0}
	opts := executor.Options{Generators: reg, Sink: mem, States: store, Assets: store, Runs: store,
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Workers:  rng.IntN(5),
		MaxBatch: rng.IntN(4),
		Converge: rng.IntN(3),
		Default: executor.KindOptions{Timeout: 20 * time.Second,
			Retry: executor.RetryPolicy{MaxAttempts: 1 + rng.IntN(3), InitialInterval: time.Second}},
	}
	video := executor.KindOptions{Validate: func(req executor.Request, a executor.Asset) error {
		gen.mu.Lock()
		tame := gen.tame
		gen.mu.Unlock()
		if tame {
			return nil
		}
		switch x := gen.roll("check "+req.NodeID, req.Attempt); {
		case x < 10:
			return errors.New("too short")
		case x < 14:
			time.Sleep(2 * time.Hour)
		case x < 16:
			panic("validator boom")
		}
		return nil
	}}
	if rng.IntN(2) == 0 {
		opts.Mode = executor.Staged
	} else if rng.IntN(2) == 0 {
		video.BatchWindow = 2 * time.Second
	}
	if rng.IntN(2) == 0 {
		video.BatchTimeout = 40 * time.Second
	}
	opts.Kinds = map[string]executor.KindOptions{graph.KindVideo: video}
	if rng.IntN(3) == 0 {
		opts.Rates = map[string]executor.Rate{graph.KindImage: {Starts: 2, Per: 5 * time.Second}}
	}
	if rng.IntN(3) == 0 {
		opts.Limits = map[string]int{graph.KindVideo: 1 + rng.IntN(2)}
	}
	e, err := executor.New(opts)
	require.NoError(t, err)
	defer gen.late.Wait()
	defer func() {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Hour)
		defer cancel()
		require.NoError(t, e.Close(cctx))
	}()

	r, err := e.Start(ctx, executor.RunRequest{GraphKey: "k", Graph: g})
	if err != nil {
		// A start that the flaky store failed.
		require.ErrorIs(t, err, errLost)
		return
	}
	var other, side *executor.Run
	if rng.IntN(4) == 0 {
		// A run of another key, which shares the Rates and Limits.
		side, err = e.Start(ctx, executor.RunRequest{GraphKey: "k2", Graph: g})
		if err != nil {
			require.ErrorIs(t, err, errLost)
			side = nil
		}
	}
	defer func() {
		if side == nil {
			return
		}
		rep, _ := side.Wait()
		require.NotNil(t, rep)
		store.mu.Lock()
		store.on = false
		store.mu.Unlock()
		requireNoStaleInputs(t, store, "k2", g)
	}()
	if rng.IntN(4) == 0 {
		time.Sleep(time.Duration(rng.IntN(20)) * time.Second)
		other, err = e.Start(ctx, executor.RunRequest{GraphKey: "k", Graph: g})
		if err != nil {
			require.ErrorIs(t, err, errLost)
			other = nil
		}
	}
	edited := false
	for range rng.IntN(4) {
		time.Sleep(time.Duration(rng.IntN(20)) * time.Second)
		n := graph.Node(rng.IntN(g.Len()))
		_, err := e.Edit(ctx, g, "k", g.NodeID(n))
		if err != nil && !errors.Is(err, errLost) {
			require.NoError(t, err)
		}
		edited = true
	}
	if rng.IntN(8) == 0 {
		time.Sleep(time.Duration(rng.IntN(30)) * time.Second)
		store.mu.Lock()
		store.on = false
		store.mu.Unlock()
		_, err := store.DeleteGraph(ctx, "k")
		require.NoError(t, err)
		rep, err := r.Wait()
		require.NotNil(t, rep)
		if other != nil {
			other.Wait()
		}
		if err == nil {
			t.Logf("run ended before the deletion reached it")
		}
		snap, lerr := store.Load(ctx, "k")
		require.NoError(t, lerr)
		require.Empty(t, snap.States, "the run made the deleted graph again (err %v)", err)
		return
	}
	if rng.IntN(8) == 0 {
		time.Sleep(time.Duration(rng.IntN(30)) * time.Second)
		g2, err := graph.Build(graph.Lecture(), g.Segments()*graph.SegmentSeconds+10)
		require.NoError(t, err)
		r2, err := e.Start(ctx, executor.RunRequest{GraphKey: "k", Graph: g2})
		if err != nil {
			require.ErrorIs(t, err, errLost)
			return
		}
		r.Wait()
		if other != nil {
			other.Wait()
		}
		r2.Wait()
		store.mu.Lock()
		store.on = false
		store.mu.Unlock()
		requireNoStaleInputs(t, store, "k", g2)
		return
	}
	cancelled := false
	if rng.IntN(3) == 0 {
		time.Sleep(time.Duration(rng.IntN(60)) * time.Second)
		r.Cancel()
		cancelled = true
	}
	rep, err := r.Wait()
	runErr := err
	require.NotNil(t, rep)
	if other != nil {
		orep, oerr := other.Wait()
		require.NotNil(t, orep)
		_ = oerr
		edited = true // its commits after r's last
	}
	gen.mu.Lock()
	calls := maps.Clone(gen.calls)
	gen.mu.Unlock()
	for id, n := range calls {
		if other == nil && n > opts.Default.Retry.MaxAttempts*rep.Rounds {
			t.Errorf("%s called %d times in %d rounds of %d attempts", id, n, rep.Rounds, opts.Default.Retry.MaxAttempts)
		}
	}

	// Each node in one list at most.
	seen := map[string]string{}
	for name, list := range map[string][]string{"generated": rep.Generated, "unchanged": rep.Unchanged,
		"failed": rep.Failed, "skipped": rep.Skipped, "superseded": rep.Superseded, "cancelled": rep.Cancelled} {
		for _, id := range list {
			if prev, ok := seen[id]; ok {
				t.Fatalf("node %s in %s and %s", id, prev, name)
			}
			seen[id] = name
		}
	}
	if err == nil {
		require.Empty(t, rep.Failed)
		require.Empty(t, rep.Cancelled)
	}
	if !cancelled && err != nil {
		var re *executor.RunError
		require.ErrorAs(t, err, &re, "err %v", err)
	}

	store.mu.Lock()
	store.on = false
	store.mu.Unlock()
	// The events: run.started first, one final event last, seqs gap-free.
	var evs []progress.Event
	require.NoError(t, mem.Replay(ctx, r.ID(), 0, func(ev progress.Event) error { evs = append(evs, ev); return nil }))
	require.Equal(t, progress.RunStarted, evs[0].Type)
	for i, ev := range evs {
		require.Equal(t, uint64(i+1), ev.Seq)
		if i < len(evs)-1 {
			require.NotContains(t, []progress.Type{progress.RunFinished, progress.RunFailed, progress.RunCancelled}, ev.Type, "event %d of %d", i, len(evs))
		}
	}

	type key struct {
		round int
		node  string
		typ   progress.Type
	}
	count := map[key]int{}
	for _, ev := range evs {
		if ev.Node == "" {
			continue
		}
		typ := ev.Type
		switch typ {
		case progress.NodeSucceeded, progress.NodeUnchanged, progress.NodeFailed, progress.NodeSkipped,
			progress.NodeSuperseded, progress.NodeCancelled:
			typ = "settled"
		case progress.NodeStarted:
		default:
			continue
		}
		k := key{ev.Round, ev.Node, typ}
		if count[k]++; count[k] > 1 {
			t.Fatalf("%s %s twice in round %d", ev.Node, typ, ev.Round)
		}
	}
	rec, err := store.GetRun(ctx, r.ID())
	require.NoError(t, err)
	if rec.Status != executor.RunRunning { // else its final PutRun failed 5 times
		require.Equal(t, rep.Record.Status, rec.Status)
		require.Equal(t, rep.Record.Counts, rec.Counts)
	}

	// No clean node made from stale inputs, and every clean node's asset there.
	snap, err := store.Load(ctx, "k")
	require.NoError(t, err)
	view := dirty.NewStates(g.Len())
	var notClean []string
	for n := range graph.Node(g.Len()) {
		st, ok := snap.States[g.NodeID(n)]
		if ok {
			view.Set(n, st)
		}
		if st.Status != dirty.StatusClean {
			notClean = append(notClean, g.NodeID(n))
			continue
		}
		ok, err := store.Exists(ctx, st.AssetRef)
		require.NoError(t, err)
		require.True(t, ok, "asset of clean %s", g.NodeID(n))
	}
	stale, err := dirty.StaleInputs(g, view)
	require.NoError(t, err)
	require.Empty(t, stale, "clean nodes made from stale inputs")
	slices.Sort(notClean)
	dirtyRep := slices.Clone(rep.Dirty)
	slices.Sort(dirtyRep)
	// A commit given up after 5 failures may have gone through.
	givenUp := runErr != nil && strings.Contains(runErr.Error(), "record result")
	if !edited && !givenUp && len(notClean)+len(dirtyRep) > 0 {
		require.Equal(t, notClean, dirtyRep, "Report.Dirty against the store")
	}

	// A flaky resume first, with the chaotic generator.
	if rng.IntN(2) == 0 {
		store.mu.Lock()
		store.on = true
		store.mu.Unlock()
		fr, ferr := e.Resume(ctx, g, r.ID())
		if ferr == nil {
			frep, ferr := fr.Wait()
			store.mu.Lock()
			store.on = false
			store.mu.Unlock()
			givenUp := ferr != nil && strings.Contains(ferr.Error(), "record result")
			snap, err := store.Load(ctx, "k")
			require.NoError(t, err)
			view := dirty.NewStates(g.Len())
			var notClean []string
			for n := range graph.Node(g.Len()) {
				st, ok := snap.States[g.NodeID(n)]
				if ok {
					view.Set(n, st)
				}
				if st.Status != dirty.StatusClean {
					notClean = append(notClean, g.NodeID(n))
				}
			}
			stale, err := dirty.StaleInputs(g, view)
			require.NoError(t, err)
			require.Empty(t, stale, "flaky resume: clean nodes made from stale inputs")
			slices.Sort(notClean)
			d := slices.Clone(frep.Dirty)
			slices.Sort(d)
			if !givenUp && len(notClean)+len(d) > 0 {
				require.Equal(t, notClean, d, "flaky resume: Report.Dirty against the store (err %v)", ferr)
			}
			r = fr
		} else {
			store.mu.Lock()
			store.on = false
			store.mu.Unlock()
		}
	}
	// A resume, with a tame generator, calls only what is not clean, and
	// leaves all clean.
	gen.mu.Lock()
	gen.tame, gen.calls = true, map[string]int{}
	gen.mu.Unlock()
	_, set, err := e.Plan(ctx, executor.RunRequest{GraphKey: "k", Graph: g})
	require.NoError(t, err)
	want := map[string]bool{}
	for _, n := range set.Nodes() {
		want[g.NodeID(n)] = true
	}
	resume := e.Resume
	if rng.IntN(2) == 0 {
		resume = e.RerunFailed
	}
	rr, err := resume(ctx, g, r.ID())
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	_, err = rr.Wait()
	require.NoError(t, err)
	gen.mu.Lock()
	calls = maps.Clone(gen.calls)
	gen.mu.Unlock()
	for id, n := range calls {
		require.True(t, want[id], "resume called %s, which was clean", id)
		require.Equal(t, 1, n, "resume called %s %d times", id, n)
	}
	snap, err = store.Load(ctx, "k")
	require.NoError(t, err)
	for n := range graph.Node(g.Len()) {
		require.Equal(t, dirty.StatusClean, snap.States[g.NodeID(n)].Status, g.NodeID(n))
	}
}

// requireNoStaleInputs requires that no clean node of key's states, of
// graph g, was made from other inputs than its dependencies' outputs.
func requireNoStaleInputs(t *testing.T, states executor.StateStore, key string, g *graph.Graph) {
	t.Helper()
	snap, err := states.Load(context.Background(), key)
	require.NoError(t, err)
	view := dirty.NewStates(g.Len())
	for n := range graph.Node(g.Len()) {
		if st, ok := snap.States[g.NodeID(n)]; ok {
			view.Set(n, st)
		}
	}
	stale, err := dirty.StaleInputs(g, view)
	require.NoError(t, err)
	require.Empty(t, stale, "%s: clean nodes made from stale inputs", key)
}
