package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/progress"
)

// chaosStore is what the chaos test needs of a store: the three stores
// and the pruning of MemoryStore and pgstore.Store.
type chaosStore interface {
	executor.StateStore
	executor.AssetStore
	executor.RunStore
	PruneAssets(ctx context.Context, olderThan time.Duration) (int64, error)
	PruneRuns(ctx context.Context, olderThan time.Duration) (int64, error)
}

// chaosSink keeps every event by run and seq, is slow at times and fails
// one publish in seven.
type chaosSink struct {
	mu       sync.Mutex
	byRun    map[string]map[uint64]progress.Event
	problems []string
	n        atomic.Int64
}

func (s *chaosSink) Publish(_ context.Context, evs ...progress.Event) error {
	n := s.n.Add(1)
	if n%11 == 0 {
		time.Sleep(time.Millisecond)
	}
	s.mu.Lock()
	for _, e := range evs {
		m := s.byRun[e.RunID]
		if m == nil {
			m = map[uint64]progress.Event{}
			s.byRun[e.RunID] = m
		}
		if old, ok := m[e.Seq]; ok && (old.Type != e.Type || old.Node != e.Node) {
			s.problems = append(s.problems, fmt.Sprintf("run %s seq %d published twice: %s %s, then %s %s", e.RunID, e.Seq, old.Type, old.Node, e.Type, e.Node))
		}
		m[e.Seq] = e
	}
	s.mu.Unlock()
	if n%7 == 0 {
		return errors.New("sink down")
	}
	return nil
}

// LastEvent makes the sink a progress.LastEventReader.
func (s *chaosSink) LastEvent(_ context.Context, run string) (progress.Event, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var last progress.Event
	for _, e := range s.byRun[run] {
		if e.Seq > last.Seq {
			last = e
		}
	}
	return last, last.Seq > 0, nil
}

// crashSink drops the final events: those of a process that stopped.
type crashSink struct{ *chaosSink }

func (s crashSink) Publish(ctx context.Context, evs ...progress.Event) error {
	var keep []progress.Event
	for _, e := range evs {
		if !e.Type.Final() {
			keep = append(keep, e)
		}
	}
	if len(keep) == 0 {
		return errors.New("process stopped")
	}
	return s.chaosSink.Publish(ctx, keep...)
}

// crashRuns is a run store whose final records fail: that of a process
// that stopped before it recorded its runs' outcome.
type crashRuns struct{ chaosStore }

func (s crashRuns) PutRun(ctx context.Context, r executor.Record) error {
	if r.Status != executor.RunRunning {
		return executor.Permanent(errors.New("process stopped"))
	}
	return s.chaosStore.PutRun(ctx, r)
}

func (s *chaosSink) events(run string) []progress.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []progress.Event
	for _, e := range s.byRun[run] {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b progress.Event) int { return int(a.Seq) - int(b.Seq) })
	return out
}

// The tenants' generator profiles.
const (
	profHealthy = iota
	profSlow
	profFlaky
	profPanicky
	profHung
	profBulk
	profCount
)

// chaosGen is every tenant's generator: it behaves as the profile of the
// request's graph key says. Its output names the node's revision.
type chaosGen struct {
	profile  *sync.Map // graph key -> int
	inflight atomic.Int64
}

func (c *chaosGen) prof(key string) int {
	v, _ := c.profile.Load(key)
	p, _ := v.(int)
	return p
}

func chaosData(req executor.Request) executor.Asset {
	data := fmt.Appendf(nil, "%s@%d", req.NodeID, req.Rev)
	for _, d := range req.Deps {
		data = fmt.Appendf(data, "|%s", d.Asset.Hash)
	}
	a := executor.Asset{Data: data}
	if req.ID.Kind == graph.KindNarration {
		a.Length = 10 * time.Second
	}
	return a
}

func (c *chaosGen) Generate(ctx context.Context, req executor.Request) (executor.Asset, error) {
	c.inflight.Add(1)
	defer c.inflight.Add(-1)
	wait := time.Duration(rand.IntN(2000)) * time.Microsecond
	switch c.prof(req.GraphKey) {
	case profSlow:
		wait = time.Duration(5+rand.IntN(15)) * time.Millisecond
	case profFlaky:
		if rand.IntN(4) == 0 {
			return executor.Asset{}, errors.New("flaky provider")
		}
	case profPanicky:
		if rand.IntN(12) == 0 {
			panic("generator panicked")
		}
	case profHung:
		if rand.IntN(15) == 0 {
			time.Sleep(400 * time.Millisecond) // ignores ctx
			req.Progress.Report(executor.Note{Message: "late"})
			return chaosData(req), nil
		}
	}
	req.Progress.Report(executor.Note{Message: "working"})
	go func() { // notes after the return are dropped
		<-ctx.Done()
		req.Progress.Report(executor.Note{Message: "after"})
	}()
	select {
	case <-time.After(wait):
	case <-ctx.Done():
		return executor.Asset{}, ctx.Err()
	}
	return chaosData(req), nil
}

func (c *chaosGen) GenerateBatch(ctx context.Context, reqs []executor.Request) []executor.Outcome {
	c.inflight.Add(1)
	defer c.inflight.Add(-1)
	out := make([]executor.Outcome, len(reqs))
	for i, req := range reqs {
		if c.prof(req.GraphKey) == profBulk && i%3 == 1 {
			out[i].Err = errors.New("bulk partial failure")
			continue
		}
		out[i].Asset, out[i].Err = c.Generate(ctx, req)
	}
	return out
}

