package executor_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
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

// outageAssets is an asset store whose Gets of a ref fail, unanswered,
// as many times as fails says (a store that is down for a moment), or
// with ErrNotFound when lost. It hides the optional interfaces of the
// store it wraps, so that each dependency is read with one Get.
type outageAssets struct {
	executor.AssetStore
	mu    sync.Mutex
	fails map[string]int
	lost  string
	// onLast, if set, runs when the last failure of a ref is given.
	onLast func()
}

func (s *outageAssets) Get(ctx context.Context, ref string) (executor.Asset, error) {
	s.mu.Lock()
	fail := s.fails[ref] > 0
	if fail {
		s.fails[ref]--
		if s.fails[ref] == 0 && s.onLast != nil {
			s.onLast()
		}
	}
	lost := ref == s.lost
	s.mu.Unlock()
	switch {
	case fail:
		return executor.Asset{}, errors.New("asset store: connection reset")
	case lost:
		return executor.Asset{}, fmt.Errorf("get asset %q: %w", ref, executor.ErrNotFound)
	}
	return s.AssetStore.Get(ctx, ref)
}

// A node whose read of its inputs failed (each read makes 5 Gets, with
// backoff) failed at once, at attempt 0, whatever its kind's retry
// policy: a host whose policy covers a provider's outage of a few seconds
// lost the node to an asset store's outage of two. A failed read that may
// pass is now a failed attempt of the node, retried under its kind's
// policy, with its node.started (Attempt 1), its node.retrying (the next
// attempt, the read's error) and its attempts counted as any other
// attempt's; a lost input (ErrNotFound) still fails the node at once, at
// attempt 0, with no event before its node.failed.
func TestFailedInputReadIsARetriedAttempt(t *testing.T) {
	const readErr = "read the output of asset:video:segment[0]: asset store: connection reset"
	for _, c := range []struct {
		name     string
		fails    int  // failed Gets of the input
		lost     bool // the input is lost
		events   []string
		attempts int // of the node: the state's, the run's count, RunError's
		calls    int
	}{
		{name: "one read fails", fails: 5, attempts: 2, calls: 1,
			events: []string{"node.started 1", "node.retrying 2 " + readErr, "node.succeeded 2"}},
		{name: "two reads fail", fails: 10, attempts: 3, calls: 1,
			events: []string{"node.started 1", "node.retrying 2 " + readErr, "node.retrying 3 " + readErr, "node.succeeded 3"}},
		{name: "every read fails", fails: 1000, attempts: 3,
			events: []string{"node.started 1", "node.retrying 2 " + readErr, "node.retrying 3 " + readErr, "node.failed 3 " + readErr}},
		{name: "the input is lost", lost: true,
			events: []string{"node.failed 0 read the output of asset:video:segment[0]: get asset"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, 30)
				assets := &outageAssets{AssetStore: l.assets, fails: map[string]int{}}
				e, err := executor.New(executor.Options{Generators: l.registry(l), States: l.states, Assets: assets,
					Runs: l.runs, Sink: l, Logger: slog.New(slog.DiscardHandler),
					Default: executor.KindOptions{Retry: executor.RetryPolicy{MaxAttempts: 3, InitialInterval: time.Second}}})
				require.NoError(t, err)
				t.Cleanup(func() { require.NoError(t, e.Close(context.Background())) })
				_, err = l.run(e)
				require.NoError(t, err)
				ref := l.snapshot().States["asset:video:segment[0]"].AssetRef
				assets.mu.Lock()
				assets.fails[ref] = c.fails
				if c.lost {
					assets.lost = ref
				}
				assets.mu.Unlock()
				l.resetCalls()

				rep, err := l.run(e, dirty.Mark{ID: "timeline", Reason: dirty.ReasonForced})
				var got []string
				l.mu.Lock()
				for _, ev := range l.events {
					if ev.Node == "timeline" {
						got = append(got, strings.TrimSpace(fmt.Sprintf("%s %d %s", ev.Type, ev.Attempt, ev.Error)))
					}
				}
				calls := l.calls["timeline"]
				l.mu.Unlock()
				for i := range got {
					if i < len(c.events) && strings.HasPrefix(got[i], c.events[i]) {
						got[i] = c.events[i] // an error's text beyond what the case says
					}
				}
				if d := cmp.Diff(c.events, got); d != "" {
					t.Errorf("the timeline's events (-want +got):\n%s", d)
				}
				assert.Equal(t, c.calls, calls, "generator calls")
				assert.Equal(t, c.attempts, rep.Record.Counts.Attempts, "the run's attempts")
				st := l.snapshot().States["timeline"]
				if c.calls == 0 {
					var re *executor.RunError
					require.ErrorAs(t, err, &re)
					require.Len(t, re.Failed, 1)
					assert.Equal(t, "timeline", re.Failed[0].Node)
					assert.Equal(t, c.attempts, re.Failed[0].Attempt)
					assert.Equal(t, c.lost, errors.Is(err, executor.ErrNotFound))
					assert.Equal(t, dirty.StatusFailed, st.Status)
				} else {
					require.NoError(t, err)
					assert.Equal(t, dirty.StatusClean, st.Status)
				}
				assert.Equal(t, c.attempts, st.Attempts, "the state's attempts")
			})
		})
	}
}

