package executor_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/progress"
)

// behave decides what a fake generator does for one attempt. It returns
// the output's data (nil means the default, which depends only on the
// node, its revision and its inputs) and an error.
type behave func(ctx context.Context, req executor.Request) ([]byte, error)

// lab is a lecture with recording fake generators and an event log.
type lab struct {
	t       *testing.T
	g       *graph.Graph
	states  *executor.MemoryStates
	assets  *executor.MemoryAssets
	runs    *executor.MemoryRuns
	latency map[string]time.Duration

	mu       sync.Mutex
	behave   map[string]behave // by node ID
	calls    map[string]int    // attempts by node ID
	running  map[string]int    // running now, by kind
	maxRun   map[string]int    // most running at once, by kind
	active   map[string]bool   // node IDs running now
	events   []progress.Event
	batches  [][]string // bulk calls
	sinkFail bool
}

func newLab(t *testing.T, seconds int) *lab {
	t.Helper()
	g, err := graph.Build(graph.Lecture(), seconds)
	require.NoError(t, err)
	return &lab{t: t, g: g, states: executor.NewMemoryStates(), assets: executor.NewMemoryAssets(),
		runs: executor.NewMemoryRuns(), behave: map[string]behave{}, calls: map[string]int{},
		running: map[string]int{}, maxRun: map[string]int{}, active: map[string]bool{},
		latency: map[string]time.Duration{
			graph.KindScript: 20 * time.Second, graph.KindNarration: 3 * time.Second,
			graph.KindImage: 8 * time.Second, graph.KindVideo: 30 * time.Second,
			graph.KindMusic: 20 * time.Second, graph.KindTimeline: 10 * time.Second,
		}}
}

func (l *lab) set(id string, b behave) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.behave[id] = b
}

// defaultData is the output of a node for its revision and inputs.
func defaultData(req executor.Request) []byte {
	b := fmt.Appendf(nil, "%s@%d", req.NodeID, req.Rev)
	for _, d := range req.Deps {
		b = fmt.Appendf(b, "|%s", d.Asset.Hash)
	}
	return b
}

func (l *lab) Generate(ctx context.Context, req executor.Request) (executor.Asset, error) {
	l.mu.Lock()
	l.calls[req.NodeID]++
	l.running[req.ID.Kind]++
	l.maxRun[req.ID.Kind] = max(l.maxRun[req.ID.Kind], l.running[req.ID.Kind])
	l.active[req.NodeID] = true
	b := l.behave[req.NodeID]
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		delete(l.active, req.NodeID)
		l.running[req.ID.Kind]--
		l.mu.Unlock()
	}()
	t := time.NewTimer(l.latency[req.ID.Kind])
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return executor.Asset{}, ctx.Err()
	}
	var data []byte
	if b != nil {
		var err error
		if data, err = b(ctx, req); err != nil {
			return executor.Asset{}, err
		}
	}
	if data == nil {
		data = defaultData(req)
	}
	a := executor.Asset{Data: data}
	if req.ID.Kind == graph.KindNarration {
		a.Length = 10 * time.Second
	}
	return a, nil
}

func (l *lab) Publish(_ context.Context, evs ...progress.Event) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, evs...)
	if l.sinkFail {
		return errors.New("sink down")
	}
	return nil
}

func (l *lab) registry(gen executor.Generator) executor.Registry {
	reg := executor.Registry{}
	for i := range l.g.Kinds() {
		reg[l.g.KindName(i)] = gen
	}
	return reg
}

func (l *lab) executor(opts executor.Options) *executor.Executor {
	l.t.Helper()
	if opts.Generators == nil {
		opts.Generators = l.registry(l)
	}
	opts.States, opts.Assets, opts.Runs, opts.Sink = l.states, l.assets, l.runs, l
	e, err := executor.New(opts)
	require.NoError(l.t, err)
	l.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Hour)
		defer cancel()
		require.NoError(l.t, e.Close(ctx))
	})
	return e
}

func (l *lab) run(e *executor.Executor, marks ...dirty.Mark) (*executor.Report, error) {
	return e.Run(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g, Marks: marks, TriggeredBy: "test"})
}

func (l *lab) snapshot() executor.Snapshot {
	l.t.Helper()
	snap, err := l.states.Load(context.Background(), "lecture")
	require.NoError(l.t, err)
	return snap
}

// clean reports whether every node is stored clean with its asset.
func (l *lab) requireAllClean() {
	l.t.Helper()
	snap := l.snapshot()
	for n := range l.g.Len() {
		id := l.g.NodeID(graph.Node(n))
		st := snap.States[id]
		require.Equal(l.t, dirty.StatusClean, st.Status, "node %s", id)
		ok, err := l.assets.Exists(context.Background(), st.AssetRef)
		require.NoError(l.t, err)
		require.True(l.t, ok, "asset of %s", id)
	}
}

// activeOf returns the running node IDs of a kind, sorted.
func (l *lab) activeOf(kind string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for id := range l.active {
		if id, _ := graph.ParseID(id); id.Kind == kind {
			out = append(out, id.String())
		}
	}
	slices.Sort(out)
	return out
}

