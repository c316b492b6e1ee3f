package executor_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
)

// windowBulk is a bulk video generator that records each call: its
// nodes and when it started. A call takes 30 s, as the lab's videos do.
type windowBulk struct {
	mu    sync.Mutex
	calls [][]string
	at    []time.Duration // since start
	start time.Time
}

func (b *windowBulk) record(ids []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, ids)
	b.at = append(b.at, time.Since(b.start))
}

func (b *windowBulk) Generate(ctx context.Context, req executor.Request) (executor.Asset, error) {
	b.record([]string{req.NodeID})
	if err := pause(ctx, 30*time.Second); err != nil {
		return executor.Asset{}, err
	}
	return executor.Asset{Data: defaultData(req)}, nil
}

func (b *windowBulk) GenerateBatch(ctx context.Context, reqs []executor.Request) []executor.Outcome {
	ids := make([]string, len(reqs))
	for i, r := range reqs {
		ids[i] = r.NodeID
	}
	b.record(ids)
	out := make([]executor.Outcome, len(reqs))
	if err := pause(ctx, 30*time.Second); err != nil {
		for i := range out {
			out[i].Err = err
		}
		return out
	}
	for i, r := range reqs {
		out[i].Asset = executor.Asset{Data: defaultData(r)}
	}
	return out
}

// sizes returns the number of nodes of each call, in call order.
func (b *windowBulk) sizes() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]int, len(b.calls))
	for i, c := range b.calls {
		out[i] = len(c)
	}
	return out
}

// windowLab is the lab's lecture of 60 s with a bulk video generator,
// and images that take 8 s plus a second per segment, so that the
// videos become ready one by one, a second apart (segments 0 to 4 at
// 28 s to 32 s; the image of segment 5 waits for a slot, and its video is
// ready at 41 s), as a provider's latencies spread them. The images of
// the segments in failing fail for good.
func windowLab(t *testing.T, failing ...int) (*lab, *windowBulk, executor.Registry) {
	l := newLab(t, 60)
	for _, seg := range failing {
		l.set(fmt.Sprintf("asset:image:segment[%d]", seg), fail(executor.Permanent(errors.New("refused"))))
	}
	b := &windowBulk{start: time.Now()}
	reg := l.registry(l)
	reg[graph.KindImage] = executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
		if err := pause(ctx, time.Duration(req.ID.Segment)*time.Second); err != nil {
			return executor.Asset{}, err
		}
		return l.Generate(ctx, req)
	})
	reg[graph.KindVideo] = b
	return l, b, reg
}

func windowOptions(reg executor.Registry, mode executor.Mode, window time.Duration) executor.Options {
	return executor.Options{Generators: reg, Mode: mode,
		Kinds: map[string]executor.KindOptions{graph.KindVideo: {BatchWindow: window}}}
}