// hostTemplate is a host's own template.
func hostTemplate() graph.Template {
	return graph.Template{Kinds: []graph.Kind{
		{Name: "host:outline"},
		{Name: "host:slide", PerSegment: true, Deps: []graph.Dep{{Kind: "host:outline", Scope: graph.ScopeGlobal}},
			BatchKey: "slides", Concurrency: 3},
		{Name: "host:deck", Deps: []graph.Dep{{Kind: "host:slide", Scope: graph.ScopeAllSegments}}},
	}}
}

func chaosRegistry(gen *chaosGen) executor.Registry {
	reg := executor.Registry{}
	for _, k := range graph.Lecture().Kinds {
		reg[k.Name] = gen
	}
	for _, k := range hostTemplate().Kinds {
		reg[k.Name] = gen
	}
	return reg
}

// chaos is one chaos scenario's world.
type chaos struct {
	t      *testing.T
	store  chaosStore
	e, e2  *executor.Executor
	crash  *executor.Executor // a process that stops before it records its runs' outcome
	sink   *chaosSink
	gen    *chaosGen
	mu     sync.Mutex
	minRev map[string]map[string]int64 // key -> node -> least revision it must have
}

func chaosOptions(gen *chaosGen, sink progress.Sink, s chaosStore) executor.Options {
	return executor.Options{
		Generators: chaosRegistry(gen), States: s, Assets: s, Runs: s, Sink: sink,
		Default: executor.KindOptions{
			Retry:   executor.RetryPolicy{MaxAttempts: 3, InitialInterval: time.Millisecond},
			Timeout: 200 * time.Millisecond,
		},
		Grace:  50 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler),
	}
}

// chaosVariants are the executors' options tried, by name.
var chaosVariants = []struct {
	name string
	set  func(*executor.Options)
}{
	{"dataflow", func(*executor.Options) {}},
	{"staged", func(o *executor.Options) { o.Mode = executor.Staged }},
	{"converge", func(o *executor.Options) { o.Converge = 2 }},
	{"limits", func(o *executor.Options) {
		o.Limits = map[string]int{graph.KindImage: 2, "slides": 2}
		o.Rates = map[string]executor.Rate{graph.KindVideo: {Starts: 50, Per: 100 * time.Millisecond}}
		o.Workers = 3
		o.Kinds = map[string]executor.KindOptions{graph.KindNarration: {BatchWindow: 2 * time.Millisecond}}
	}},
}

// TestChaosManyTenants is a host serving many tenants on one executor,
// on the memory stores and on Postgres: 18 graph keys (lectures of 10 to
// 90 s, and a host template), each with a generator of its own kind
// (healthy, slow, flaky, panicking, hung past its timeout, bulk with
// partial failures), run at once with edits from this process and a
// second one, second runs of a key, lectures made longer or shorter,
// cancels, resumes and reruns of failed and cancelled runs, runs of a
// process that stops before it records their outcome (then resumed,
// rerun or abandoned), pruning all along, and Closes while runs, edits,
// plans and resumes go on. A sink that is slow at times and fails one
// publish in seven keeps every event. After each step it checks: every
// clean node has its asset, made at its revision; no edit is lost; a
// resume makes no node clean and current; each run's report, record and
// events agree (lists, counts, status, Planned, attempts, who and why);
// each stream is well-formed (started first, final last, each node
// started and settled once a round, stages in order, Done monotone, the
// ETA known once known); healthy tenants' runs succeed whatever the
// others do; Close returns with no generator call left, the stores
// called no more, and later calls refused with ErrClosed; no run stays
// recorded running. -short runs the dataflow variant only.
func TestChaosManyTenants(t *testing.T) {
	t.Parallel() // its own schemas and graph keys
	for _, v := range chaosVariants {
		if testing.Short() && v.name != "dataflow" {
			continue
		}
		variant := v.set
		t.Run(v.name, func(t *testing.T) {
			t.Run("memory", func(t *testing.T) {
				ms := executor.NewMemoryStore()
				runChaos(t, ms, ms, variant)
			})
			t.Run("postgres", func(t *testing.T) {
				s, pg := newStore(t)
				s2 := poolStore(t, pg.Schema, nil)
				runChaos(t, s, s2, variant)
			})
		})
	}
}

