package executor

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/graph"
)

// TestWokenBackToZeroAfterEachRun: once a run is over every worker is
// back, so run.woken must be 0. A worker woken by a Broadcast (a rate's
// wake timer, a worker leaving at the end of the round) could take the
// count of a worker that spawn started and that had not taken mu yet;
// that one then took the count below 0, and the drift carried into the
// next round.
func TestWokenBackToZeroAfterEachRun(t *testing.T) {
	g, err := graph.Build(graph.Lecture(), 30)
	require.NoError(t, err)
	var runs sync.Map // run ID -> *run
	gen := GeneratorFunc(func(ctx context.Context, req Request) (Asset, error) {
		if rep, ok := req.Progress.(*reporter); ok {
			runs.Store(req.RunID, rep.run)
		}
		a := Asset{Data: []byte(req.NodeID)}
		if req.ID.Kind == graph.KindNarration {
			a.Length = 10 * time.Second
		}
		return a, nil
	})
	reg := Registry{}
	for i := range g.Kinds() {
		reg[g.KindName(i)] = gen
	}
	e, err := New(Options{Generators: reg, Limits: map[string]int{graph.KindImage: 3},
		Rates: map[string]Rate{graph.KindNarration: {Starts: 1, Per: 50 * time.Microsecond}}})
	require.NoError(t, err)
	defer e.Close(context.Background())
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 300 {
				id := "run-" + strconv.Itoa(w) + "-" + strconv.Itoa(i)
				if _, err := e.Run(context.Background(), RunRequest{RunID: id, GraphKey: id, Graph: g}); err != nil {
					t.Error(err)
					return
				}
				v, ok := runs.LoadAndDelete(id)
				if !ok {
					continue
				}
				r := v.(*run)
				r.mu.Lock()
				woken := r.woken
				r.mu.Unlock()
				if woken != 0 {
					t.Errorf("%s: woken = %d once the run is over, want 0", id, woken)
					return
				}
			}
		})
	}
	wg.Wait()
}
