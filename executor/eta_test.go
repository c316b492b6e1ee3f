package executor_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
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
// Staged mode, and spaces the starts of a key with a rate. A retry is
// not foreseen: until it happens the ETA is less than the time left, and
// from then on the retry's wait and attempt count.
func TestETAIsTheTimeLeftWhenEstimatesHold(t *testing.T) {
	rate := map[string]executor.Rate{graph.KindVideo: {Starts: 1, Per: 10 * time.Second}}
	tests := []struct {
		name     string
		mode     executor.Mode
		rates    map[string]executor.Rate
		retry    bool          // video 0's first attempt fails at once, then waits 5 s
		from     time.Duration // exact from then on; before, at most the time left
		makespan time.Duration
	}{
		// Script 20, image 8, video 30, timeline 10.
		{"dataflow", executor.Dataflow, nil, false, 0, 68 * time.Second},
		// Script 20; music 20 (beside narration and image); video 30;
		// timeline 10.
		{"staged", executor.Staged, nil, false, 0, 80 * time.Second},
		// The videos start at 28, 38 and 48 s; the last ends at 78.
		{"dataflow with a rate", executor.Dataflow, rate, false, 0, 88 * time.Second},
		// The videos start at 40, 50 and 60 s; the last ends at 90.
		{"staged with a rate", executor.Staged, rate, false, 0, 100 * time.Second},
		// Video 0 fails at 28 s, tries again at 33 s and ends at 63 s.
		{"dataflow with a retry", executor.Dataflow, nil, true, 29 * time.Second, 73 * time.Second},
		// Video 0 fails at 40 s, tries again at 45 s and ends at 75 s.
		{"staged with a retry", executor.Staged, nil, true, 41 * time.Second, 85 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, 30)
				opts := executor.Options{Mode: tc.mode, Rates: tc.rates, Kinds: l.estimates()}
				if tc.retry {
					var failed atomic.Bool
					opts.Generators = l.registry(executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
						if req.NodeID == "asset:video:segment[0]" && failed.CompareAndSwap(false, true) {
							return executor.Asset{}, errors.New("provider: 503")
						}
						return l.Generate(ctx, req)
					}))
					for kind, ko := range opts.Kinds {
						ko.Retry = executor.RetryPolicy{InitialInterval: 5 * time.Second}
						opts.Kinds[kind] = ko
					}
				}
				e := l.executor(opts)
				_, err := l.run(e)
				require.NoError(t, err)
				got, makespan := l.etas(progress.RunStarted, progress.NodeSucceeded)
				require.Equal(t, tc.makespan, makespan, "the schedule the test expects")
				var want []etaPoint
				for i, p := range got {
					left := makespan - p.At
					if i == len(got)-1 {
						left = 0 // the last node: nothing left
					}
					if p.At < tc.from {
						assert.LessOrEqual(t, p.ETA, left, "at %v, before the retry: %s", p.At, p.Node)
						continue
					}
					p.ETA = left
					want = append(want, p)
				}
				got = slices.DeleteFunc(got, func(p etaPoint) bool { return p.At < tc.from })
				if diff := gocmp.Diff(want, got); diff != "" {
					t.Errorf("ETAs (-time left +reported):\n%s", diff)
				}
			})
		})
	}
}