func runChaos(t *testing.T, s, s2 chaosStore, variant func(*executor.Options)) {
	gen := &chaosGen{profile: &sync.Map{}}
	sink := &chaosSink{byRun: map[string]map[uint64]progress.Event{}}
	o := chaosOptions(gen, sink, s)
	variant(&o)
	e, err := executor.New(o)
	require.NoError(t, err)
	o = chaosOptions(gen, sink, s2)
	variant(&o)
	e2, err := executor.New(o)
	require.NoError(t, err)
	o = chaosOptions(gen, crashSink{sink}, s2)
	o.Runs = crashRuns{s2}
	variant(&o)
	crash, err := executor.New(o)
	require.NoError(t, err)
	c := &chaos{t: t, store: s, e: e, e2: e2, crash: crash, sink: sink, gen: gen, minRev: map[string]map[string]int64{}}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		assert.NoError(t, crash.Close(ctx))
		assert.NoError(t, e2.Close(ctx))
		assert.NoError(t, e.Close(ctx))
	}()

	const tenants = 18
	graphs := make([]*graph.Graph, tenants)
	keys := make([]string, tenants)
	for i := range tenants {
		keys[i] = fmt.Sprintf("chaos-%x-%d", rand.Uint32(), i)
		tmpl := graph.Lecture()
		if i%5 == 4 {
			tmpl = hostTemplate()
		}
		g, err := graph.Build(tmpl, 10*(1+i%9))
		require.NoError(t, err)
		graphs[i] = g
		gen.profile.Store(keys[i], i%profCount)
	}

	stop := make(chan struct{})
	var pruners sync.WaitGroup
	pruners.Add(1)
	go func() {
		defer pruners.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			_, err := s.PruneAssets(context.Background(), pruneAge(t, s, keys))
			assert.NoError(t, err)
			_, err = s.PruneRuns(context.Background(), time.Hour)
			assert.NoError(t, err)
		}
	}()

	var wg sync.WaitGroup
	for i := range tenants {
		wg.Add(1)
		go func() {
			defer wg.Done()
			graphs[i] = c.tenant(keys[i], graphs[i], i)
		}()
	}
	wg.Wait()
	close(stop)
	pruners.Wait()

	c.closeUnderLoad(keys, graphs, variant)

	// Close while runs are in flight.
	var runs []*executor.Run
	for i := range tenants {
		r, err := e.Start(context.Background(), executor.RunRequest{GraphKey: keys[i], Graph: graphs[i],
			Marks: []dirty.Mark{{ID: graphs[i].NodeID(0), Reason: dirty.ReasonForced}}, TriggeredBy: "closer"})
		if !assert.NoError(t, err) {
			continue
		}
		if i%2 == 0 {
			r.Cancel()
		}
		runs = append(runs, r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, r := range runs {
		go func() {
			time.Sleep(time.Duration(rand.IntN(20)) * time.Millisecond)
			r.Cancel()
		}()
	}
	require.NoError(t, e.Close(ctx))
	for _, r := range runs {
		select {
		case <-r.Done():
		default:
			t.Errorf("run %s not ended when Close returned", r.ID())
		}
		rep, err := r.Wait()
		c.checkRun(r.ID(), rep, err, "closer", "")
	}
	_, err = e.Start(ctx, executor.RunRequest{GraphKey: keys[0], Graph: graphs[0]})
	assert.ErrorIs(t, err, executor.ErrClosed)
	_, err = e.Edit(ctx, graphs[0], keys[0], graphs[0].NodeID(0))
	assert.ErrorIs(t, err, executor.ErrClosed)
	_, _, err = e.Plan(ctx, executor.RunRequest{GraphKey: keys[0], Graph: graphs[0]})
	assert.ErrorIs(t, err, executor.ErrClosed)
	_, err = e.Resume(ctx, graphs[0], runs[0].ID())
	assert.ErrorIs(t, err, executor.ErrClosed)
	_, err = e.RerunFailed(ctx, graphs[0], runs[0].ID())
	assert.ErrorIs(t, err, executor.ErrClosed)
	assert.ErrorIs(t, e.Abandon(ctx, runs[0].ID(), "x"), executor.ErrClosed)
	_, err = e.Forget(ctx, graphs[0], keys[0])
	assert.ErrorIs(t, err, executor.ErrClosed)

	for i := range tenants {
		c.checkStates(keys[i], graphs[i])
	}
	if lister, ok := s.(executor.RunStatusLister); ok {
		running, err := lister.RunsByStatus(context.Background(), executor.RunRunning)
		require.NoError(t, err)
		for _, rec := range running {
			if strings.HasPrefix(rec.GraphKey, "chaos-") && slices.Contains(keys, rec.GraphKey) {
				t.Errorf("run %s of %s still recorded running once all ended", rec.ID, rec.GraphKey)
			}
		}
	}
	sink.mu.Lock()
	assert.Empty(t, sink.problems)
	sink.mu.Unlock()
}

// pruneAge returns the olderThan of the test's PruneAssets: 5 s, or
// more while a run of keys has gone on longer. PruneAssets is safe with
// runs in progress when olderThan is longer than the longest run (its
// doc); a run whose result's Put came more than olderThan before its
// commit would find the asset pruned, and leave its node clean without
// it. Under load a run may last more than 5 s: the test saw it so.
func pruneAge(t *testing.T, s chaosStore, keys []string) time.Duration {
	age := 5 * time.Second
	lister, ok := s.(executor.RunStatusLister)
	if !ok {
		return age
	}
	running, err := lister.RunsByStatus(context.Background(), executor.RunRunning)
	assert.NoError(t, err)
	for _, rec := range running {
		if slices.Contains(keys, rec.GraphKey) {
			age = max(age, time.Since(rec.StartedAt)+time.Second)
		}
	}
	return age
}

// tenant runs one tenant's script.
func (c *chaos) tenant(key string, g *graph.Graph, i int) *graph.Graph {
	t := c.t
	ctx := context.Background()
	for it := range 6 {
		if rand.IntN(5) == 0 {
			c.crashAndResume(key, g, i, it)
			continue
		}
		var marks []dirty.Mark
		if it > 0 && rand.IntN(2) == 0 {
			marks = []dirty.Mark{{ID: g.NodeID(graph.Node(rand.IntN(g.Len()))), Reason: dirty.ReasonEdited}}
		}
		who, why := fmt.Sprintf("tenant-%d", i), fmt.Sprintf("iteration %d", it)
		r, err := c.e.Start(ctx, executor.RunRequest{GraphKey: key, Graph: g, Marks: marks, TriggeredBy: who, Reason: why})
		if !assert.NoError(t, err, "start %s", key) {
			return g
		}
		if rec, err := c.store.GetRun(ctx, r.ID()); assert.NoError(t, err, "record of %s once started", r.ID()) {
			assert.Equal(t, who, rec.TriggeredBy)
		}
		var other *executor.Run
		if rand.IntN(5) == 0 {
			other, err = c.e2.Start(ctx, executor.RunRequest{GraphKey: key, Graph: g, TriggeredBy: who, Reason: why})
			assert.NoError(t, err, "second start %s", key)
		}
		var g2 *graph.Graph // a lecture made longer or shorter
		if rand.IntN(6) == 0 {
			secs := (g.Segments() + 1 + rand.IntN(3)) * graph.SegmentSeconds
			if rand.IntN(2) == 0 && g.Segments() > 1 {
				secs = (g.Segments() - 1) * graph.SegmentSeconds
			}
			g2, err = graph.Build(g.Template(), secs)
			require.NoError(t, err)
		}
		nEdits := rand.IntN(4)
		var edits sync.WaitGroup
		for range nEdits {
			edits.Add(1)
			go func() {
				defer edits.Done()
				time.Sleep(time.Duration(rand.IntN(10)) * time.Millisecond)
				c.edit(key, g, g2 != nil)
			}()
		}
		var replacement *executor.Run
		if g2 != nil {
			time.Sleep(time.Duration(rand.IntN(10)) * time.Millisecond)
			replacement, err = c.e2.Start(ctx, executor.RunRequest{GraphKey: key, Graph: g2, TriggeredBy: who, Reason: why})
			require.NoError(t, err, "start of a longer lecture on %s", key)
			_, err = c.e.Edit(ctx, g2, key, g2.NodeID(0))
			assert.NoError(t, err, "edit of the key's new graph")
			// A node of the key's old graph that its new one has too
			// (node IDs are the same at each length): the edit lands on
			// the new graph.
			_, err = c.e.Edit(ctx, g, key, g.NodeID(0))
			assert.NoError(t, err, "edit of the key's old graph, of a node its new one has")
		}
		if rand.IntN(3) == 0 {
			if d := rand.IntN(20) - 5; d > 0 {
				time.Sleep(time.Duration(d) * time.Millisecond)
			}
			r.Cancel()
		}
		rep, err := r.Wait()
		edits.Wait()
		c.checkRun(r.ID(), rep, err, who, why)
		if p := c.gen.prof(key); (p == profHealthy || p == profSlow || p == profBulk) &&
			!errors.Is(err, executor.ErrCancelled) && !errors.Is(err, executor.ErrTimeout) { // a timeout: the machine's load
			assert.NoError(t, err, "run %s of a healthy tenant", r.ID())
		}
		if other != nil {
			orep, oerr := other.Wait()
			c.checkRun(other.ID(), orep, oerr, who, why)
		} else if nEdits == 0 && g2 == nil {
			c.checkDirty(key, g, rep)
		}
		if replacement != nil {
			rrep, rerr := replacement.Wait()
			c.checkRun(replacement.ID(), rrep, rerr, who, why)
			if err != nil {
				_, rerr := c.e.Resume(ctx, g, r.ID())
				assert.ErrorIs(t, rerr, executor.ErrGraphReplaced, "resume of %s, whose graph was replaced", r.ID())
			}
			g = g2
			c.checkStates(key, g)
			continue
		}
		c.checkStates(key, g)
		if err == nil {
			continue
		}
		// Resume or rerun what the run left.
		snap, lerr := c.store.Load(ctx, key)
		require.NoError(t, lerr)
		var r2 *executor.Run
		if it%2 == 0 {
			r2, err = c.e.Resume(ctx, g, r.ID())
		} else {
			r2, err = c.e2.RerunFailed(ctx, g, r.ID())
		}
		if !assert.NoError(t, err, "resume of %s", r.ID()) {
			continue
		}
		rep2, err2 := r2.Wait()
		c.checkRun(r2.ID(), rep2, err2, who, "")
		assert.Equal(t, r.ID(), rep2.Record.Resumes)
		c.checkResumeMadeNoCurrentNode(g, snap, r2.ID(), rep2)
		c.checkDirty(key, g, rep2)
		c.checkStates(key, g)
	}
	return g
}

// watchStore notes the calls made once closed is set.
type watchStore struct {
	chaosStore
	closed atomic.Bool
	late   atomic.Int64
}

func (s *watchStore) note() {
	if s.closed.Load() {
		s.late.Add(1)
	}
}

func (s *watchStore) Load(ctx context.Context, k string) (executor.Snapshot, error) {
	s.note()
	return s.chaosStore.Load(ctx, k)
}

func (s *watchStore) Commit(ctx context.Context, k string, v int64, c []executor.Change) (int64, error) {
	s.note()
	return s.chaosStore.Commit(ctx, k, v, c)
}

func (s *watchStore) Put(ctx context.Context, k string, a executor.Asset) (string, error) {
	s.note()
	return s.chaosStore.Put(ctx, k, a)
}

func (s *watchStore) Get(ctx context.Context, ref string) (executor.Asset, error) {
	s.note()
	return s.chaosStore.Get(ctx, ref)
}

func (s *watchStore) Exists(ctx context.Context, ref string) (bool, error) {
	s.note()
	return s.chaosStore.Exists(ctx, ref)
}

func (s *watchStore) PutRun(ctx context.Context, r executor.Record) error {
	s.note()
	return s.chaosStore.PutRun(ctx, r)
}

func (s *watchStore) GetRun(ctx context.Context, id string) (executor.Record, error) {
	s.note()
	return s.chaosStore.GetRun(ctx, id)
}

func (s *watchStore) ListRuns(ctx context.Context, k string) ([]executor.Record, error) {
	s.note()
	return s.chaosStore.ListRuns(ctx, k)
}

// closeUnderLoad has every tenant start runs, edit, plan and resume on
// an executor of its own until it is closed, and closes it meanwhile.
func (c *chaos) closeUnderLoad(keys []string, graphs []*graph.Graph, variant func(*executor.Options)) {
	t := c.t
	ws := &watchStore{chaosStore: c.store}
	gen := &chaosGen{profile: c.gen.profile}
	o := chaosOptions(gen, c.sink, ws)
	variant(&o)
	e, err := executor.New(o)
	require.NoError(t, err)
	ok := func(err error, what string) bool {
		if err == nil {
			return true
		}
		if !errors.Is(err, executor.ErrClosed) {
			assert.NoError(t, err, what)
		}
		return false
	}
	var wg sync.WaitGroup
	for i := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key, g, ctx := keys[i], graphs[i], context.Background()
			who := fmt.Sprintf("tenant-%d", i)
			for {
				r, err := e.Start(ctx, executor.RunRequest{GraphKey: key, Graph: g, TriggeredBy: who,
					Marks: []dirty.Mark{{ID: g.NodeID(graph.Node(rand.IntN(g.Len()))), Reason: dirty.ReasonEdited}}})
				if !ok(err, "start") {
					return
				}
				if rand.IntN(2) == 0 {
					_, err := e.Edit(ctx, g, key, g.NodeID(graph.Node(rand.IntN(g.Len()))))
					ok(err, "edit")
				}
				if rand.IntN(3) == 0 {
					r.Cancel()
				}
				_, _, err = e.Plan(ctx, executor.RunRequest{GraphKey: key, Graph: g})
				ok(err, "plan")
				rep, err := r.Wait()
				c.checkRun(r.ID(), rep, err, who, "")
				if err != nil {
					r2, err := e.Resume(ctx, g, r.ID())
					if !ok(err, "resume") {
						return
					}
					rep, err := r2.Wait()
					c.checkRun(r2.ID(), rep, err, who, "")
				}
			}
		}()
	}
	time.Sleep(time.Duration(20+rand.IntN(40)) * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, e.Close(ctx))
	ws.closed.Store(true)
	assert.Zero(t, gen.inflight.Load(), "generator calls in flight once Close returned")
	wg.Wait()
	assert.Zero(t, ws.late.Load(), "store calls once Close returned")
	for i := range keys {
		c.checkStates(keys[i], graphs[i])
	}
}

