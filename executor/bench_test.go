package executor_test

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/internal/testgraph"
	"github.com/regengraph/regen/planner"
	"github.com/regengraph/regen/progress"
)

// noop is the cheapest generator: a fixed output with a fixed hash. The
// executor's asset store copies the data, so it can be shared.
var (
	noopData = []byte("x")
	noop     = executor.GeneratorFunc(func(context.Context, executor.Request) (executor.Asset, error) {
		return executor.Asset{Data: noopData, Hash: "h", Length: graph.SegmentLength}, nil
	})
)

// BenchmarkOverhead runs no-op generators over the 360-segment lecture
// (1,083 nodes) on the in-memory stores (executor), beside an errgroup
// with SetLimit running the same number of no-op tasks at the executor's
// parallelism, 4+5+3 batch slots and 3 singles (errgroup). Others give
// the executor's figure its context: the per-node work that the executor
// must do, on the same stores, in one goroutine (stores), and run by a
// hand-rolled staged scheduler on errgroup (errgroup-stores); the
// executor with a sink that drops the events (executor-sink), for the
// cost of reporting progress; and the executor on stores that do no work
// (executor-nullstores), for its own cost.
func BenchmarkOverhead(b *testing.B) {
	g, reg := noopLecture(b)
	ids := make([]string, g.Len()) // for the hand-made runs, made once as the executor does
	for n := range ids {
		ids[n] = g.NodeID(graph.Node(n))
	}
	b.Run("executor", func(b *testing.B) { benchRuns(b, g, executor.Options{Generators: reg}) })
	// executor-sink: the same with a sink that drops every event, so
	// that each node's event, with its counts and ETA, is paid for.
	b.Run("executor-sink", func(b *testing.B) {
		sink := progress.SinkFunc(func(context.Context, ...progress.Event) error { return nil })
		benchRuns(b, g, executor.Options{Generators: reg, Sink: sink})
	})
	// executor-nullstores: the executor on stores that do no work (they
	// count versions and keep nothing), for the executor's own cost:
	// scheduling, retries' and timeouts' bookkeeping, input hashes,
	// group commits and the concurrent-edit checks.
	b.Run("executor-nullstores", func(b *testing.B) {
		var s nullStores
		benchRuns(b, g, executor.Options{Generators: reg, States: &s, Assets: &s, Runs: &s})
	})
	// stores: the per-node work the issue asks of a run, on the same
	// in-memory stores, done in one goroutine with no scheduling at all:
	// read each dependency's asset, hash the inputs, build the
	// idempotency key, call the generator, store its asset and commit the
	// node's state. What the executor costs beyond this is its own.
	b.Run("stores", func(b *testing.B) {
		b.ReportAllocs()
		ctx := context.Background()
		i := 0
		for b.Loop() {
			i++
			w := newFloor(g, ids, fmt.Sprint("l", i))
			var version int64
			for n := range graph.Node(g.Len()) {
				c, err := w.node(ctx, n)
				if err != nil {
					b.Fatal(err)
				}
				if version, err = w.states.Commit(ctx, w.key, version, []executor.Change{c}); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(g.Len()), "ns/node")
	})
	// errgroup-stores: the same per-node work as stores, run as a hand
	// rolled staged scheduler would: each stage of the plan on an errgroup
	// with SetLimit(15), then one commit of the stage's states. It is what
	// the executor replaces, without its retries, timeouts, cancel, early
	// cutoff, limits per batch key, events or concurrent-edit checks.
	b.Run("errgroup-stores", func(b *testing.B) {
		b.ReportAllocs()
		ctx := context.Background()
		set, err := dirty.Compute(g, dirty.Input{})
		if err != nil {
			b.Fatal(err)
		}
		plan := planner.New(set)
		i := 0
		for b.Loop() {
			i++
			w := newFloor(g, ids, fmt.Sprint("l", i))
			var version int64
			for _, stage := range plan.Stages {
				var nodes []graph.Node
				for _, grp := range stage.Groups {
					nodes = append(nodes, grp.Nodes...)
				}
				changes := make([]executor.Change, len(nodes))
				var eg errgroup.Group
				eg.SetLimit(15)
				for k, n := range nodes {
					eg.Go(func() (err error) {
						changes[k], err = w.node(ctx, n)
						return err
					})
				}
				if err := eg.Wait(); err != nil {
					b.Fatal(err)
				}
				if version, err = w.states.Commit(ctx, w.key, version, changes); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(g.Len()), "ns/node")
	})
	b.Run("errgroup", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			errgroupRun(g.Len())
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(g.Len()), "ns/node")
	})
	// ratio and ratio-nullstores pair the two in each loop, an errgroup
	// run then an executor run, and report the executor's time over the
	// errgroup's (x-errgroup): a ratio of runs made side by side, which
	// the machine's load, that drifts from one sub-benchmark to the next
	// by ±30% here, moves far less than it moves either. The collector
	// is off during the errgroup's half, so that the errgroup never pays
	// for the executor's garbage, and the executor pays for all of it:
	// turning it off waits for a collection under way, and that wait
	// counts as the executor's.
	b.Run("ratio", func(b *testing.B) { benchRatio(b, g, executor.Options{Generators: reg}) })
	b.Run("ratio-nullstores", func(b *testing.B) {
		var s nullStores
		benchRatio(b, g, executor.Options{Generators: reg, States: &s, Assets: &s, Runs: &s})
	})
}