// In dataflow mode the videos of a lecture become ready one by one as
// their images end, and an idle worker took each at once: the bulk video
// generator got calls of one node each, which defeats a host's batching
// of its provider's calls. With a BatchWindow the first video waits for
// more, up to the window: a call gets every video that is ready within
// it, up to the key's free slots (3). The run ends no later for it: the
// slots were full in either case until the first calls ended.
func TestBatchWindowGathersDataflowBatches(t *testing.T) {
	tests := []struct {
		name     string
		window   time.Duration
		maxBatch int
		sizes    []int
		at       []time.Duration // when each call started
	}{
		// No window: one video a call, as each becomes ready, then one a
		// call as the slots free up.
		{"none", 0, 0, []int{1, 1, 1, 1, 1, 1}, []time.Duration{28, 29, 30, 58, 59, 60}},
		// 5 s: the first three videos are ready within the window of the
		// first (28 s to 33 s): a full call at 30 s, without waiting out
		// the window; the other three when the slots free up at 60 s, at
		// once since no more videos can come.
		{"5s", 5 * time.Second, 0, []int{3, 3}, []time.Duration{30, 60}},
		// 1.5 s: the window of the first video ends at 29.5 s with two
		// ready, which start; the third starts alone as soon as it is
		// ready (30 s), as only one slot is free (the call is full); the
		// fourth and fifth take the two slots free at 59.5 s, and the
		// last, the only one left to come, the slot free at 60 s.
		{"1.5s", 1500 * time.Millisecond, 0, []int{2, 1, 2, 1}, []time.Duration{29500, 30000, 59500, 60000}},
		// An hour, with Options.MaxBatch 2: a call of two is full (29 s);
		// then one slot is left (30 s); then two free up (59 s), and the
		// last video, with nothing more to come, takes the slot free at
		// 60 s.
		{"MaxBatch 2", time.Hour, 2, []int{2, 1, 2, 1}, []time.Duration{29, 30, 59, 60}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l, b, reg := windowLab(t)
				opts := windowOptions(reg, executor.Dataflow, tt.window)
				opts.MaxBatch = tt.maxBatch
				e := l.executor(opts)
				rep, err := l.run(e)
				require.NoError(t, err)
				assert.Len(t, rep.Generated, l.g.Len())
				assert.Equal(t, tt.sizes, b.sizes())
				want := make([]time.Duration, len(tt.at))
				for i, at := range tt.at {
					if at < 1000 {
						at *= 1000
					}
					want[i] = at * time.Millisecond
				}
				assert.Equal(t, want, roundMs(b.at))
				l.requireAllClean()
			})
		})
	}
}

// roundMs rounds durations to the millisecond: the workers' short waits
// for one another (microseconds) do not count.
func roundMs(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}

// A window never holds back a full call, nor one after which no node of
// the kind can come: with a window of an hour the run takes as long as
// without one (the videos end at 90 s, the timeline at 100 s), in both
// modes. Staged mode, where a stage's nodes are ready at once, gets the
// same calls with a window or without.
func TestBatchWindowNeverDelaysFullOrLastCalls(t *testing.T) {
	for _, mode := range []executor.Mode{executor.Dataflow, executor.Staged} {
		t.Run(mode.String(), func(t *testing.T) {
			var took [2]time.Duration
			var sizes [2][]int
			for i, window := range []time.Duration{0, time.Hour} {
				synctest.Test(t, func(t *testing.T) {
					l, b, reg := windowLab(t)
					e := l.executor(windowOptions(reg, mode, window))
					start := time.Now()
					_, err := l.run(e)
					require.NoError(t, err)
					took[i], sizes[i] = time.Since(start).Round(time.Second), b.sizes()
				})
			}
			assert.Equal(t, took[0], took[1], "the run took longer with a window")
			if mode == executor.Staged {
				assert.Equal(t, sizes[0], sizes[1], "staged calls changed with a window")
				assert.Equal(t, []int{3, 3}, sizes[1])
			} else {
				assert.Equal(t, []int{3, 3}, sizes[1])
			}
		})
	}
}

// A window does not wait for videos that will never come: once the
// images of segments 2 to 5 failed (the last at 41 s), their videos are
// skipped, and the two videos ready since 28 s and 29 s start at once,
// not when the window of an hour ends.
func TestBatchWindowIgnoresSkippedNodes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, b, reg := windowLab(t, 2, 3, 4, 5)
		e := l.executor(windowOptions(reg, executor.Dataflow, time.Hour))
		start := time.Now()
		rep, err := l.run(e)
		var re *executor.RunError
		require.ErrorAs(t, err, &re)
		assert.Len(t, rep.Failed, 4)
		assert.Equal(t, [][]string{{"asset:video:segment[0]", "asset:video:segment[1]"}}, b.calls)
		assert.Equal(t, []time.Duration{41 * time.Second}, roundMs(b.at))
		assert.Equal(t, 71*time.Second, time.Since(start).Round(time.Second))
	})
}