// crashAndResume runs the key's graph in a process that stops before it
// records the outcome, and then resumes the run (or reruns its failed
// nodes, or abandons it) in this one.
func (c *chaos) crashAndResume(key string, g *graph.Graph, i, it int) {
	t := c.t
	ctx := context.Background()
	who := fmt.Sprintf("tenant-%d", i)
	marks := []dirty.Mark{{ID: g.NodeID(graph.Node(rand.IntN(g.Len()))), Reason: dirty.ReasonEdited}}
	r, err := c.crash.Start(ctx, executor.RunRequest{GraphKey: key, Graph: g, Marks: marks, TriggeredBy: who})
	if !assert.NoError(t, err, "start %s", key) {
		return
	}
	if rand.IntN(3) == 0 {
		time.Sleep(time.Duration(rand.IntN(10)) * time.Millisecond)
		r.Cancel()
	}
	rep, _ := r.Wait()
	c.checkStates(key, g)
	stored, err := c.store.GetRun(ctx, r.ID())
	require.NoError(t, err)
	require.Equal(t, executor.RunRunning, stored.Status, "run %s", r.ID())
	evs := c.sink.events(r.ID())
	var lastSeq uint64
	lastTotal := 0
	if len(evs) > 0 {
		lastSeq, lastTotal = evs[len(evs)-1].Seq, evs[len(evs)-1].Total
	}
	snap, err := c.store.Load(ctx, key)
	require.NoError(t, err)
	var r2 *executor.Run
	switch rand.IntN(3) {
	case 0:
		r2, err = c.e.Resume(ctx, g, r.ID())
	case 1:
		r2, err = c.e2.RerunFailed(ctx, g, r.ID())
	default:
		err = c.e.Abandon(ctx, r.ID(), "tenant gave up")
	}
	if !assert.NoError(t, err, "finish %s", r.ID()) {
		return
	}
	old, err := c.store.GetRun(ctx, r.ID())
	require.NoError(t, err)
	assert.Equal(t, executor.RunInterrupted, old.Status, "run %s", r.ID())
	// Nothing ran between the crashed run and the resume: the states
	// show all it committed clean.
	made := len(rep.Generated) + len(rep.Unchanged)
	assert.Equal(t, made, old.Counts.Generated, "interrupted run %s: generated (%+v)", r.ID(), old.Counts)
	assert.GreaterOrEqual(t, old.Counts.Planned, max(lastTotal, old.Counts.Generated+old.Counts.Failed+old.Counts.Cancelled),
		"interrupted run %s: planned", r.ID())
	evs = c.sink.events(r.ID())
	if assert.NotEmpty(t, evs, "run %s", r.ID()) {
		last := evs[len(evs)-1]
		assert.Equal(t, lastSeq+1, last.Seq, "run %s: final event's seq", r.ID())
		assert.Equal(t, progress.RunCancelled, last.Type, "run %s: final event", r.ID())
		if r2 != nil {
			assert.Equal(t, r2.ID(), last.ResumedBy, "run %s: final event's ResumedBy", r.ID())
		}
	}
	if r2 == nil {
		return
	}
	rep2, err2 := r2.Wait()
	c.checkRun(r2.ID(), rep2, err2, who, "")
	assert.Equal(t, r.ID(), rep2.Record.Resumes)
	c.checkResumeMadeNoCurrentNode(g, snap, r2.ID(), rep2)
	c.checkDirty(key, g, rep2)
	c.checkStates(key, g)
}

