package fake_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/internal/fake"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// request builds the request of one node, as the executor would.
func request(id string, rev int64, attempt int, depHashes ...string) executor.Request {
	pid, err := graph.ParseID(id)
	if err != nil {
		panic(err)
	}
	req := executor.Request{ID: pid, NodeID: id, Rev: rev, Attempt: attempt}
	for _, h := range depHashes {
		req.Deps = append(req.Deps, executor.Dep{Asset: executor.Asset{Hash: h}})
	}
	return req
}

func segmentID(kind string, i int) string {
	return graph.ID{Kind: kind, Segment: i}.String()
}

func TestLatencyIsAPureFunction(t *testing.T) {
	opts := fake.Options{Seed: 7, Latency: fake.LectureMedians(), Sigma: 1}
	a, b := fake.New(opts), fake.New(opts)
	other := fake.New(fake.Options{Seed: 8, Latency: fake.LectureMedians(), Sigma: 1})
	id := segmentID(graph.KindVideo, 3)
	base := a.Latency(id, 0, 1)
	tests := []struct {
		name string
		got  time.Duration
		same bool
	}{
		{"same fake, same call", a.Latency(id, 0, 1), true},
		{"another fake, same options", b.Latency(id, 0, 1), true},
		{"another seed", other.Latency(id, 0, 1), false},
		{"another revision", a.Latency(id, 1, 1), false},
		{"another attempt", a.Latency(id, 0, 2), false},
		{"another node", a.Latency(segmentID(graph.KindVideo, 4), 0, 1), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.same {
				assert.Equal(t, base, tt.got)
			} else {
				assert.NotEqual(t, base, tt.got)
			}
		})
	}
}

func TestLatencyMedian(t *testing.T) {
	const samples = 4001
	tests := []struct {
		name   string
		opts   fake.Options
		kind   string
		median time.Duration
	}{
		{"listed kind, no randomness", fake.Options{Latency: fake.LectureMedians()}, graph.KindVideo, 30 * time.Second},
		{"unlisted kind uses Default", fake.Options{Latency: fake.LectureMedians(), Default: time.Second}, "other", time.Second},
		{"sigma 1", fake.Options{Seed: 1, Latency: fake.LectureMedians(), Sigma: 1}, graph.KindImage, 8 * time.Second},
		{"sigma 0.25, other seed", fake.Options{Seed: 99, Default: 20 * time.Millisecond, Sigma: 0.25}, graph.KindNarration, 20 * time.Millisecond},
		{"zero median stays zero", fake.Options{Sigma: 1}, graph.KindScript, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fake.New(tt.opts)
			logs := make([]float64, samples)
			ds := make([]time.Duration, samples)
			for i := range samples {
				ds[i] = f.Latency(segmentID(tt.kind, i), 0, 1)
				if tt.median > 0 {
					logs[i] = math.Log(float64(ds[i]) / float64(tt.median))
				}
			}
			if tt.opts.Sigma == 0 || tt.median == 0 {
				for i, d := range ds {
					require.Equal(t, tt.median, d, "sample %d", i)
				}
				return
			}
			slices.Sort(ds)
			got := ds[samples/2]
			assert.InEpsilon(t, float64(tt.median), float64(got), 0.08, "sample median %v, want about %v", got, tt.median)
			mean, sd := meanSD(logs)
			assert.InDelta(t, 0, mean, 0.05*tt.opts.Sigma+0.01, "mean of log(latency/median)")
			assert.InEpsilon(t, tt.opts.Sigma, sd, 0.05, "sd of log(latency/median)")
		})
	}
}

func meanSD(xs []float64) (mean, sd float64) {
	for _, x := range xs {
		mean += x
	}
	mean /= float64(len(xs))
	for _, x := range xs {
		sd += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(sd / float64(len(xs)-1))
}

func TestOutputDependsOnlyOnInputs(t *testing.T) {
	ctx := context.Background()
	id := segmentID(graph.KindVideo, 3)
	gen := func(f *fake.Fake, req executor.Request) executor.Asset {
		t.Helper()
		a, err := f.Generate(ctx, req)
		require.NoError(t, err)
		return a
	}
	f := fake.New(fake.Options{Seed: 1})
	base := gen(f, request(id, 2, 1, "h1", "h2"))
	require.NotEmpty(t, base.Hash)
	tests := []struct {
		name string
		f    *fake.Fake
		req  executor.Request
		same bool
	}{
		{"same inputs", f, request(id, 2, 1, "h1", "h2"), true},
		{"another attempt", f, request(id, 2, 3, "h1", "h2"), true},
		{"another seed and latency", fake.New(fake.Options{Seed: 5, Default: time.Nanosecond, Sigma: 1}), request(id, 2, 1, "h1", "h2"), true},
		{"another revision", f, request(id, 3, 1, "h1", "h2"), false},
		{"another dependency hash", f, request(id, 2, 1, "h1", "h3"), false},
		{"dependencies swapped", f, request(id, 2, 1, "h2", "h1"), false},
		{"another node", f, request(segmentID(graph.KindVideo, 4), 2, 1, "h1", "h2"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := gen(tt.f, tt.req)
			if tt.same {
				assert.Equal(t, base.Hash, a.Hash)
				assert.Equal(t, base.Data, a.Data)
			} else {
				assert.NotEqual(t, base.Hash, a.Hash)
			}
		})
	}
}

func TestOutputLength(t *testing.T) {
	tests := []struct {
		name string
		opts fake.Options
		id   string
		want time.Duration
	}{
		{"narration, default", fake.Options{}, segmentID(graph.KindNarration, 0), 10 * time.Second},
		{"narration, set", fake.Options{Narration: 12 * time.Second}, segmentID(graph.KindNarration, 0), 12 * time.Second},
		{"video has none", fake.Options{}, segmentID(graph.KindVideo, 0), 0},
		{"script has none", fake.Options{}, graph.KindScript, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := fake.New(tt.opts).Generate(context.Background(), request(tt.id, 0, 1))
			require.NoError(t, err)
			assert.Equal(t, tt.want, a.Length)
		})
	}
}