func (l *lab) resetCalls() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = map[string]int{}
	l.events = nil
}

func (l *lab) calledIDs() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ids []string
	for id := range l.calls {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func (l *lab) eventsOf(t progress.Type) []progress.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []progress.Event
	for _, e := range l.events {
		if e.Type == t {
			out = append(out, e)
		}
	}
	return out
}

// requireEventOrder checks a run's events: gap-free sequence from 1, run
// started first and a final run event last.
func (l *lab) requireEventOrder(final progress.Type) {
	l.t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	require.NotEmpty(l.t, l.events)
	runID := l.events[len(l.events)-1].RunID
	var seq uint64
	var mine []progress.Event
	for _, e := range l.events {
		if e.RunID == runID {
			mine = append(mine, e)
		}
	}
	for _, e := range mine {
		seq++
		require.Equal(l.t, seq, e.Seq, "event %v", e)
	}
	require.Equal(l.t, progress.RunStarted, mine[0].Type)
	require.Equal(l.t, final, mine[len(mine)-1].Type)
}

func ids(l *lab, kind string, segs ...int) []string {
	var out []string
	for _, s := range segs {
		out = append(out, graph.ID{Kind: kind, Segment: s}.String())
	}
	return out
}

func sorted(s ...string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func fail(err error) behave {
	return func(context.Context, executor.Request) ([]byte, error) { return nil, err }
}

// recordStarts returns a generator that records when each call of a kind
// starts, then runs the lab's, and a function that returns those times,
// sorted.
func (l *lab) recordStarts(kind string) (executor.Generator, func() []time.Time) {
	var starts []time.Time
	gen := executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
		if req.ID.Kind == kind {
			l.mu.Lock()
			starts = append(starts, time.Now())
			l.mu.Unlock()
		}
		return l.Generate(ctx, req)
	})
	return gen, func() []time.Time {
		l.mu.Lock()
		defer l.mu.Unlock()
		out := slices.Clone(starts)
		slices.SortFunc(out, func(a, b time.Time) int { return a.Compare(b) })
		return out
	}
}

// runAll runs the lab's lecture under each graph key at once, and
// returns their reports once all have ended, failing the test on an
// error.
func (l *lab) runAll(e *executor.Executor, keys ...string) []*executor.Report {
	l.t.Helper()
	runs := make([]*executor.Run, len(keys))
	for i, key := range keys {
		r, err := e.Start(context.Background(), executor.RunRequest{GraphKey: key, Graph: l.g})
		require.NoError(l.t, err)
		runs[i] = r
	}
	reps := make([]*executor.Report, len(keys))
	for i, r := range runs {
		rep, err := r.Wait()
		require.NoError(l.t, err)
		reps[i] = rep
	}
	return reps
}

// pause waits d, or until ctx ends, and then returns ctx's error: the
// delay of a fake generator that honours its context.
func pause(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// registryFor registers gen for every kind of g.
func registryFor(g *graph.Graph, gen executor.Generator) executor.Registry {
	reg := executor.Registry{}
	for i := range g.Kinds() {
		reg[g.KindName(i)] = gen
	}
	return reg
}

// onceAt returns the lab's generator, which first runs f, once, when
// node id starts: an action taken during a run, such as an edit.
func (l *lab) onceAt(id string, f func()) executor.Generator {
	var once sync.Once
	return executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
		if req.NodeID == id {
			once.Do(f)
		}
		return l.Generate(ctx, req)
	})
}

// stallAt returns the lab's generator, but for node id: its call closes
// started (the first time), runs stall and then returns the node's
// default output, whatever its context says: a provider whose answer
// comes late.
func (l *lab) stallAt(id string, stall func(ctx context.Context)) (gen executor.Generator, started <-chan struct{}) {
	ch := make(chan struct{})
	var once sync.Once
	return executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
		if req.NodeID != id {
			return l.Generate(ctx, req)
		}
		once.Do(func() { close(ch) })
		stall(ctx)
		return executor.Asset{Data: defaultData(req)}, nil
	}), ch
}

// sleepy is a generator whose every call takes d and returns the node's ID
// as its data.
func sleepy(d time.Duration) executor.GeneratorFunc {
	return func(_ context.Context, req executor.Request) (executor.Asset, error) {
		time.Sleep(d)
		return executor.Asset{Data: []byte(req.NodeID)}, nil
	}
}

// firstEvent returns the first of evs that match takes, or nil if none
// does.
func firstEvent(evs []progress.Event, match func(progress.Event) bool) *progress.Event {
	for i := range evs {
		if match(evs[i]) {
			return &evs[i]
		}
	}
	return nil
}

// eventLog is a sink that keeps every event it is given, in order. It is
// safe for concurrent use.
type eventLog struct {
	mu  sync.Mutex
	evs []progress.Event
}

func (l *eventLog) Publish(_ context.Context, batch ...progress.Event) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.evs = append(l.evs, batch...)
	return nil
}

// events returns a copy of the events kept so far.
func (l *eventLog) events() []progress.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.evs)
}