// edit edits a random node of key, through either executor, and notes
// the revision the node must have from then on.
func (c *chaos) edit(key string, g *graph.Graph, replaced bool) {
	e := c.e
	if rand.IntN(2) == 0 {
		e = c.e2
	}
	id := g.NodeID(graph.Node(rand.IntN(g.Len())))
	if _, err := e.Edit(context.Background(), g, key, id); err != nil {
		if !replaced || !errors.Is(err, executor.ErrInvalidRequest) {
			assert.NoError(c.t, err, "edit %s %s", key, id)
		}
		return
	}
	snap, err := c.store.Load(context.Background(), key)
	require.NoError(c.t, err)
	c.mu.Lock()
	if c.minRev[key] == nil {
		c.minRev[key] = map[string]int64{}
	}
	c.minRev[key][id] = max(c.minRev[key][id], snap.States[id].Rev)
	c.mu.Unlock()
}

// checkStates checks that every clean node of key has its asset, made
// with its current revision, and that no edit was lost.
func (c *chaos) checkStates(key string, g *graph.Graph) {
	t := c.t
	ctx := context.Background()
	snap, err := c.store.Load(ctx, key)
	require.NoError(t, err)
	c.mu.Lock()
	want := maps.Clone(c.minRev[key])
	c.mu.Unlock()
	for id, rev := range want {
		assert.GreaterOrEqual(t, snap.States[id].Rev, rev, "%s %s: edit lost", key, id)
	}
	for n := range graph.Node(g.Len()) {
		id := g.NodeID(n)
		st := snap.States[id]
		if st.Status != dirty.StatusClean {
			continue
		}
		a, err := c.store.Get(ctx, st.AssetRef)
		if !assert.NoError(t, err, "%s %s: clean without its asset", key, id) {
			continue
		}
		prefix := fmt.Sprintf("%s@%d", id, st.Rev)
		assert.True(t, string(a.Data) == prefix || strings.HasPrefix(string(a.Data), prefix+"|"),
			"%s %s: clean at rev %d with an output of %q", key, id, st.Rev, a.Data)
	}
}