func TestFailures(t *testing.T) {
	ctx := context.Background()
	bad := segmentID(graph.KindImage, 2)
	f := fake.New(fake.Options{Fail: map[string]bool{bad: true}})
	for attempt := 1; attempt <= 3; attempt++ {
		_, err := f.Generate(ctx, request(bad, 0, attempt))
		require.ErrorIs(t, err, fake.ErrFailed, "attempt %d", attempt)
		var perm *executor.PermanentError
		require.ErrorAs(t, err, &perm, "a listed node's failure is permanent")
	}
	_, err := f.Generate(ctx, request(segmentID(graph.KindImage, 3), 0, 1))
	require.NoError(t, err, "a node not listed succeeds")
}

func TestFlaky(t *testing.T) {
	const samples = 4000
	ctx := context.Background()
	tests := []struct {
		name  string
		flaky float64
	}{
		{"never", 0},
		{"30%", 0.3},
		{"70%", 0.7},
		{"always", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fake.New(fake.Options{Seed: 3, Flaky: tt.flaky})
			again := fake.New(fake.Options{Seed: 3, Flaky: tt.flaky})
			failed := 0
			for i := range samples {
				req := request(segmentID(graph.KindVideo, i/4), 0, 1+i%4)
				_, err := f.Generate(ctx, req)
				_, err2 := again.Generate(ctx, req)
				require.Equal(t, err == nil, err2 == nil, "the outcome of %s attempt %d is not reproducible", req.NodeID, req.Attempt)
				if err != nil {
					failed++
					require.ErrorIs(t, err, fake.ErrFlaky)
					var perm *executor.PermanentError
					require.False(t, errors.As(err, &perm), "a flaky failure must be retryable")
				}
			}
			assert.InDelta(t, tt.flaky, float64(failed)/samples, 0.03, "%d of %d attempts failed", failed, samples)
			assert.Equal(t, 2*samples, f.Calls()+again.Calls())
		})
	}
}

func TestGenerateSleepsTheLatency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := fake.New(fake.Options{Seed: 11, Latency: fake.LectureMedians(), Sigma: 1})
		for _, id := range []string{graph.KindScript, segmentID(graph.KindVideo, 5), graph.KindTimeline} {
			want := f.Latency(id, 1, 2)
			start := time.Now()
			_, err := f.Generate(t.Context(), request(id, 1, 2))
			require.NoError(t, err)
			assert.Equal(t, want, time.Since(start), id)
		}
	})
}

func TestGenerateHonoursContext(t *testing.T) {
	id := segmentID(graph.KindVideo, 0) // median 30s
	tests := []struct {
		name    string
		ctx     func(context.Context) (context.Context, context.CancelFunc)
		latency time.Duration
		wantErr error
		took    time.Duration
	}{
		{"cancelled midway", func(ctx context.Context) (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(ctx)
			time.AfterFunc(10*time.Second, cancel)
			return ctx, cancel
		}, 30 * time.Second, context.Canceled, 10 * time.Second},
		{"deadline first", func(ctx context.Context) (context.Context, context.CancelFunc) {
			return context.WithTimeout(ctx, 5*time.Second)
		}, 30 * time.Second, context.DeadlineExceeded, 5 * time.Second},
		{"cancelled before, no latency", func(ctx context.Context) (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(ctx)
			cancel()
			return ctx, cancel
		}, 0, context.Canceled, 0},
		{"latency first", func(ctx context.Context) (context.Context, context.CancelFunc) {
			return context.WithTimeout(ctx, time.Minute)
		}, 30 * time.Second, nil, 30 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := fake.New(fake.Options{Latency: map[string]time.Duration{graph.KindVideo: tt.latency}})
				ctx, cancel := tt.ctx(t.Context())
				defer cancel()
				start := time.Now()
				_, err := f.Generate(ctx, request(id, 0, 1))
				if tt.wantErr == nil {
					require.NoError(t, err)
				} else {
					require.ErrorIs(t, err, tt.wantErr)
				}
				assert.Equal(t, tt.took, time.Since(start))
				assert.Equal(t, 1, f.Calls())
			})
		})
	}
}