// errgroupRun runs n no-op tasks on an errgroup with SetLimit(15), the
// executor's parallelism on the lecture: 4+5+3 batch slots and 3 singles.
func errgroupRun(n int) {
	var eg errgroup.Group
	eg.SetLimit(15)
	for range n {
		eg.Go(func() error { return nil })
	}
	_ = eg.Wait()
}

// benchRatio runs, in each loop, n no-op tasks on an errgroup and then g
// from nothing on a new executor made with opts, and reports the time
// per node of each and their ratio. The collector runs during the
// executor's half only (see BenchmarkOverhead).
func benchRatio(b *testing.B, g *graph.Graph, opts executor.Options) {
	var eg, ex time.Duration
	pct := debug.SetGCPercent(-1)
	defer debug.SetGCPercent(pct)
	debug.SetGCPercent(pct)
	i := 0
	for b.Loop() {
		tg := time.Now()
		debug.SetGCPercent(-1) // waits for the last executor run's collection
		t0 := time.Now()
		errgroupRun(g.Len())
		t1 := time.Now()
		debug.SetGCPercent(pct)
		ex += t0.Sub(tg)
		i++
		runFresh(b, g, opts, i)
		eg, ex = eg+t1.Sub(t0), ex+time.Since(t1)
	}
	per := float64(b.N) * float64(g.Len())
	b.ReportMetric(float64(ex.Nanoseconds())/per, "executor-ns/node")
	b.ReportMetric(float64(eg.Nanoseconds())/per, "errgroup-ns/node")
	b.ReportMetric(float64(ex)/float64(eg), "x-errgroup")
}

// benchRuns runs g from nothing on a new executor made with opts, once a
// loop, and reports the time per node.
func benchRuns(b *testing.B, g *graph.Graph, opts executor.Options) {
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		runFresh(b, g, opts, i)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(g.Len()), "ns/node")
}

// runFresh runs g from nothing, as the graph key of run number i, on a
// new executor made with opts; every node must be generated.
func runFresh(b *testing.B, g *graph.Graph, opts executor.Options, i int) {
	e, err := executor.New(opts)
	if err != nil {
		b.Fatal(err)
	}
	rep, err := e.Run(context.Background(), executor.RunRequest{GraphKey: fmt.Sprint("l", i), Graph: g})
	if err != nil || len(rep.Generated) != g.Len() {
		b.Fatalf("run: %v", err)
	}
}

// nullStores are stores that do no work, for the executor-nullstores
// benchmark: commits count versions, the one graph key at a time that a
// benchmark run uses; assets and records are not kept.
type nullStores struct {
	mu      sync.Mutex
	key     string
	version int64
}

func (s *nullStores) Load(context.Context, string) (executor.Snapshot, error) {
	return executor.Snapshot{}, nil // each run is of a new key
}

func (s *nullStores) Commit(_ context.Context, key string, expect int64, _ []executor.Change) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if key != s.key {
		s.key, s.version = key, 0
	}
	if expect != s.version {
		return 0, executor.ErrConflict
	}
	s.version++
	return s.version, nil
}

func (s *nullStores) Put(_ context.Context, key string, _ executor.Asset) (string, error) {
	return key, nil
}

func (s *nullStores) Get(context.Context, string) (executor.Asset, error) {
	return executor.Asset{}, nil
}

func (s *nullStores) Exists(context.Context, string) (bool, error)  { return true, nil }
func (s *nullStores) PutRun(context.Context, executor.Record) error { return nil }
func (s *nullStores) GetRun(context.Context, string) (executor.Record, error) {
	return executor.Record{}, executor.ErrNotFound
}
func (s *nullStores) ListRuns(context.Context, string) ([]executor.Record, error) { return nil, nil }

// floor does the per-node work of a run by hand, on fresh in-memory
// stores, for the stores and errgroup-stores benchmarks. node may run
// concurrently for nodes whose dependencies are done.
type floor struct {
	g            *graph.Graph
	key          string
	states       *executor.MemoryStates
	assets       *executor.MemoryAssets
	ids          []string
	refs, hashes []string // by node, once made
}

// newFloor returns a floor for a run of graph key; ids are g's node IDs.
func newFloor(g *graph.Graph, ids []string, key string) *floor {
	return &floor{g: g, key: key, states: executor.NewMemoryStates(), assets: executor.NewMemoryAssets(),
		ids: ids, refs: make([]string, g.Len()), hashes: make([]string, g.Len())}
}

