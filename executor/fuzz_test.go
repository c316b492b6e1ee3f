package executor_test

import (
	"context"
	"errors"
	"math"
	"testing"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
)

// FuzzPlanAndEdit feeds what a host takes from an HTTP request (a
// duration, a graph key, a node ID to edit or force and a reason) to
// graph.Build, Executor.Plan and Executor.Edit: each either works or
// fails with a typed error a host can branch on, never panics, and a
// refused edit commits nothing.
func FuzzPlanAndEdit(f *testing.F) {
	for _, s := range []struct {
		seconds int
		key, id string
		reason  uint8
	}{
		{120, "lecture-1", "asset:narration:segment[3]", uint8(dirty.ReasonEdited)},
		{30, "t/1", "script", uint8(dirty.ReasonForced)},
		{30, "k", "asset:image:segment[3]", uint8(dirty.ReasonEdited)},
		{125, "k", "timeline", 1},
		{math.MaxInt, "k", "timeline", 1},
		{-10, "", "", 0},
		{10, "k\x00", "script", 2},
		{10, "k\xff", "script", 2},
		{10, "k", "script:segment[0]", 9},
		{10, "k", "asset:video:segment[999999999]", 4},
		{10, "k", "asset:video:segment[0]\n", 200},
	} {
		f.Add(s.seconds, s.key, s.id, s.reason)
	}
	g0, err := graph.Build(graph.Lecture(), 10)
	if err != nil {
		f.Fatal(err)
	}
	gen := executor.GeneratorFunc(func(context.Context, executor.Request) (executor.Asset, error) {
		return executor.Asset{}, errors.New("not called")
	})
	reg := executor.Registry{}
	for i := range g0.Kinds() {
		reg[g0.KindName(i)] = gen
	}
	f.Fuzz(func(t *testing.T, seconds int, key, id string, reason uint8) {
		g, err := graph.Build(graph.Lecture(), seconds)
		if err != nil {
			if !errors.Is(err, graph.ErrInvalidDuration) {
				t.Fatalf("Build(%d) = %v: want ErrInvalidDuration", seconds, err)
			}
			return
		}
		store := executor.NewMemoryStore()
		e, err := executor.New(executor.Options{Generators: reg, States: store, Assets: store, Runs: store})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		plan, set, err := e.Plan(ctx, executor.RunRequest{GraphKey: key, Graph: g,
			Marks: []dirty.Mark{{ID: id, Reason: dirty.Reason(reason)}}})
		switch {
		case err == nil:
			if plan == nil || set == nil || plan.Len() == 0 {
				t.Fatalf("Plan(%q, %q, %d): no plan and no error", key, id, reason)
			}
		case errors.Is(err, executor.ErrInvalidRequest):
		default:
			t.Fatalf("Plan(%q, %q, %d) = %v: want ErrInvalidRequest (wrapping dirty.ErrInvalidMark for a bad mark)", key, id, reason, err)
		}
		v, err := e.Edit(ctx, g, key, id)
		if err == nil {
			if v != 1 {
				t.Fatalf("Edit(%q, %q) = version %d: want 1", key, id, v)
			}
			return
		}
		if !errors.Is(err, executor.ErrInvalidRequest) {
			t.Fatalf("Edit(%q, %q) = %v: want ErrInvalidRequest (wrapping graph.ErrMalformedID or graph.ErrUnknownNode for a bad ID)", key, id, err)
		}
		if key != "" {
			snap, err := store.Load(ctx, key)
			if err != nil || snap.Version != 0 || len(snap.States) != 0 {
				t.Fatalf("a refused Edit(%q, %q) left version %d, %d states (%v)", key, id, snap.Version, len(snap.States), err)
			}
		}
	})
}