// Without estimates, the ETA is unknown (0) until a node has ended; from
// then on every event before the last node's end carries one, and a kind
// not seen yet costs the mean of the kinds seen: the ETA never leaves out
// the work still to come.
func TestETAWithoutEstimatesCountsUnseenKinds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		e := l.executor(executor.Options{})
		_, err := l.run(e)
		require.NoError(t, err)
		got, _ := l.etas(progress.RunStarted, progress.NodeSucceeded)
		s := time.Second
		ms := time.Millisecond
		seg := func(kind string, i int) string { return graph.ID{Kind: kind, Segment: i}.String() }
		want := []etaPoint{
			{0, progress.RunStarted, "", 0}, // nothing known yet
			// Script 20 s: every other kind too. Narration or image 20,
			// video 20, timeline 20.
			{20 * s, progress.NodeSucceeded, "script", 60 * s},
			// Narration 3 s: the others cost (20+3)/2 = 11.5 s. Image
			// 11.5-3, video 11.5, timeline 11.5. The next narrations'
			// ends, at the same time, count down from it.
			{23 * s, progress.NodeSucceeded, seg(graph.KindNarration, 0), 31500 * ms},
			{23 * s, progress.NodeSucceeded, seg(graph.KindNarration, 1), 31500 * ms},
			{23 * s, progress.NodeSucceeded, seg(graph.KindNarration, 2), 31500 * ms},
			// Image 8 s: the others (20+3+8)/3 = 10.333 s. Video 10.333,
			// timeline 10.333.
			{28 * s, progress.NodeSucceeded, seg(graph.KindImage, 0), 20666666666},
			{28 * s, progress.NodeSucceeded, seg(graph.KindImage, 1), 20666666666},
			{28 * s, progress.NodeSucceeded, seg(graph.KindImage, 2), 20666666666},
			// Music 20 s: the others (20+3+8+20)/4 = 12.75 s. Videos 12
			// s in, so 0.75 s left, then the timeline's 12.75.
			{40 * s, progress.NodeSucceeded, "asset:music", 13500 * ms},
			// Video 30 s: the timeline (20+3+8+30+20)/5 = 16.2 s.
			{58 * s, progress.NodeSucceeded, seg(graph.KindVideo, 0), 16200 * ms},
			{58 * s, progress.NodeSucceeded, seg(graph.KindVideo, 1), 16200 * ms},
			{58 * s, progress.NodeSucceeded, seg(graph.KindVideo, 2), 16200 * ms},
			{68 * s, progress.NodeSucceeded, "timeline", 0},
		}
		if diff := gocmp.Diff(want, got); diff != "" {
			t.Errorf("ETAs (-want +got):\n%s", diff)
		}
	})
}

// A kind's first duration is news that the once-a-second limit on
// recomputing the bound does not hold back: the ETA does not count down
// from a bound that left the kind out.
func TestETARecomputedWhenAKindIsFirstSeen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		l.latency[graph.KindNarration] = 500 * time.Millisecond
		e := l.executor(executor.Options{})
		_, err := l.run(e)
		require.NoError(t, err)
		got, _ := l.etas(progress.NodeSucceeded)
		require.Greater(t, len(got), 2)
		// Script 20 s, so 60 s; half a second later, narration 0.5 s: the
		// others (20+0.5)/2 = 10.25 s, the images 0.5 s in, so image
		// 9.75, video 10.25, timeline 10.25. Counted down from the
		// script's bound, it would read 59.5 s.
		want := []etaPoint{
			{20 * time.Second, progress.NodeSucceeded, "script", 60 * time.Second},
			{20500 * time.Millisecond, progress.NodeSucceeded, "asset:narration:segment[0]", 30250 * time.Millisecond},
		}
		if diff := gocmp.Diff(want, got[:2]); diff != "" {
			t.Errorf("ETAs (-want +got):\n%s", diff)
		}
	})
}

