package executor_test

import (
	"cmp"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/progress"
)

// etaPoint is one event's ETA, at its time since the run started.
type etaPoint struct {
	At   time.Duration
	Type progress.Type
	Node string
	ETA  time.Duration
}

// etas returns the ETA of each event of the lab's run of the given types,
// in time then node order (nodes that end at the same time settle in any
// order), and the run's makespan (from run.started to its final event).
func (l *lab) etas(types ...progress.Type) ([]etaPoint, time.Duration) {
	l.t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	require.NotEmpty(l.t, l.events)
	start, end := l.events[0].Time, l.events[len(l.events)-1].Time
	var out []etaPoint
	for _, ev := range l.events {
		for _, t := range types {
			if ev.Type == t {
				out = append(out, etaPoint{ev.Time.Sub(start), ev.Type, ev.Node, ev.ETA})
			}
		}
	}
	slices.SortStableFunc(out, func(a, b etaPoint) int {
		return cmp.Or(cmp.Compare(a.At, b.At), strings.Compare(a.Node, b.Node))
	})
	return out, end.Sub(start)
}

// estimates are the lab's latencies, as each kind's KindOptions.Estimate.
func (l *lab) estimates() map[string]executor.KindOptions {
	kinds := map[string]executor.KindOptions{}
	for kind, d := range l.latency {
		kinds[kind] = executor.KindOptions{Estimate: d}
	}
	return kinds
}

// When every node takes its kind's Estimate, the ETA is the time left,
// exactly, at the start and at each node's end, whatever the mode and
// the rates: the bound counts what is left of the nodes under way (not
// their whole duration again), runs the stages one after another in
// Staged mode, and spaces the starts of a key with a rate.
func TestETAIsTheTimeLeftWhenEstimatesHold(t *testing.T) {
	rate := map[string]executor.Rate{graph.KindVideo: {Starts: 1, Per: 10 * time.Second}}
	tests := []struct {
		name     string
		mode     executor.Mode
		rates    map[string]executor.Rate
		makespan time.Duration
	}{
		// Script 20, image 8, video 30, timeline 10.
		{"dataflow", executor.Dataflow, nil, 68 * time.Second},
		// Script 20; music 20 (beside narration and image); video 30;
		// timeline 10.
		{"staged", executor.Staged, nil, 80 * time.Second},
		// The videos start at 28, 38 and 48 s; the last ends at 78.
		{"dataflow with a rate", executor.Dataflow, rate, 88 * time.Second},
		// The videos start at 40, 50 and 60 s; the last ends at 90.
		{"staged with a rate", executor.Staged, rate, 100 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, 30)
				e := l.executor(executor.Options{Mode: tc.mode, Rates: tc.rates, Kinds: l.estimates()})
				_, err := l.run(e)
				require.NoError(t, err)
				got, makespan := l.etas(progress.RunStarted, progress.NodeSucceeded)
				require.Equal(t, tc.makespan, makespan, "the schedule the test expects")
				var want []etaPoint
				for i, p := range got {
					p.ETA = makespan - p.At
					if i == len(got)-1 {
						p.ETA = 0 // the last node: nothing left
					}
					want = append(want, p)
				}
				if diff := gocmp.Diff(want, got); diff != "" {
					t.Errorf("ETAs (-time left +reported):\n%s", diff)
				}
			})
		})
	}
}