// node reads n's dependencies' assets, hashes its inputs, calls the
// generator, stores its asset, and returns the change to commit.
func (w *floor) node(ctx context.Context, n graph.Node) (executor.Change, error) {
	ds := w.g.Deps(n)
	deps := make([]executor.Dep, len(ds))
	in := make([]string, len(ds))
	for k, d := range ds {
		a, err := w.assets.Get(ctx, w.refs[d])
		if err != nil {
			return executor.Change{}, err
		}
		deps[k] = executor.Dep{Node: d, NodeID: w.ids[d], Asset: a}
		in[k] = w.hashes[d]
	}
	ih := dirty.InputHash(0, in)
	req := executor.Request{GraphKey: w.key, Node: n, ID: w.g.ID(n), NodeID: w.ids[n], Deps: deps,
		Attempt: 1, IdempotencyKey: w.key + "/" + w.ids[n] + "/" + ih}
	a, err := noop(ctx, req)
	if err != nil {
		return executor.Change{}, err
	}
	ref, err := w.assets.Put(ctx, w.key+"/"+w.ids[n]+"/"+a.Hash, a)
	if err != nil {
		return executor.Change{}, err
	}
	w.refs[n], w.hashes[n] = ref, a.Hash
	return executor.Change{ID: w.ids[n], State: dirty.State{Status: dirty.StatusClean, InputHash: ih,
		OutputHash: a.Hash, AssetRef: ref, Attempts: 1, UpdatedAt: time.Now()}}, nil
}

// BenchmarkEditRun is a run after one edit of the 360-segment lecture,
// every node clean before it: the cost of starting a run on a big graph
// (loading and checking the states and assets, planning), since the edit
// regenerates only the narration and early cutoff keeps the rest.
func BenchmarkEditRun(b *testing.B) {
	g, reg := noopLecture(b)
	e, err := executor.New(executor.Options{Generators: reg})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := e.Run(ctx, executor.RunRequest{GraphKey: "lecture", Graph: g}); err != nil {
		b.Fatal(err)
	}
	marks := []dirty.Mark{{ID: "asset:narration:segment[3]", Reason: dirty.ReasonEdited}}
	b.ReportAllocs()
	for b.Loop() {
		rep, err := e.Run(ctx, executor.RunRequest{GraphKey: "lecture", Graph: g, Marks: marks})
		if err != nil || len(rep.Generated) != 1 {
			b.Fatalf("run: %v, generated %v", err, rep.Generated)
		}
	}
}

// noopLecture returns the 360-segment lecture and a registry of no-op
// generators for it.
func noopLecture(b *testing.B) (*graph.Graph, executor.Registry) {
	g, err := graph.Build(graph.Lecture(), 3600)
	if err != nil {
		b.Fatal(err)
	}
	reg := registryFor(g, noop)
	return g, reg
}

// BenchmarkOwnTemplate runs no-op generators over a host's own template,
// the podcast of testgraph.Podcast, beside the 360-segment lecture: 360
// chapters (1,446 nodes) and 10,000 chapters (40,006 nodes, past the
// default limit of graph.Options.MaxSeconds), a new graph each time
// (its ns/node compares with the lecture's), then one edit of the first
// chapter's summary, which plans the summary chain to the last chapter
// and everything that reads it, and regenerates the summary only: its
// no-op output does not change, so early cutoff keeps the rest.
func BenchmarkOwnTemplate(b *testing.B) {
	for _, c := range []struct {
		name     string
		tmpl     graph.Template
		chapters int
		edit     string
	}{
		{"lecture-360", graph.Lecture(), 360, "asset:narration:segment[0]"},
		{"podcast-360", testgraph.Podcast(), 360, "ch.summary:segment[0]"},
		{"podcast-10000", testgraph.Podcast(), 10_000, "ch.summary:segment[0]"},
	} {
		g, err := graph.Options{MaxSeconds: c.chapters * graph.SegmentSeconds}.Build(c.tmpl, c.chapters*graph.SegmentSeconds)
		if err != nil {
			b.Fatal(err)
		}
		reg := executor.Registry{}
		for i := range g.Kinds() {
			reg[g.KindName(i)] = noop
		}
		b.Run(c.name+"/new", func(b *testing.B) { benchRuns(b, g, executor.Options{Generators: reg}) })
		b.Run(c.name+"/edit", func(b *testing.B) {
			b.ReportAllocs()
			e, err := executor.New(executor.Options{Generators: reg})
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close(context.Background())
			if _, err := e.Run(context.Background(), executor.RunRequest{GraphKey: "k", Graph: g}); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := e.Run(context.Background(), executor.RunRequest{GraphKey: "k", Graph: g,
					Marks: []dirty.Mark{{ID: c.edit, Reason: dirty.ReasonEdited}}}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
