package executor_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
)

// spanCalls is a bulk generator that records its calls, as node IDs, and
// checks that each request names its node's kind; fail says, by node ID,
// what a node's outcome in a bulk call is instead of its output; took is
// how long each call takes.
type spanCalls struct {
	t    *testing.T
	took time.Duration
	fail map[string]error

	mu      sync.Mutex
	calls   [][]string
	singles []string
}

func (s *spanCalls) Generate(_ context.Context, req executor.Request) (executor.Asset, error) {
	s.mu.Lock()
	s.singles = append(s.singles, req.NodeID)
	s.mu.Unlock()
	return executor.Asset{Data: []byte(req.NodeID)}, nil
}

func (s *spanCalls) GenerateBatch(ctx context.Context, reqs []executor.Request) []executor.Outcome {
	ids := make([]string, len(reqs))
	for i, r := range reqs {
		ids[i] = r.NodeID
		id, err := graph.ParseID(r.NodeID)
		if assert.NoError(s.t, err) {
			assert.Equal(s.t, id.Kind, r.ID.Kind, "a request names its own node's kind")
		}
		if i > 0 {
			assert.Less(s.t, reqs[i-1].Node, r.Node, "a call's requests come in node order")
		}
	}
	s.mu.Lock()
	s.calls = append(s.calls, ids)
	s.mu.Unlock()
	if s.took > 0 {
		select {
		case <-time.After(s.took):
		case <-ctx.Done():
		}
	}
	out := make([]executor.Outcome, len(reqs))
	for i, r := range reqs {
		if err := s.fail[r.NodeID]; err != nil {
			out[i].Err = err
			continue
		}
		out[i].Asset = executor.Asset{Data: []byte(r.NodeID)}
	}
	return out
}

// kindsOf returns the kinds of a call's nodes, sorted, once each.
func kindsOf(t *testing.T, call []string) []string {
	var out []string
	for _, id := range call {
		p, err := graph.ParseID(id)
		require.NoError(t, err)
		out = append(out, p.Kind)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// tiles is a template of TileSmith's shape: a kind per map tile, all of
// batch key "raster", 4 at a time (six tiles here), and two per-segment
// kinds of key "seg", 4 at a time.
func tiles() graph.Template {
	var tm graph.Template
	for _, name := range []string{"tile:0", "tile:1", "tile:2", "tile:3", "tile:4", "tile:5"} {
		tm.Kinds = append(tm.Kinds, graph.Kind{Name: name, BatchKey: "raster", Concurrency: 4})
	}
	tm.Kinds = append(tm.Kinds,
		graph.Kind{Name: "a", PerSegment: true, BatchKey: "seg", Concurrency: 4},
		graph.Kind{Name: "b", PerSegment: true, BatchKey: "seg", Concurrency: 4})
	return tm
}

// TestBulkCallsSpanTheKindsOfOneGenerator: kinds of one batch key that
// share one bulk generator share its calls, up to the key's concurrency,
// in Staged and in Dataflow mode; the calls never span batch keys. Each
// call took the nodes of one kind, so that TileSmith's one-node kinds
// made calls of one node each, where the plan said "in batches of 4".
func TestBulkCallsSpanTheKindsOfOneGenerator(t *testing.T) {
	for _, mode := range []executor.Mode{executor.Staged, executor.Dataflow} {
		t.Run(mode.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				g, err := graph.Build(tiles(), 30)
				require.NoError(t, err)
				s := &spanCalls{t: t, took: time.Second}
				e, err := executor.New(executor.Options{Generators: registryFor(g, s), Mode: mode})
				require.NoError(t, err)
				defer e.Close(context.Background())
				_, err = e.Run(context.Background(), executor.RunRequest{GraphKey: "map", Graph: g})
				require.NoError(t, err)
				s.mu.Lock()
				defer s.mu.Unlock()
				assert.Empty(t, s.singles)
				byKey := map[string][][]string{}
				for _, call := range s.calls {
					key := "raster"
					if ks := kindsOf(t, call); ks[0] == "a" || ks[0] == "b" {
						key = "seg"
						assert.Equal(t, []string{"seg"}, keysOf(ks), "a call spans batch keys: %v", call)
					}
					byKey[key] = append(byKey[key], call)
				}
				assert.Equal(t, [][]string{{"tile:0", "tile:1", "tile:2", "tile:3"}, {"tile:4", "tile:5"}}, byKey["raster"])
				require.Len(t, byKey["seg"], 2)
				assert.Len(t, byKey["seg"][0], 4)
				assert.Len(t, byKey["seg"][1], 2)
				assert.Equal(t, []string{"a", "b"}, kindsOf(t, byKey["seg"][0]), "the first call spans both kinds")
			})
		})
	}
}

