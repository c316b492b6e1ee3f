package executor_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/progress"
)

// logRecorder is a slog.Handler that keeps the records with their
// attributes.
type logRecorder struct {
	mu   sync.Mutex
	recs []loggedRecord
}

type loggedRecord struct {
	level slog.Level
	msg   string
	attrs map[string]any
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logRecorder) WithGroup(string) slog.Handler            { return h }
func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	rec := loggedRecord{level: r.Level, msg: r.Message, attrs: map[string]any{}}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value.Resolve().Any()
		return true
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, rec)
	return nil
}

// find returns the records whose message holds msg.
func (h *logRecorder) find(msg string) []loggedRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []loggedRecord
	for _, r := range h.recs {
		if strings.Contains(r.msg, msg) {
			out = append(out, r)
		}
	}
	return out
}

// The warning of generators still running at a run's end ("they ignore
// their context") named no node nor kind, and no graph key, and an
// attempt that timed out logged nothing: an operator could not tell which
// provider's client ignores its context. The warning now lists the nodes
// and kinds of the calls still running (a bounded list) and the run's
// graph key, and each attempt that times out logs its node, kind,
// attempt and timeout.
func TestWarningsNameTheNodesAndKinds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		g, err := graph.Build(graph.Template{Kinds: []graph.Kind{{Name: "a"},
			{Name: "b", Deps: []graph.Dep{{Kind: "a", Scope: graph.ScopeGlobal}}}}}, graph.SegmentSeconds)
		require.NoError(t, err)
		gen := executor.GeneratorFunc(func(_ context.Context, req executor.Request) (executor.Asset, error) {
			if req.NodeID == "b" && req.Attempt == 1 {
				time.Sleep(time.Minute) // ignores its context
			}
			return executor.Asset{Data: []byte(req.NodeID)}, nil
		})
		h := &logRecorder{}
		e, err := executor.New(executor.Options{Generators: registryFor(g, gen), Logger: slog.New(h),
			Kinds: map[string]executor.KindOptions{"b": {Timeout: time.Second}}})
		require.NoError(t, err)
		_, err = e.Run(ctx, executor.RunRequest{GraphKey: "lecture-7", Graph: g, RunID: "r1"})
		require.NoError(t, err, "b's second attempt makes it")
		require.NoError(t, e.Close(ctx))

		timeouts := h.find("timed out")
		require.Len(t, timeouts, 1, "one attempt timed out")
		assert.Equal(t, slog.LevelWarn, timeouts[0].level)
		assert.Equal(t, "b", timeouts[0].attrs["node"])
		assert.Equal(t, "b", timeouts[0].attrs["kind"])
		assert.EqualValues(t, 1, timeouts[0].attrs["attempt"])
		assert.Equal(t, time.Second, timeouts[0].attrs["timeout"])
		assert.Equal(t, "lecture-7", timeouts[0].attrs["graph"])
		assert.Equal(t, "r1", timeouts[0].attrs["run"])

		still := h.find("ignore their context")
		require.Len(t, still, 1)
		assert.Equal(t, []string{"b"}, still[0].attrs["nodes"])
		assert.Equal(t, []string{"b"}, still[0].attrs["kinds"])
		assert.EqualValues(t, 1, still[0].attrs["calls"])
		assert.Equal(t, "lecture-7", still[0].attrs["graph"])
		assert.Equal(t, "r1", still[0].attrs["run"])
	})
}

// flakyLoads fails the next loads Loads of its states with a lost
// connection.
type flakyLoads struct {
	*executor.MemoryStore
	loads atomic.Int32
}

func (s *flakyLoads) Load(ctx context.Context, key string) (executor.Snapshot, error) {
	if s.loads.Add(-1) >= 0 {
		return executor.Snapshot{}, errRefused
	}
	return s.MemoryStore.Load(ctx, key)
}

// lastFails is a sink that cannot say a run's last event.
type lastFails struct{ *progress.Memory }

func (lastFails) LastEvent(context.Context, string) (progress.Event, bool, error) {
	return progress.Event{}, false, errRefused
}

// The records of a run's start (its store calls' retries) and of a
// Resume about the run it finds interrupted (its tally's retries, a sink
// that cannot say its last event) named the run alone, not its graph
// key, unlike the run's other records (Options.Logger).
func TestWarningsBeforeARunNameTheGraph(t *testing.T) {
	for _, c := range []struct {
		name, msg string
		resume    bool
	}{
		{"start", "store call failed, retrying", false},
		{"resume's tally", "store call failed, retrying", true},
		{"resume's sink", "last event of an interrupted run", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				g, err := graph.Build(graph.Template{Kinds: []graph.Kind{{Name: "a"}}}, graph.SegmentSeconds)
				require.NoError(t, err)
				store := &flakyLoads{MemoryStore: executor.NewMemoryStore()}
				gen := executor.GeneratorFunc(func(_ context.Context, req executor.Request) (executor.Asset, error) {
					return executor.Asset{Data: []byte(req.NodeID)}, nil
				})
				h := &logRecorder{}
				e, err := executor.New(executor.Options{Generators: registryFor(g, gen), Logger: slog.New(h),
					States: store, Assets: store, Runs: store, Sink: lastFails{progress.NewMemory(progress.MemoryOptions{})}})
				require.NoError(t, err)
				defer func() { require.NoError(t, e.Close(ctx)) }()
				var run *executor.Run
				if c.resume {
					require.NoError(t, store.PutRun(ctx, executor.Record{ID: "r0", GraphKey: "lecture-7", Graph: executor.Fingerprint(g),
						Seconds: g.Segments() * graph.SegmentSeconds, Status: executor.RunRunning, StartedAt: time.Now()}))
					store.loads.Store(1)
					run, err = e.Resume(ctx, g, "r0")
				} else {
					store.loads.Store(1)
					run, err = e.Start(ctx, executor.RunRequest{GraphKey: "lecture-7", Graph: g, RunID: "r1"})
				}
				require.NoError(t, err)
				_, err = run.Wait()
				require.NoError(t, err)
				recs := h.find(c.msg)
				require.NotEmpty(t, recs)
				for _, r := range recs {
					assert.Equal(t, "lecture-7", r.attrs["graph"], r.msg)
				}
			})
		})
	}
}