func TestCallsCountsConcurrentAttempts(t *testing.T) {
	f := fake.New(fake.Options{Flaky: 0.5})
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			_, _ = f.Generate(context.Background(), request(segmentID(graph.KindImage, i), 0, 1))
		})
	}
	wg.Wait()
	assert.Equal(t, 64, f.Calls())
}

func TestRegistry(t *testing.T) {
	f := fake.New(fake.Options{})
	tests := []struct {
		name  string
		kinds []string
		want  []string
	}{
		{"no kinds: the lecture's", nil, []string{graph.KindNarration, graph.KindImage, graph.KindMusic,
			graph.KindVideo, graph.KindScript, graph.KindTimeline}},
		{"given kinds", []string{"a", "b"}, []string{"a", "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := f.Registry(tt.kinds...)
			assert.Empty(t, reg.Missing(tt.want...))
			assert.Len(t, reg, len(tt.want))
			for _, k := range tt.want {
				assert.Same(t, f, reg[k], k)
			}
		})
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	tests := []struct {
		name string
		opts fake.Options
		want string
	}{
		{"negative default", fake.Options{Default: -time.Second}, "fake: Options.Default -1s: want 0 or more"},
		{"negative kind latency", fake.Options{Latency: map[string]time.Duration{"script": -1}}, `fake: Options.Latency["script"] -1ns: want 0 or more`},
		{"negative sigma", fake.Options{Sigma: -1}, "fake: Options.Sigma -1: want a finite value from 0"},
		{"NaN sigma", fake.Options{Sigma: math.NaN()}, "fake: Options.Sigma NaN: want a finite value from 0"},
		{"flaky above 1", fake.Options{Flaky: 1.5}, "fake: Options.Flaky 1.5: want a probability from 0 to 1"},
		{"flaky NaN", fake.Options{Flaky: math.NaN()}, "fake: Options.Flaky NaN: want a probability from 0 to 1"},
		{"negative narration", fake.Options{Narration: -time.Second}, "fake: Options.Narration -1s: want 0 (default) or more"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.PanicsWithValue(t, tt.want, func() { fake.New(tt.opts) })
		})
	}
}

// TestWithExecutor runs a lecture through the executor in virtual time:
// every node is generated, the narrations pass the length check, the
// attempts are the fake's calls, and forcing the script regenerates it
// with the same output, so early cutoff keeps everything downstream.
func TestWithExecutor(t *testing.T) {
	for _, mode := range []executor.Mode{executor.Dataflow, executor.Staged} {
		t.Run(mode.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				g, err := graph.Build(graph.Lecture(), 120)
				require.NoError(t, err)
				f := fake.New(fake.Options{Seed: 1, Latency: fake.LectureMedians(), Sigma: 1, Flaky: 0.1})
				e, err := executor.New(executor.Options{Generators: f.Registry(), Mode: mode,
					Default: executor.KindOptions{Retry: executor.RetryPolicy{MaxAttempts: 10}}})
				require.NoError(t, err)
				defer func() { require.NoError(t, e.Close(context.Background())) }()
				req := executor.RunRequest{GraphKey: "lecture", Graph: g}

				rep, err := e.Run(t.Context(), req)
				require.NoError(t, err)
				assert.Len(t, rep.Generated, g.Len())
				assert.Equal(t, f.Calls(), rep.Record.Counts.Attempts)
				assert.Greater(t, f.Calls(), g.Len(), "flaky attempts are retried")

				req.Marks = []dirty.Mark{{ID: graph.KindScript, Reason: dirty.ReasonForced}}
				rep, err = e.Run(t.Context(), req)
				require.NoError(t, err)
				assert.Equal(t, []string{graph.KindScript}, rep.Generated)
				assert.Len(t, rep.Unchanged, g.Len()-1)
			})
		})
	}
}

// Example runs a 30-second lecture through the executor with instant fake
// generators, one of which always fails.
func Example() {
	g, err := graph.Build(graph.Lecture(), 30)
	if err != nil {
		panic(err)
	}
	f := fake.New(fake.Options{Fail: map[string]bool{"asset:image:segment[1]": true}})
	e, err := executor.New(executor.Options{Generators: f.Registry()})
	if err != nil {
		panic(err)
	}
	rep, err := e.Run(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: g})
	fmt.Println("failed:", rep.Failed, errors.Is(err, fake.ErrFailed))
	fmt.Println("skipped:", rep.Skipped)
	fmt.Println("generated:", len(rep.Generated), "of", g.Len(), "in", f.Calls(), "attempts")
	// Output:
	// failed: [asset:image:segment[1]] true
	// skipped: [asset:video:segment[1] timeline]
	// generated: 9 of 12 in 10 attempts
}