// keysOf returns the batch keys of kinds of the tiles template.
func keysOf(kinds []string) []string {
	var out []string
	for _, k := range kinds {
		if k == "a" || k == "b" {
			out = append(out, "seg")
		} else {
			out = append(out, "raster")
		}
	}
	return slices.Compact(out)
}

// valueBulk is a bulk generator used as a value: equal values are the
// same generator.
type valueBulk struct{ s *spanCalls }

func (v valueBulk) Generate(ctx context.Context, req executor.Request) (executor.Asset, error) {
	return v.s.Generate(ctx, req)
}

func (v valueBulk) GenerateBatch(ctx context.Context, reqs []executor.Request) []executor.Outcome {
	return v.s.GenerateBatch(ctx, reqs)
}

// funcBulk is a bulk generator whose values cannot be compared (== of
// two of them in interfaces panics).
type funcBulk struct {
	s    *spanCalls
	hook func()
}

func (f funcBulk) Generate(ctx context.Context, req executor.Request) (executor.Asset, error) {
	return f.s.Generate(ctx, req)
}

func (f funcBulk) GenerateBatch(ctx context.Context, reqs []executor.Request) []executor.Outcome {
	return f.s.GenerateBatch(ctx, reqs)
}

// TestBulkCallsOfOtherGeneratorsStayApart: kinds of one key whose
// generators differ (two values, or values that cannot be compared,
// which must not panic) keep calls of their own; equal values share.
func TestBulkCallsOfOtherGeneratorsStayApart(t *testing.T) {
	tm := graph.Template{Kinds: []graph.Kind{
		{Name: "a", PerSegment: true, BatchKey: "seg", Concurrency: 8},
		{Name: "b", PerSegment: true, BatchKey: "seg", Concurrency: 8},
	}}
	tests := []struct {
		name  string
		gens  func(s *spanCalls) (a, b executor.Generator)
		share bool
	}{
		{"two pointers", func(s *spanCalls) (executor.Generator, executor.Generator) {
			return s, &otherBulk{into: s}
		}, false},
		{"equal values", func(s *spanCalls) (executor.Generator, executor.Generator) {
			return valueBulk{s: s}, valueBulk{s: s}
		}, true},
		{"uncomparable values", func(s *spanCalls) (executor.Generator, executor.Generator) {
			return funcBulk{s: s, hook: func() {}}, funcBulk{s: s, hook: func() {}}
		}, false},
		{"one uncomparable value for both", func(s *spanCalls) (executor.Generator, executor.Generator) {
			f := funcBulk{s: s, hook: func() {}}
			return f, f
		}, false},
	}
	for _, mode := range []executor.Mode{executor.Staged, executor.Dataflow} {
		for _, tt := range tests {
			t.Run(mode.String()+"/"+tt.name, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					g, err := graph.Build(tm, 30)
					require.NoError(t, err)
					s := &spanCalls{t: t, took: time.Second}
					a, b := tt.gens(s)
					e, err := executor.New(executor.Options{Generators: executor.Registry{"a": a, "b": b}, Mode: mode})
					require.NoError(t, err)
					defer e.Close(context.Background())
					_, err = e.Run(context.Background(), executor.RunRequest{GraphKey: "map", Graph: g})
					require.NoError(t, err)
					s.mu.Lock()
					defer s.mu.Unlock()
					if tt.share {
						assert.Equal(t, [][]string{{"a:segment[0]", "a:segment[1]", "a:segment[2]", "b:segment[0]", "b:segment[1]", "b:segment[2]"}}, s.calls)
						return
					}
					for _, call := range s.calls {
						assert.Len(t, kindsOf(t, call), 1, "a call spans the kinds of two generators: %v", call)
					}
				})
			})
		}
	}
}

// otherBulk is a second bulk generator, recording into the first's log.
type otherBulk struct{ into *spanCalls }

func (o *otherBulk) Generate(ctx context.Context, req executor.Request) (executor.Asset, error) {
	return o.into.Generate(ctx, req)
}

func (o *otherBulk) GenerateBatch(ctx context.Context, reqs []executor.Request) []executor.Outcome {
	return o.into.GenerateBatch(ctx, reqs)
}