// Whatever happens in a run, its events carry an ETA that a progress bar
// can show: never negative, never 0 (unknown) once a node has been
// generated while nodes are left, 0 on the final event; with estimates,
// known from the first event on.
func TestETAInvariants(t *testing.T) {
	slow := func(l *lab, e **executor.Executor) executor.Generator { // one video takes 10 times longer
		return executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
			if req.NodeID == "asset:video:segment[1]" {
				if err := pause(ctx, 270*time.Second); err != nil {
					return executor.Asset{}, err
				}
			}
			return l.Generate(ctx, req)
		})
	}
	retry := func(l *lab, e **executor.Executor) executor.Generator { // a video fails twice, then waits its backoff
		calls := 0
		return executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
			if req.NodeID == "asset:video:segment[0]" {
				l.mu.Lock()
				calls++
				n := calls
				l.mu.Unlock()
				if n < 3 {
					return executor.Asset{}, fmt.Errorf("provider: 503")
				}
			}
			return l.Generate(ctx, req)
		})
	}
	edit := func(l *lab, e **executor.Executor) executor.Generator { // a second round
		return l.onceAt("asset:video:segment[0]", func() {
			_, err := (*e).Edit(context.Background(), l.g, "lecture", "asset:music")
			assert.NoError(l.t, err)
		})
	}
	notes := func(l *lab, e **executor.Executor) executor.Generator { // notes while the videos run
		return executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
			if req.ID.Kind == graph.KindVideo {
				for range 5 {
					if err := pause(ctx, 10*time.Second); err != nil {
						return executor.Asset{}, err
					}
					req.Progress.Report(executor.Note{Message: "rendering"})
				}
			}
			return l.Generate(ctx, req)
		})
	}
	tests := []struct {
		name string
		gen  func(*lab, **executor.Executor) executor.Generator
		opts executor.Options
	}{
		{"slow node", slow, executor.Options{}},
		{"slow node, staged", slow, executor.Options{Mode: executor.Staged}},
		{"retries and backoff", retry, executor.Options{Default: executor.KindOptions{
			Retry: executor.RetryPolicy{InitialInterval: 20 * time.Second}}}},
		{"converge", edit, executor.Options{Converge: 1}},
		{"rate", nil, executor.Options{Rates: map[string]executor.Rate{graph.KindImage: {Starts: 1, Per: time.Minute}}}},
		{"workers", nil, executor.Options{Workers: 2}},
		{"notes outlast the estimate", notes, executor.Options{}},
	}
	for _, tc := range tests {
		for _, estimated := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s, estimates %v", tc.name, estimated), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					l := newLab(t, 30)
					opts := tc.opts
					if estimated {
						opts.Kinds = l.estimates()
						for kind, ko := range opts.Kinds {
							ko.Retry = opts.Default.Retry
							opts.Kinds[kind] = ko
						}
					}
					var e *executor.Executor
					if tc.gen != nil {
						opts.Generators = l.registry(tc.gen(l, &e))
					}
					e = l.executor(opts)
					_, err := l.run(e)
					require.NoError(t, err)
					l.mu.Lock()
					defer l.mu.Unlock()
					generated := false
					for _, ev := range l.events {
						switch {
						case ev.Type.Final():
							assert.Zero(t, ev.ETA, "%d %s: the final event", ev.Seq, ev.Type)
						case ev.Done < ev.Total && (generated || estimated):
							assert.GreaterOrEqual(t, ev.ETA, time.Second, "%d %s %s at %d of %d: an ETA while work is left",
								ev.Seq, ev.Type, ev.Node, ev.Done, ev.Total)
						default:
							assert.GreaterOrEqual(t, ev.ETA, time.Duration(0), "%d %s %s", ev.Seq, ev.Type, ev.Node)
						}
						generated = generated || ev.Type == progress.NodeSucceeded
					}
				})
			})
		}
	}
}