// checkDirty checks that the report's Dirty lists the nodes that the
// stored states hold not clean.
func (c *chaos) checkDirty(key string, g *graph.Graph, rep *executor.Report) {
	snap, err := c.store.Load(context.Background(), key)
	require.NoError(c.t, err)
	want := []string{}
	for n := range graph.Node(g.Len()) {
		if snap.States[g.NodeID(n)].Status != dirty.StatusClean {
			want = append(want, g.NodeID(n))
		}
	}
	assert.Equal(c.t, sortByKind(want), rep.Dirty, "run %s: report's dirty", rep.Record.ID)
}

// sortByKind sorts node IDs as a Report lists them: by kind name, then
// segment number; nil becomes empty.
func sortByKind(s []string) []string {
	s = slices.Clone(s)
	slices.SortFunc(s, func(a, b string) int {
		x, _ := graph.ParseID(a)
		y, _ := graph.ParseID(b)
		if c := strings.Compare(x.Kind, y.Kind); c != 0 {
			return c
		}
		return x.Segment - y.Segment
	})
	if s == nil {
		s = []string{}
	}
	return s
}

// checkResumeMadeNoCurrentNode checks that the resume started no node
// that snap holds clean and current (its dependencies all current, its
// input hash theirs).
func (c *chaos) checkResumeMadeNoCurrentNode(g *graph.Graph, snap executor.Snapshot, run string, rep *executor.Report) {
	current := make([]bool, g.Len())
	for n := range graph.Node(g.Len()) { // dependencies come first
		st, ok := snap.States[g.NodeID(n)]
		if !ok || st.Status != dirty.StatusClean {
			continue
		}
		var hashes []string
		okDeps := true
		for _, d := range g.Deps(n) {
			if !current[d] {
				okDeps = false
				break
			}
			hashes = append(hashes, snap.States[g.NodeID(d)].OutputHash)
		}
		current[n] = okDeps && dirty.InputHash(st.Rev, hashes) == st.InputHash
	}
	forced := map[string]bool{}
	for _, m := range rep.Record.Marks {
		forced[m.ID] = true
	}
	for _, ev := range c.sink.events(run) {
		if ev.Type != progress.NodeStarted {
			continue
		}
		n, err := g.Lookup(ev.Node)
		require.NoError(c.t, err)
		assert.False(c.t, current[n] && !forced[ev.Node], "resume %s made %s, clean and current when it started", run, ev.Node)
	}
}