// TestBulkCallSpanningKindsKeepsEachNodesOptions: in a call that spans
// kinds, each node is validated and retried under its own kind's
// options: a node that fails is retried alone, with Generate, under its
// kind's retry policy, and the others are kept; the call's timeout is
// the longest BatchTimeout of its kinds.
func TestBulkCallSpanningKindsKeepsEachNodesOptions(t *testing.T) {
	tm := graph.Template{Kinds: []graph.Kind{
		{Name: "a", PerSegment: true, BatchKey: "seg", Concurrency: 8},
		{Name: "b", PerSegment: true, BatchKey: "seg", Concurrency: 8},
	}}
	for _, mode := range []executor.Mode{executor.Staged, executor.Dataflow} {
		t.Run(mode.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				g, err := graph.Build(tm, 30)
				require.NoError(t, err)
				s := &spanCalls{t: t, took: 3 * time.Minute, fail: map[string]error{
					"a:segment[1]": errors.New("tile server busy"),
					"b:segment[2]": errors.New("tile server busy"),
				}}
				validated := map[string]int{}
				var mu sync.Mutex
				e, err := executor.New(executor.Options{Generators: executor.Registry{"a": s, "b": s}, Mode: mode,
					Kinds: map[string]executor.KindOptions{
						// a's BatchTimeout alone would end the call.
						"a": {BatchTimeout: time.Minute, Retry: executor.RetryPolicy{MaxAttempts: 1}},
						"b": {BatchTimeout: 5 * time.Minute, Validate: func(req executor.Request, _ executor.Asset) error {
							mu.Lock()
							defer mu.Unlock()
							validated[req.NodeID]++
							if req.NodeID == "b:segment[0]" && validated[req.NodeID] == 1 {
								return errors.New("a blank tile")
							}
							return nil
						}},
					}})
				require.NoError(t, err)
				defer e.Close(context.Background())
				rep, err := e.Run(context.Background(), executor.RunRequest{GraphKey: "map", Graph: g})
				// a:segment[1] fails under a's policy of one attempt; b's
				// nodes are retried alone, under b's policy.
				var re *executor.RunError
				require.ErrorAs(t, err, &re)
				var failed []string
				for _, ne := range re.Failed {
					failed = append(failed, ne.Node)
				}
				assert.Equal(t, []string{"a:segment[1]"}, failed)
				assert.ElementsMatch(t, []string{"a:segment[0]", "a:segment[2]", "b:segment[0]", "b:segment[1]", "b:segment[2]"}, rep.Generated)
				s.mu.Lock()
				defer s.mu.Unlock()
				assert.Equal(t, [][]string{{"a:segment[0]", "a:segment[1]", "a:segment[2]", "b:segment[0]", "b:segment[1]", "b:segment[2]"}}, s.calls,
					"one call of both kinds, not timed out at a's BatchTimeout")
				assert.ElementsMatch(t, []string{"b:segment[0]", "b:segment[2]"}, s.singles, "the nodes that failed in the call, retried alone under b's policy")
				mu.Lock()
				defer mu.Unlock()
				assert.Equal(t, map[string]int{"b:segment[0]": 2, "b:segment[1]": 1, "b:segment[2]": 1}, validated, "b's nodes checked by b's Validate, a's by none")
			})
		})
	}
}

// TestBulkCallSpanningKindsWaitsTheLongestWindow: in Dataflow mode, the
// kinds that share a bulk generator wait as one for their call, up to the
// longest BatchWindow among them (b has none), so that the call takes the
// nodes of both kinds as they become ready.
func TestBulkCallSpanningKindsWaitsTheLongestWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tm := graph.Template{Kinds: []graph.Kind{
			{Name: "s", PerSegment: true},
			{Name: "a", PerSegment: true, BatchKey: "seg", Concurrency: 8, Deps: []graph.Dep{{Kind: "s", Scope: graph.ScopeSameSegment}}},
			{Name: "b", PerSegment: true, BatchKey: "seg", Concurrency: 8, Deps: []graph.Dep{{Kind: "s", Scope: graph.ScopeSameSegment}}},
		}}
		g, err := graph.Build(tm, 30)
		require.NoError(t, err)
		s := &spanCalls{t: t, took: time.Second}
		// Each segment's s ends a second after the one before.
		slow := executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
			time.Sleep(time.Duration(req.ID.Segment+1) * time.Second)
			return executor.Asset{Data: []byte(req.NodeID)}, nil
		})
		e, err := executor.New(executor.Options{Generators: executor.Registry{"s": slow, "a": s, "b": s},
			Kinds: map[string]executor.KindOptions{"a": {BatchWindow: 10 * time.Second}}})
		require.NoError(t, err)
		defer e.Close(context.Background())
		_, err = e.Run(context.Background(), executor.RunRequest{GraphKey: "map", Graph: g})
		require.NoError(t, err)
		s.mu.Lock()
		defer s.mu.Unlock()
		assert.Equal(t, [][]string{{"a:segment[0]", "a:segment[1]", "a:segment[2]", "b:segment[0]", "b:segment[1]", "b:segment[2]"}}, s.calls)
	})
}
