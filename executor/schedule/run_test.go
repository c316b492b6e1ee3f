package schedule_test

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor/schedule"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/planner"
)

// TestLectureRuns drives whole lectures with the simulated clock and
// seeded completion orders; the simulator checks every invariant at each
// step (see sim).
func TestLectureRuns(t *testing.T) {
	type failure struct {
		fails, supersedes []string
	}
	failures := []failure{
		{},
		{fails: []string{"asset:image:segment[5]", "asset:narration:segment[7]"}},
		{fails: []string{"asset:video:segment[0]"}, supersedes: []string{"asset:image:segment[9]"}},
		{fails: []string{"script"}},
		{fails: []string{"asset:music", "asset:narration:segment[3]", "asset:image:segment[3]"}},
	}
	for _, segs := range []int{1, 12, 360} {
		for _, workers := range []int{0, 1, 4, 7} {
			for _, mode := range []schedule.Mode{schedule.Dataflow, schedule.Staged} {
				for fi, f := range failures {
					if segs == 360 && (workers == 1 || fi > 1) {
						continue // keep the race run short
					}
					name := fmt.Sprintf("segments=%d/workers=%d/%s/failures=%d", segs, workers, mode, fi)
					t.Run(name, func(t *testing.T) {
						g := build(t, graph.Lecture(), segs*graph.SegmentSeconds)
						s := newSim(t, planOf(t, g), schedule.Config{Mode: mode, Workers: workers}, uint64(segs*100+workers))
						for _, id := range f.fails {
							if n, err := g.Lookup(id); err == nil {
								s.fails[n] = true
							}
						}
						for _, id := range f.supersedes {
							if n, err := g.Lookup(id); err == nil {
								s.supersedes[n] = true
							}
						}
						s.run()
						if fi == 0 && segs >= 12 && workers == 0 {
							// Nothing failed and no cap: every key reached its
							// concurrency.
							for _, key := range []string{graph.KindNarration, graph.KindImage, graph.KindVideo} {
								assert.Equal(t, s.limit[key], s.maxKey[key], "peak running of %s", key)
							}
						}
						if workers > 0 && segs >= 12 && len(f.fails) == 0 {
							assert.Equal(t, workers, s.maxAll, "peak running under the global cap")
						}
					})
				}
			}
		}
	}
}

// TestModesAgree checks that staged and dataflow runs end the same way:
// the same nodes succeed, fail, are superseded and are skipped.
func TestModesAgree(t *testing.T) {
	g := build(t, graph.Lecture(), 600)
	plans := map[string]*planner.Plan{
		"fresh": planOf(t, g),
		"edits": planOf(t, g, "asset:image:segment[4]", "asset:narration:segment[40]", "asset:music"),
	}
	for _, name := range []string{"fresh", "edits"} {
		for seed := range uint64(4) {
			t.Run(fmt.Sprintf("%s/seed=%d", name, seed), func(t *testing.T) {
				var finals [2][]string
				for i, mode := range []schedule.Mode{schedule.Dataflow, schedule.Staged} {
					s := newSim(t, plans[name], schedule.Config{Mode: mode, Workers: int(seed) * 3}, seed)
					for j, n := range plans[name].Nodes() {
						switch (j + int(seed)) % 17 {
						case 3:
							s.fails[n] = true
						case 11:
							s.supersedes[n] = true
						}
					}
					s.run()
					finals[i] = s.finalStates()
				}
				if diff := cmp.Diff(finals[0], finals[1]); diff != "" {
					t.Errorf("final states (-dataflow +staged):\n%s", diff)
				}
			})
		}
	}
}

// TestDeterminism runs the same calls twice and compares the transcripts
// of every step byte for byte.
func TestDeterminism(t *testing.T) {
	g := build(t, graph.Lecture(), 1200)
	p := planOf(t, g)
	for _, mode := range []schedule.Mode{schedule.Dataflow, schedule.Staged} {
		for _, bulk := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/bulk=%v", mode, bulk), func(t *testing.T) {
				runOnce := func(seed uint64) string {
					cfg := schedule.Config{Mode: mode, Workers: 9, Rates: map[string]schedule.Rate{
						graph.KindImage: {Starts: 3, Per: 4e9}, graph.KindVideo: {Starts: 2, Per: 5e9}}}
					s := newSim(t, p, cfg, seed)
					s.bulk = bulk
					for _, id := range []string{"asset:image:segment[17]", "asset:narration:segment[80]"} {
						s.fails[node(t, g, id)] = true
					}
					return transcript(s.run())
				}
				a, b := runOnce(42), runOnce(42)
				require.Equal(t, a, b, "the same calls gave different steps")
				assert.NotEqual(t, a, runOnce(43), "another completion order gave the same steps: the test does not vary them")
			})
		}
	}
}
