package executor_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/progress"
)

// stallingAssets makes every Get hang until its context ends: a node
// that reads a dependency is then loading its inputs when the run is
// cancelled.
type stallingAssets struct {
	executor.AssetStore
	entered chan struct{}
}

func (s *stallingAssets) Get(ctx context.Context, ref string) (executor.Asset, error) {
	s.entered <- struct{}{}
	<-ctx.Done()
	return executor.Asset{}, ctx.Err()
}

// callLog is a generator, single and bulk, whose calls block until their
// context ends (but those of kind "a", which return at once), and a sink;
// it records the calls and the node events, by run and node.
type callLog struct {
	mu     sync.Mutex
	calls  map[string]map[string]int      // by run, then node
	events map[string]map[string][]string // event types, by run, then node
	stages map[string][]string            // stage events ("stage.started 0"), by run
	called chan string
	// hold, if set, blocks the publish of node.started of that node
	// until release is closed, after signalling holding.
	hold             string
	holding, release chan struct{}
}

func newCallLog() *callLog {
	return &callLog{calls: map[string]map[string]int{}, events: map[string]map[string][]string{}, stages: map[string][]string{},
		called: make(chan string, 16), holding: make(chan struct{}, 1), release: make(chan struct{})}
}

func (c *callLog) note(req executor.Request) {
	c.mu.Lock()
	if c.calls[req.RunID] == nil {
		c.calls[req.RunID] = map[string]int{}
	}
	c.calls[req.RunID][req.NodeID]++
	c.mu.Unlock()
	c.called <- req.NodeID
}

func (c *callLog) Generate(ctx context.Context, req executor.Request) (executor.Asset, error) {
	c.note(req)
	if req.ID.Kind == "a" {
		return executor.Asset{Data: []byte(req.NodeID)}, nil
	}
	<-ctx.Done()
	return executor.Asset{}, ctx.Err()
}

func (c *callLog) GenerateBatch(ctx context.Context, reqs []executor.Request) []executor.Outcome {
	out := make([]executor.Outcome, len(reqs))
	for i, req := range reqs {
		c.note(req)
		out[i].Err = context.Canceled
	}
	<-ctx.Done()
	return out
}

func (c *callLog) Publish(_ context.Context, evs ...progress.Event) error {
	for _, ev := range evs {
		if ev.Type == progress.StageStarted || ev.Type == progress.StageFinished {
			c.mu.Lock()
			c.stages[ev.RunID] = append(c.stages[ev.RunID], fmt.Sprintf("%s %d", ev.Type, ev.Stage))
			c.mu.Unlock()
		}
		if ev.Node == "" {
			continue
		}
		if ev.Type == progress.NodeStarted && ev.Node == c.hold {
			c.holding <- struct{}{}
			<-c.release
		}
		c.mu.Lock()
		if c.events[ev.RunID] == nil {
			c.events[ev.RunID] = map[string][]string{}
		}
		c.events[ev.RunID][ev.Node] = append(c.events[ev.RunID][ev.Node], string(ev.Type))
		c.mu.Unlock()
	}
	return nil
}