// checkRun checks a run's report, record and events against each other.
func (c *chaos) checkRun(id string, rep *executor.Report, err error, who, why string) {
	t := c.t
	require.NotNil(t, rep, "run %s", id)
	rec := rep.Record
	ctx := context.Background()
	stored, gerr := c.store.GetRun(ctx, id)
	if assert.NoError(t, gerr, "record of %s", id) {
		assert.Equal(t, rec.Status, stored.Status, "run %s", id)
		assert.Equal(t, rec.Counts, stored.Counts, "run %s", id)
		assert.Equal(t, len(rec.Failed), len(stored.Failed), "run %s", id)
		assert.Equal(t, strings.Join(rec.Failed, ","), strings.Join(stored.Failed, ","), "run %s", id)
		assert.Equal(t, rec.Error, stored.Error, "run %s", id)
		assert.True(t, rec.StartedAt.Truncate(time.Microsecond).Equal(stored.StartedAt.Truncate(time.Microsecond)), "run %s: started at %v, stored %v", id, rec.StartedAt, stored.StartedAt)
		assert.True(t, rec.EndedAt.Truncate(time.Microsecond).Equal(stored.EndedAt.Truncate(time.Microsecond)), "run %s: ended at %v, stored %v", id, rec.EndedAt, stored.EndedAt)
		assert.Equal(t, rec.Resumes, stored.Resumes, "run %s", id)
		assert.Equal(t, rec.Graph, stored.Graph, "run %s", id)
		assert.Equal(t, rec.Seconds, stored.Seconds, "run %s", id)
	}
	assert.Equal(t, who, rec.TriggeredBy, "run %s", id)
	if why != "" {
		assert.Equal(t, why, rec.Reason, "run %s", id)
	}
	var wantStatus executor.RunStatus
	var wantFinal progress.Type
	var runErr *executor.RunError
	switch {
	case err == nil:
		wantStatus, wantFinal = executor.RunSucceeded, progress.RunFinished
	case errors.Is(err, executor.ErrCancelled):
		wantStatus, wantFinal = executor.RunCancelled, progress.RunCancelled
	case errors.As(err, &runErr):
		wantStatus, wantFinal = executor.RunFailed, progress.RunFailed
	default:
		t.Errorf("run %s: unexpected error %v", id, err)
		return
	}
	assert.Equal(t, wantStatus, rec.Status, "run %s: %v", id, err)

	evs := c.sink.events(id)
	if !assert.NotEmpty(t, evs, "run %s has no events", id) {
		return
	}
	for i, ev := range evs {
		if !assert.Equal(t, uint64(i+1), ev.Seq, "run %s: seq gap", id) {
			return
		}
	}
	assert.Equal(t, progress.RunStarted, evs[0].Type, "run %s", id)
	last := evs[len(evs)-1]
	assert.Equal(t, wantFinal, last.Type, "run %s: final event (%v)", id, err)
	for _, ev := range evs[1 : len(evs)-1] {
		assert.False(t, ev.Type.Final(), "run %s: final event %s before the last", id, ev.Type)
	}
	// Each node's last settling event, over all rounds: the report lists
	// a node once, under its last outcome.
	lastSettled := map[string]progress.Type{}
	started := map[string]int{}
	settles := map[string]int{}
	lastAttempt := map[string]int{}
	stageStarted, stageFinished := map[int]bool{}, map[int]bool{}
	lastFinished := -1
	done := 0
	rounds := 1
	etaKnown := false
	settledAll := 0
	for _, ev := range evs {
		switch {
		case ev.Type.Final():
			assert.Zero(t, ev.ETA, "run %s seq %d: final event's ETA", id, ev.Seq)
		case ev.ETA > 0:
			etaKnown = true
			assert.GreaterOrEqual(t, ev.ETA, time.Second, "run %s seq %d %s: ETA", id, ev.Seq, ev.Type)
		case etaKnown && ev.Done < ev.Total:
			t.Errorf("run %s seq %d %s: ETA unknown again (done %d of %d)", id, ev.Seq, ev.Type, ev.Done, ev.Total)
			for _, ev := range evs {
				t.Logf("  %d %s %s stage %d attempt %d done %d/%d eta %v msg %q", ev.Seq, ev.Type, ev.Node, ev.Stage, ev.Attempt, ev.Done, ev.Total, ev.ETA, ev.Message)
			}
		}
		assert.GreaterOrEqual(t, ev.Done, done, "run %s seq %d: done went back", id, ev.Seq)
		done = ev.Done
		if ev.Type == progress.Message && ev.Node == "" && strings.HasPrefix(ev.Message, "Round ") {
			rounds++
			checkSettled(t, id, started, settles, wantFinal)
			started, settles, lastAttempt = map[string]int{}, map[string]int{}, map[string]int{}
			stageStarted, stageFinished = map[int]bool{}, map[int]bool{}
			lastFinished = -1
		}
		if ev.Type == progress.Message && ev.Node != "" {
			assert.Zero(t, settles[ev.Node], "run %s seq %d: a note of %s after it settled: %q", id, ev.Seq, ev.Node, ev.Message)
		}
		switch ev.Type {
		case progress.NodeStarted:
			assert.True(t, stageStarted[ev.Stage], "run %s seq %d %s %s: stage %d not started", id, ev.Seq, ev.Type, ev.Node, ev.Stage)
			assert.False(t, stageFinished[ev.Stage], "run %s seq %d %s %s: stage %d finished already", id, ev.Seq, ev.Type, ev.Node, ev.Stage)
			started[ev.Node]++
			assert.Equal(t, 1, ev.Attempt, "run %s: %s started", id, ev.Node)
			assert.Zero(t, settles[ev.Node], "run %s: %s started after it settled", id, ev.Node)
			lastAttempt[ev.Node] = 1
		case progress.NodeRetrying:
			assert.Equal(t, 1, started[ev.Node], "run %s: %s retried without starting", id, ev.Node)
			assert.Greater(t, ev.Attempt, lastAttempt[ev.Node], "run %s: %s retry attempt", id, ev.Node)
			lastAttempt[ev.Node] = ev.Attempt
		case progress.NodeSucceeded, progress.NodeUnchanged, progress.NodeFailed, progress.NodeSkipped,
			progress.NodeSuperseded, progress.NodeCancelled:
			settledAll++
			assert.GreaterOrEqual(t, ev.Done, settledAll, "run %s seq %d %s %s: done", id, ev.Seq, ev.Type, ev.Node)
			if ev.Type != progress.NodeSkipped {
				assert.True(t, stageStarted[ev.Stage], "run %s seq %d %s %s: stage %d not started", id, ev.Seq, ev.Type, ev.Node, ev.Stage)
			}
			assert.False(t, stageFinished[ev.Stage], "run %s seq %d %s %s: stage %d finished already", id, ev.Seq, ev.Type, ev.Node, ev.Stage)
			// A node that early cutoff kept and whose kept result was
			// then not committed is superseded with no start, Attempt 0.
			if ev.Type == progress.NodeSucceeded || ev.Type == progress.NodeCancelled ||
				ev.Type == progress.NodeSuperseded && ev.Attempt > 0 {
				if !assert.Equal(t, 1, started[ev.Node], "run %s seq %d %s %s: settled so without starting", id, ev.Seq, ev.Type, ev.Node) {
					for _, ev := range evs {
						t.Logf("  %d %s %s stage %d attempt %d done %d/%d msg %q err %q", ev.Seq, ev.Type, ev.Node, ev.Stage, ev.Attempt, ev.Done, ev.Total, ev.Message, ev.Error)
					}
				}
			}
			if ev.Type == progress.NodeSkipped {
				assert.Zero(t, started[ev.Node], "run %s seq %d %s %s: skipped once started", id, ev.Seq, ev.Type, ev.Node)
				assert.Contains(t, ev.Message, "upstream ", "run %s seq %d %s %s", id, ev.Seq, ev.Type, ev.Node)
			}
			settles[ev.Node]++
			assert.Equal(t, 1, settles[ev.Node], "run %s: %s settled again (%s)", id, ev.Node, ev.Type)
			lastSettled[ev.Node] = ev.Type
		case progress.StageStarted:
			assert.False(t, stageStarted[ev.Stage], "run %s: stage %d started twice", id, ev.Stage)
			stageStarted[ev.Stage] = true
		case progress.StageFinished:
			assert.True(t, stageStarted[ev.Stage], "run %s: stage %d finished before it started", id, ev.Stage)
			assert.False(t, stageFinished[ev.Stage], "run %s: stage %d finished twice", id, ev.Stage)
			assert.Greater(t, ev.Stage, lastFinished, "run %s: stages finish in order", id)
			stageFinished[ev.Stage], lastFinished = true, ev.Stage
		}
	}
	checkSettled(t, id, started, settles, wantFinal)
	assert.Equal(t, rounds, rep.Rounds, "run %s: rounds", id)
	// A node's attempts: its settling event's Attempt once it started (a
	// retry announced and then cancelled in its backoff was not made).
	attempts := 0
	announced := map[string]int{}
	for _, ev := range evs {
		switch ev.Type {
		case progress.NodeStarted, progress.NodeRetrying:
			announced[ev.Node] = ev.Attempt
		case progress.NodeSucceeded, progress.NodeFailed, progress.NodeSuperseded, progress.NodeCancelled, progress.NodeUnchanged:
			if _, ok := announced[ev.Node]; ok {
				attempts += ev.Attempt
				delete(announced, ev.Node)
			}
		}
	}
	for _, a := range announced {
		attempts += a
	}
	if !assert.Equal(t, attempts, rec.Counts.Attempts, "run %s: attempts", id) {
		for _, ev := range evs {
			if ev.Node != "" {
				t.Logf("  %d %s %s attempt %d err %q msg %q", ev.Seq, ev.Type, ev.Node, ev.Attempt, ev.Error, ev.Message)
			} else {
				t.Logf("  %d %s", ev.Seq, ev.Type)
			}
		}
	}
	settled := map[progress.Type][]string{}
	for n, typ := range lastSettled {
		settled[typ] = append(settled[typ], n)
	}
	for _, x := range []struct {
		typ  progress.Type
		list []string
		n    int
	}{
		{progress.NodeSucceeded, rep.Generated, rec.Counts.Generated},
		{progress.NodeUnchanged, rep.Unchanged, rec.Counts.Unchanged},
		{progress.NodeFailed, rep.Failed, rec.Counts.Failed},
		{progress.NodeSkipped, rep.Skipped, rec.Counts.Skipped},
		{progress.NodeSuperseded, rep.Superseded, rec.Counts.Superseded},
		{progress.NodeCancelled, rep.Cancelled, rec.Counts.Cancelled},
	} {
		slices.Sort(settled[x.typ])
		assert.Equal(t, sortByKind(slices.Compact(settled[x.typ])), x.list, "run %s: %s events and report", id, x.typ)
		assert.Len(t, x.list, x.n, "run %s: %s count", id, x.typ)
	}
	assert.Equal(t, last.Total, rec.Counts.Planned, "run %s: planned", id)
	if rounds == 1 {
		assert.Equal(t, evs[0].Total, rec.Counts.Planned, "run %s: planned at start", id)
	}
	if wantFinal != progress.RunCancelled {
		assert.Equal(t, last.Total, last.Done, "run %s: final done", id)
	}
	fails := rec.Failed
	if fails == nil {
		fails = []string{}
	}
	assert.Equal(t, rep.Failed, fails, "run %s: record's failed", id)
}

// checkSettled checks that each node started in a round settled once.
func checkSettled(t *testing.T, id string, started, settles map[string]int, final progress.Type) {
	for n, k := range started {
		if k != 1 {
			t.Errorf("run %s: %s started %d times", id, n, k)
		}
		if settles[n] != 1 && final != progress.RunCancelled {
			t.Errorf("run %s: %s started and settled %d times", id, n, settles[n])
		}
	}
}