// A cancel during a window ends the run at once: the workers waiting for
// the window, and its timer, are freed, and Run returns (synctest and
// goleak check that nothing is left running).
func TestBatchWindowCancelFreesAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, b, reg := windowLab(t)
		e := l.executor(windowOptions(reg, executor.Dataflow, time.Hour))
		ctx, cancel := context.WithTimeout(context.Background(), 29500*time.Millisecond)
		defer cancel()
		start := time.Now()
		rep, err := e.Run(ctx, executor.RunRequest{GraphKey: "lecture", Graph: l.g})
		require.ErrorIs(t, err, executor.ErrCancelled)
		assert.Equal(t, 29500*time.Millisecond, time.Since(start).Round(time.Millisecond))
		assert.Empty(t, b.calls, "a video started during the window")
		assert.Equal(t, executor.RunCancelled, rep.Record.Status)
		for _, id := range rep.Dirty {
			assert.False(t, strings.HasPrefix(id, "script"), id)
		}
	})
}

// A negative BatchWindow is refused, with what is allowed, before the
// run commits anything; 0 is no window.
func TestBatchWindowNegativeRefused(t *testing.T) {
	tests := []struct {
		name string
		opts executor.Options
		want string
	}{
		{"kind", executor.Options{Kinds: map[string]executor.KindOptions{
			graph.KindImage: {BatchWindow: time.Second}, graph.KindVideo: {BatchWindow: -time.Second}}},
			`executor: invalid request: Options.Kinds["asset:video"].BatchWindow -1s: want 0 (no window) or more`},
		{"default", executor.Options{Default: executor.KindOptions{BatchWindow: -time.Millisecond}},
			"executor: invalid request: Options.Default.BatchWindow -1ms: want 0 (no window) or more"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Generators = executor.Registry{graph.KindImage: noop}
			e, err := executor.New(tt.opts)
			require.ErrorIs(t, err, executor.ErrInvalidRequest)
			assert.EqualError(t, err, tt.want)
			assert.Nil(t, e)
		})
	}
}

// A window applies to bulk calls only: a kind whose generator is not a
// BatchGenerator starts each node as it is ready, window or not, and so
// does a kind without a batch key (the script); the run warns of both,
// as a window that applies to nothing.
func TestBatchWindowIgnoredWithoutBulkGenerator(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, b, reg := windowLab(t)
		reg[graph.KindVideo] = executor.GeneratorFunc(b.Generate)
		reg[graph.KindScript] = &bulk{lab: l} // called with Generate: no batch key
		var buf bytes.Buffer
		opts := windowOptions(reg, executor.Dataflow, time.Hour)
		opts.Kinds[graph.KindScript] = executor.KindOptions{BatchWindow: time.Hour}
		opts.Kinds[graph.KindImage] = executor.KindOptions{BatchWindow: time.Hour} // not bulk either
		opts.Logger = slog.New(slog.NewTextHandler(&buf, nil))
		e := l.executor(opts)
		_, err := l.run(e)
		require.NoError(t, err)
		assert.Equal(t, []time.Duration{28 * time.Second, 29 * time.Second, 30 * time.Second,
			58 * time.Second, 59 * time.Second, 60 * time.Second}, roundMs(b.at))
		assert.Contains(t, buf.String(), "Options.Kinds gives a BatchWindow or a BatchTimeout to kinds that no bulk call takes")
		assert.Contains(t, buf.String(), `kinds="[asset:image asset:video script]"`)
	})
}

// A bulk call's requests came in the order its nodes were taken, which
// follows the order they became ready in, and so the providers' latencies
// of the run: the same batch was called in another order from one run to
// the next. They are now in node order. Here the images of the later
// segments end first, so the videos become ready from the last segment
// down.
func TestBulkCallsAreInNodeOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, b, reg := windowLab(t)
		reg[graph.KindImage] = executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
			if err := pause(ctx, time.Duration(5-req.ID.Segment)*time.Second); err != nil {
				return executor.Asset{}, err
			}
			return l.Generate(ctx, req)
		})
		e := l.executor(windowOptions(reg, executor.Dataflow, time.Hour))
		_, err := l.run(e)
		require.NoError(t, err)
		b.mu.Lock()
		defer b.mu.Unlock()
		require.NotEmpty(t, b.calls)
		many := false
		for _, call := range b.calls {
			many = many || len(call) > 1
			assert.True(t, slices.IsSorted(call), "a call's nodes out of order: %v", call)
		}
		assert.True(t, many, "no call of more than one node: %v", b.calls)
	})
}