// A Converge round starts with its own plan's bound, from the durations
// seen in the rounds before, and from then on the ETA is the time left
// again when nodes take their estimates.
func TestETAOfAConvergeRound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		var e *executor.Executor
		var edited sync.WaitGroup
		gen := l.onceAt("asset:video:segment[0]", func() {
			// Beside the video's call, not in it: an edit that loses a
			// commit race to the run's image results pauses (up to 1 ms,
			// at random), which must not delay the video's end.
			edited.Go(func() {
				_, err := e.Edit(context.Background(), l.g, "lecture", "asset:music")
				assert.NoError(t, err)
			})
		})
		defer edited.Wait()
		e = l.executor(executor.Options{Generators: l.registry(gen), Converge: 1, Kinds: l.estimates()})
		rep, err := l.run(e)
		require.NoError(t, err)
		require.Equal(t, 2, rep.Rounds)
		got, makespan := l.etas(progress.Message, progress.NodeSucceeded)
		// The music, edited at 28 s as it ran, is superseded at 40 s and
		// the timeline skipped; round 2 starts once the videos end, at
		// 58 s, and makes them again: 20 + 10 s.
		require.Equal(t, 88*time.Second, makespan)
		got = slices.DeleteFunc(got, func(p etaPoint) bool {
			return p.At < 58*time.Second || p.Node == "asset:video:segment[0]" ||
				p.Node == "asset:video:segment[1]" || p.Node == "asset:video:segment[2]"
		})
		want := []etaPoint{
			{58 * time.Second, progress.Message, "", 30 * time.Second},
			{78 * time.Second, progress.NodeSucceeded, "asset:music", 10 * time.Second},
			{88 * time.Second, progress.NodeSucceeded, "timeline", 0},
		}
		if diff := gocmp.Diff(want, got); diff != "" {
			t.Errorf("ETAs of round 2 (-want +got):\n%s", diff)
		}
	})
}

// A batch key's limit on calls in flight (Options.Limits) below its
// concurrency bounds its throughput: the ETA counts the key's work at
// the limit, and stays within the time left.
func TestETACountsLimits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		e := l.executor(executor.Options{Limits: map[string]int{graph.KindVideo: 1}, Kinds: l.estimates()})
		_, err := l.run(e)
		require.NoError(t, err)
		got, makespan := l.etas(progress.RunStarted, progress.NodeSucceeded)
		// One video at a time, from 28 s: they end at 58, 88 and 118 s.
		require.Equal(t, 128*time.Second, makespan)
		// Three videos of 30 s one at a time: 90 s, over the path's 68.
		assert.Equal(t, etaPoint{0, progress.RunStarted, "", 90 * time.Second}, got[0])
		for _, p := range got {
			assert.LessOrEqual(t, p.ETA, makespan-p.At, "at %v: %s", p.At, p.Node)
			if p.Node != "timeline" {
				assert.Positive(t, p.ETA, "at %v: %s", p.At, p.Node)
			}
		}
	})
}

// A run whose nodes are quick does not compute the bound once the work
// left is under a second (the ETA is then a second), unless a node waits
// for its retry: its backoff counts in the ETA however quick the rest.
func TestETACountsABackoffWhenTheRestIsQuick(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		for kind := range l.latency {
			l.latency[kind] = 10 * time.Millisecond
		}
		var failed atomic.Bool
		gen := executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
			if req.NodeID == "asset:video:segment[0]" && failed.CompareAndSwap(false, true) {
				return executor.Asset{}, errors.New("provider: 503")
			}
			return l.Generate(ctx, req)
		})
		e := l.executor(executor.Options{Generators: l.registry(gen),
			Default: executor.KindOptions{Retry: executor.RetryPolicy{InitialInterval: 30 * time.Second}}})
		_, err := l.run(e)
		require.NoError(t, err)
		got, makespan := l.etas(progress.NodeSucceeded)
		// Video 0 fails at 20 ms and tries again at 30.02 s; the other
		// videos end at 30 ms, within its backoff: 29.99 s of it left,
		// then its 10 ms and the timeline's.
		require.Equal(t, 30040*time.Millisecond, makespan)
		ms := time.Millisecond
		want := []etaPoint{
			{30 * ms, progress.NodeSucceeded, "asset:video:segment[1]", 30010 * ms},
			{30 * ms, progress.NodeSucceeded, "asset:video:segment[2]", 30010 * ms},
		}
		got = slices.DeleteFunc(got, func(p etaPoint) bool { return p.At != 30*ms })
		if diff := gocmp.Diff(want, got); diff != "" {
			t.Errorf("ETAs during the backoff (-want +got):\n%s", diff)
		}
	})
}