// A node that a worker had taken when the run was cancelled, but whose
// generator it had not called (it was reading its inputs, or waiting for
// room under Options.Limits or for a start under Options.Rates), was
// listed in Report.Cancelled and counted in Counts.Cancelled, with a
// node.cancelled event, after a node.started but when it was reading its
// inputs: "the nodes running when the run was cancelled", for a node
// that never ran, which the docs say a cancel "kept from starting", and
// that "gets no event". Such a node is now in no list, gets no event and
// counts no attempt: it stays dirty, as the planned nodes that a cancel
// kept from starting do. A node starts (node.started) once its inputs
// are read and its call has room and a start, if the run is not
// cancelled by then; only a node whose node.started went out as the
// cancel came, before its call, settles cancelled without a call
// (Attempt 0), as its event said it started (TestReviewNoCallAfterCancel).
// A stage whose first node taken was kept so from starting published
// stage.started all the same, when the worker took the node: a browser
// saw a stage start that ran nothing, and never finished. A stage now
// starts with the first event of one of its nodes, so a stage none of
// whose nodes started gets no event either.
func TestCancelledNodesThatNeverRan(t *testing.T) {
	waiting := graph.Template{Kinds: []graph.Kind{
		{Name: "x", BatchKey: "k", Concurrency: 2},
		{Name: "y", BatchKey: "k", Concurrency: 2},
	}}
	loading := graph.Template{Kinds: []graph.Kind{
		{Name: "a"}, {Name: "b", Deps: []graph.Dep{{Kind: "a", Scope: graph.ScopeGlobal}}},
	}}
	limit := map[string]int{"k": 1}
	for _, tc := range []struct {
		name string
		tmpl graph.Template
		opts executor.Options
		bulk bool
		// other starts a run of the template on another key first, whose
		// call holds the batch key's room under Limits, or its quota's
		// start under Rates: the node of the run cancelled waits for it.
		other bool
		// hold delays the publish of the node.started of this node, while
		// the run is cancelled.
		hold string
		// The cancelled run's events by node, its stage events, and its
		// Report.Cancelled.
		want      map[string][]string
		stages    []string
		cancelled []string
	}{
		{name: "reading its inputs", tmpl: loading,
			want: map[string][]string{"a": {"node.started", "node.succeeded"}}, stages: []string{"stage.started 0", "stage.finished 0"}},
		{name: "waiting for room under Limits", tmpl: waiting, other: true, opts: executor.Options{Limits: limit}},
		{name: "a bulk call waiting for room under Limits", tmpl: waiting, other: true, bulk: true,
			opts: executor.Options{Limits: limit}},
		{name: "waiting for a start under Rates", tmpl: waiting, other: true,
			opts: executor.Options{Rates: map[string]executor.Rate{"k": {Starts: 1, Per: time.Hour}}}},
		{name: "its start published as the cancel came", tmpl: graph.Template{Kinds: []graph.Kind{{Name: "x"}}},
			hold: "x", want: map[string][]string{"x": {"node.started", "node.cancelled"}}, stages: []string{"stage.started 0", "stage.finished 0"},
			cancelled: []string{"x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				g, err := graph.Build(tc.tmpl, graph.SegmentSeconds)
				require.NoError(t, err)
				c := newCallLog()
				c.hold = tc.hold
				var gen executor.Generator = executor.GeneratorFunc(c.Generate)
				if tc.bulk {
					gen = c
				}
				assets := &stallingAssets{AssetStore: executor.NewMemoryAssets(), entered: make(chan struct{}, 1)}
				opts := tc.opts
				opts.Generators, opts.Assets, opts.Sink, opts.Mode = registryFor(g, gen), assets, c, executor.Staged
				e, err := executor.New(opts)
				require.NoError(t, err)
				defer func() { require.NoError(t, e.Close(ctx)) }()
				if tc.other {
					first, err := e.Start(ctx, executor.RunRequest{GraphKey: "other", Graph: g})
					require.NoError(t, err)
					defer func() { first.Cancel(); _, _ = first.Wait() }()
					<-c.called
				}
				run, err := e.Start(ctx, executor.RunRequest{GraphKey: "key", Graph: g, RunID: "cancelled"})
				require.NoError(t, err)
				switch {
				case tc.hold != "":
					<-c.holding
				case !tc.other:
					<-assets.entered // b reads a's output
				default:
					time.Sleep(time.Second) // its node waits for room, or for a start
				}
				run.Cancel()
				if tc.hold != "" {
					close(c.release)
				}
				rep, err := run.Wait()
				require.ErrorIs(t, err, executor.ErrCancelled)

				c.mu.Lock()
				calls, events, stages := c.calls["cancelled"], c.events["cancelled"], c.stages["cancelled"]
				c.mu.Unlock()
				want := tc.want
				if want == nil {
					want = map[string][]string{}
				}
				if events == nil {
					events = map[string][]string{}
				}
				assert.Empty(t, cmp.Diff(want, events), "the events by node (-want +got)")
				assert.Empty(t, cmp.Diff(tc.stages, stages), "the stage events (-want +got)")
				assert.ElementsMatch(t, tc.cancelled, rep.Cancelled, "Report.Cancelled")
				assert.Equal(t, len(tc.cancelled), rep.Record.Counts.Cancelled, "Counts.Cancelled")
				attempts := 0
				for _, n := range calls {
					attempts += n
				}
				assert.Equal(t, attempts, rep.Record.Counts.Attempts, "Counts.Attempts: the generator calls")
				for id, evs := range events {
					if slices.Contains(evs, string(progress.NodeStarted)) {
						assert.Len(t, evs, 2, "node %s started: it settles with an event", id)
					}
				}
				// A node kept from starting stays as the plan left it, not
				// cancelled, and a resume makes it.
				snap, err := e.States().Load(ctx, "key")
				require.NoError(t, err)
				for _, id := range rep.Dirty {
					if !slices.Contains(tc.cancelled, id) {
						assert.NotEqual(t, dirty.StatusCancelled, snap.States[id].Status, "node %s", id)
					}
				}
			})
		})
	}
}