// A node of a bulk call whose inputs could not be read is not in the
// call: a failed read that may pass is its failed first attempt, and it
// is retried alone, with Generate, as the call's failed nodes are.
func TestFailedInputReadOfABulkCallsNodeIsRetriedAlone(t *testing.T) {
	const first, second = "asset:image:segment[0]", "asset:image:segment[1]"
	for _, c := range []struct {
		name   string
		forced []string
		bulk   [][]string // the bulk calls
		events map[string][]string
	}{
		{"one of two", []string{first, second}, [][]string{{second}}, map[string][]string{
			first:  {"node.started 1", "node.retrying 2", "node.succeeded 2"},
			second: {"node.started 1", "node.succeeded 1"},
		}},
		{"the only one", []string{first}, nil, map[string][]string{
			first: {"node.started 1", "node.retrying 2", "node.succeeded 2"},
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, 30)
				assets := &outageAssets{AssetStore: l.assets, fails: map[string]int{}}
				var mu sync.Mutex
				var bulk [][]string
				b := &batchFunc{lab: l, fn: func(ctx context.Context, reqs []executor.Request) []executor.Outcome {
					var ids []string
					for _, r := range reqs {
						ids = append(ids, r.NodeID)
					}
					mu.Lock()
					bulk = append(bulk, ids)
					mu.Unlock()
					return okOutcomes(reqs)
				}}
				reg := l.registry(l)
				reg[graph.KindImage] = b
				e, err := executor.New(executor.Options{Generators: reg, States: l.states, Assets: assets,
					Runs: l.runs, Sink: l, Logger: slog.New(slog.DiscardHandler),
					Default: executor.KindOptions{Retry: executor.RetryPolicy{MaxAttempts: 3, InitialInterval: time.Second}}})
				require.NoError(t, err)
				t.Cleanup(func() { require.NoError(t, e.Close(context.Background())) })
				_, err = l.run(e)
				require.NoError(t, err)
				mu.Lock()
				bulk = nil
				mu.Unlock()
				assets.mu.Lock()
				assets.fails[l.snapshot().States["script"].AssetRef] = 5 // the first image's first read
				assets.mu.Unlock()
				l.resetCalls()

				var marks []dirty.Mark
				for _, id := range c.forced {
					marks = append(marks, dirty.Mark{ID: id, Reason: dirty.ReasonForced})
				}
				rep, err := l.run(e, marks...)
				require.NoError(t, err)
				assert.Equal(t, c.forced, rep.Generated)
				got := map[string][]string{}
				attempts := 0
				l.mu.Lock()
				for _, ev := range l.events {
					if ev.Type == progress.NodeStarted || ev.Type == progress.NodeRetrying || ev.Type == progress.NodeSucceeded {
						got[ev.Node] = append(got[ev.Node], fmt.Sprint(ev.Type, " ", ev.Attempt))
					}
					if ev.Type == progress.NodeRetrying {
						assert.Equal(t, "read the output of script: asset store: connection reset", ev.Error)
					}
					if ev.Type == progress.NodeSucceeded {
						attempts += ev.Attempt
					}
				}
				l.mu.Unlock()
				if d := cmp.Diff(c.events, got); d != "" {
					t.Errorf("events (-want +got):\n%s", d)
				}
				assert.Equal(t, []string{first}, l.calledIDs(), "called alone, with Generate")
				mu.Lock()
				defer mu.Unlock()
				assert.Equal(t, c.bulk, bulk, "bulk calls")
				assert.Equal(t, attempts, rep.Record.Counts.Attempts)
				assert.Equal(t, 2, l.snapshot().States[first].Attempts)
			})
		})
	}
}

// A cancel while a node reads its inputs keeps it from starting, as
// before; one in the backoff after its first read failed cancels it, as
// it started then: the events, the Report and the attempts agree.
func TestCancelAfterAFailedInputRead(t *testing.T) {
	for _, c := range []struct {
		name      string
		inRead    bool // the cancel comes with the read's last failed Get
		events    []string
		cancelled []string
		attempts  int
	}{
		{name: "in the read", inRead: true},
		{name: "in the backoff", events: []string{"node.started 1", "node.retrying 2", "node.cancelled 1"},
			cancelled: []string{"timeline"}, attempts: 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, 30)
				assets := &outageAssets{AssetStore: l.assets, fails: map[string]int{}}
				e, err := executor.New(executor.Options{Generators: l.registry(l), States: l.states, Assets: assets,
					Runs: l.runs, Sink: l, Logger: slog.New(slog.DiscardHandler),
					Default: executor.KindOptions{Retry: executor.RetryPolicy{MaxAttempts: 3, InitialInterval: 10 * time.Second}}})
				require.NoError(t, err)
				t.Cleanup(func() { require.NoError(t, e.Close(context.Background())) })
				_, err = l.run(e)
				require.NoError(t, err)
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				assets.mu.Lock()
				assets.fails[l.snapshot().States["asset:video:segment[0]"].AssetRef] = 5
				if c.inRead {
					assets.onLast = cancel
				}
				assets.mu.Unlock()
				if !c.inRead {
					time.AfterFunc(5*time.Second, cancel) // the read fails within 1.5 s
				}
				l.resetCalls()

				rep, err := e.Run(ctx, executor.RunRequest{GraphKey: "lecture", Graph: l.g,
					Marks: []dirty.Mark{{ID: "timeline", Reason: dirty.ReasonForced}}})
				require.ErrorIs(t, err, executor.ErrCancelled)
				var got []string
				l.mu.Lock()
				for _, ev := range l.events {
					if ev.Node == "timeline" {
						got = append(got, fmt.Sprint(ev.Type, " ", ev.Attempt))
					}
				}
				l.mu.Unlock()
				assert.Equal(t, c.events, got)
				assert.Equal(t, append([]string{}, c.cancelled...), rep.Cancelled)
				assert.Empty(t, rep.Failed)
				assert.Equal(t, c.attempts, rep.Record.Counts.Attempts)
				assert.Empty(t, l.calledIDs())
			})
		})
	}
}
