package executor_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/sse"
)

func TestNewRefusesBadOptions(t *testing.T) {
	gen := executor.GeneratorFunc(func(context.Context, executor.Request) (executor.Asset, error) {
		return executor.Asset{}, nil
	})
	reg := executor.Registry{"script": gen}
	tests := []struct {
		name string
		opts executor.Options
		want string
	}{
		{"no generators", executor.Options{}, "Options.Generators is empty"},
		{"nil generator", executor.Options{Generators: executor.Registry{"script": nil}}, `Options.Generators["script"] is nil`},
		{"nil generator func", executor.Options{Generators: executor.Registry{"script": gen, "timeline": executor.GeneratorFunc(nil)}}, `Options.Generators["timeline"] is nil`},
		{"bad mode", executor.Options{Generators: reg, Mode: 7}, "Options.Mode 7"},
		{"negative workers", executor.Options{Generators: reg, Workers: -1}, "Options.Workers -1"},
		{"negative converge", executor.Options{Generators: reg, Converge: -1}, "Options.Converge -1"},
		{"negative batch", executor.Options{Generators: reg, MaxBatch: -2}, "Options.MaxBatch -2"},
		{"bad rate", executor.Options{Generators: reg, Rates: map[string]executor.Rate{"asset:image": {Starts: 0, Per: time.Second}}}, `Options.Rates["asset:image"] is 0 per 1s`},
		{"zero limit", executor.Options{Generators: reg, Limits: map[string]int{"asset:video": 0}}, `Options.Limits["asset:video"] is 0: want at least 1`},
		{"limit of a single", executor.Options{Generators: reg, Limits: map[string]int{"": 2}}, "Options.Limits has an empty batch key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := executor.New(tt.opts)
			assert.Nil(t, e)
			require.ErrorIs(t, err, executor.ErrInvalidRequest)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestStartRefusesBadRequests(t *testing.T) {
	l := newLab(t, 30)
	e := l.executor(executor.Options{})
	_, err := e.Start(context.Background(), executor.RunRequest{Graph: l.g})
	require.ErrorIs(t, err, executor.ErrInvalidRequest)
	_, err = e.Start(context.Background(), executor.RunRequest{GraphKey: "x"})
	require.ErrorIs(t, err, executor.ErrInvalidRequest)
	_, err = e.Start(context.Background(), executor.RunRequest{GraphKey: "x", Graph: l.g,
		Marks: []dirty.Mark{{ID: "asset:image:segment[7]", Reason: dirty.ReasonEdited}}})
	require.ErrorIs(t, err, dirty.ErrInvalidMark)
	require.ErrorIs(t, err, graph.ErrUnknownNode)
	assert.Zero(t, l.snapshot().Version, "a refused run commits nothing")
}

// A graph key, run ID, TriggeredBy or Reason that is not valid UTF-8
// without NUL is refused at the door, whatever the store, before anything
// is committed or recorded and before any event: Postgres refuses such
// text with a driver error (after the executor retried it as transient),
// and an event's JSON would name another run or graph.
func TestStartRefusesTextNoStoreCanKeep(t *testing.T) {
	tests := []struct {
		name string
		req  func(*executor.RunRequest)
		want string
	}{
		{"graph key with NUL", func(r *executor.RunRequest) { r.GraphKey = "lecture\x00other" }, `RunRequest.GraphKey "lecture\x00other" is not valid UTF-8 without NUL`},
		{"graph key not UTF-8", func(r *executor.RunRequest) { r.GraphKey = "lecture\xff" }, `RunRequest.GraphKey "lecture\xff" is not valid UTF-8 without NUL`},
		{"run ID with NUL", func(r *executor.RunRequest) { r.RunID = "r\x00" }, `RunRequest.RunID "r\x00"`},
		{"run ID not UTF-8", func(r *executor.RunRequest) { r.RunID = "r\xc3" }, `RunRequest.RunID "r\xc3"`},
		{"triggered by with NUL", func(r *executor.RunRequest) { r.TriggeredBy = "user\x00" }, `RunRequest.TriggeredBy "user\x00"`},
		{"reason not UTF-8", func(r *executor.RunRequest) { r.Reason = "\xed\xa0\x80" }, `RunRequest.Reason "\xed\xa0\x80"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, 30)
				e := l.executor(executor.Options{})
				req := executor.RunRequest{GraphKey: "lecture", Graph: l.g, RunID: "r1"}
				tt.req(&req)
				_, err := e.Start(context.Background(), req)
				require.ErrorIs(t, err, executor.ErrInvalidRequest)
				assert.ErrorContains(t, err, tt.want)
				assert.ErrorContains(t, err, "only valid UTF-8 without NUL bytes is allowed")
				snap, err := l.states.Load(context.Background(), req.GraphKey)
				require.NoError(t, err)
				assert.Zero(t, snap.Version, "a refused run commits nothing")
				_, err = l.runs.GetRun(context.Background(), req.RunID)
				require.ErrorIs(t, err, executor.ErrNotFound, "a refused run records nothing")
				assert.Empty(t, l.events, "a refused run sends no event")
			})
		})
	}
	t.Run("plan and edit", func(t *testing.T) {
		l := newLab(t, 30)
		e := l.executor(executor.Options{})
		_, _, err := e.Plan(context.Background(), executor.RunRequest{GraphKey: "a\x00", Graph: l.g})
		require.ErrorIs(t, err, executor.ErrInvalidRequest)
		assert.ErrorContains(t, err, `RunRequest.GraphKey "a\x00" is not valid UTF-8 without NUL`)
		_, err = e.Edit(context.Background(), l.g, "a\xff", "script")
		require.ErrorIs(t, err, executor.ErrInvalidRequest)
		assert.ErrorContains(t, err, `edit: the graph key "a\xff" is not valid UTF-8 without NUL`)
		snap, err := l.states.Load(context.Background(), "a\xff")
		require.NoError(t, err)
		assert.Zero(t, snap.Version, "a refused edit commits nothing")
	})
}

func TestSinkFailureNeverFailsTheRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		l.sinkFail = true
		e := l.executor(executor.Options{})
		rep, err := l.run(e)
		require.NoError(t, err)
		assert.Equal(t, executor.RunSucceeded, rep.Record.Status)
		l.requireEventOrder(progress.RunFinished)
	})
}

func TestNarrationOutOfToleranceFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		long := executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
			a, err := l.Generate(ctx, req)
			if req.NodeID == "asset:narration:segment[1]" {
				a.Length = 12 * time.Second
			}
			return a, err
		})
		e := l.executor(executor.Options{Generators: l.registry(long)})
		rep, err := l.run(e)
		require.ErrorIs(t, err, executor.ErrInvalidOutput)
		require.ErrorIs(t, err, graph.ErrNarrationLength)
		assert.Equal(t, []string{"asset:narration:segment[1]"}, rep.Failed)
		assert.Equal(t, 3, l.calls["asset:narration:segment[1]"], "a refused output counts as a failed attempt")
	})
}

func TestRateLimitPerBatchKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 120)
		gen, startsOf := l.recordStarts(graph.KindImage)
		e := l.executor(executor.Options{Generators: l.registry(gen),
			Rates: map[string]executor.Rate{graph.KindImage: {Starts: 2, Per: 10 * time.Second}}})
		_, err := l.run(e)
		require.NoError(t, err)
		starts := startsOf()
		require.Len(t, starts, 12)
		for i := 2; i < len(starts); i++ {
			assert.GreaterOrEqual(t, starts[i].Sub(starts[i-2]), 10*time.Second, "start %d", i)
		}
		// Five slots would start five at once; the rate spreads them.
		assert.Equal(t, starts[0], starts[1])
		assert.Equal(t, 10*time.Second, starts[2].Sub(starts[0]))
	})
}

func TestWorkersCapAllKeys(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 60)
		var now, most int
		gen := executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
			l.mu.Lock()
			now++
			most = max(most, now)
			l.mu.Unlock()
			defer func() { l.mu.Lock(); now--; l.mu.Unlock() }()
			return l.Generate(ctx, req)
		})
		e := l.executor(executor.Options{Generators: l.registry(gen), Workers: 2})
		_, err := l.run(e)
		require.NoError(t, err)
		assert.Equal(t, 2, most)
	})
}

// existsOnly hides MemoryAssets' Missing, so that the executor checks
// assets one Exists at a time, and counts both kinds of call.
type existsOnly struct {
	executor.AssetStore // the MemoryAssets, as an AssetStore only
	mem                 *executor.MemoryAssets
	exists, missing     *atomic.Int64
}

func (a existsOnly) Exists(ctx context.Context, ref string) (bool, error) {
	a.exists.Add(1)
	return a.mem.Exists(ctx, ref)
}

type withMissing struct{ existsOnly }

func (a withMissing) Missing(ctx context.Context, refs []string) ([]string, error) {
	a.missing.Add(1)
	return a.mem.Missing(ctx, refs)
}

// A clean node whose asset is gone is regenerated, whether the store
// checks references one at a time (Exists) or all at once (Missing).
func TestMissingAssetIsRegenerated(t *testing.T) {
	for _, batch := range []bool{false, true} {
		t.Run(fmt.Sprint("AssetChecker ", batch), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, 60)
				var exists, missing atomic.Int64
				only := existsOnly{l.assets, l.assets, &exists, &missing}
				var assets executor.AssetStore = only
				if batch {
					assets = withMissing{only}
				}
				e, err := executor.New(executor.Options{Generators: l.registry(l), States: l.states, Assets: assets,
					Runs: l.runs, Sink: l})
				require.NoError(t, err)
				_, err = l.run(e)
				require.NoError(t, err)
				ref := l.snapshot().States["asset:image:segment[3]"].AssetRef
				require.True(t, l.assets.Delete(ref))
				l.resetCalls()
				exists.Store(0)
				rep, err := l.run(e)
				require.NoError(t, err)
				// The image comes out the same, so its dependents keep theirs.
				assert.Equal(t, []string{"asset:image:segment[3]"}, rep.Generated)
				assert.Equal(t, sorted("asset:video:segment[3]", "timeline"), rep.Unchanged)
				l.requireAllClean()
				if batch {
					assert.Equal(t, int64(1), missing.Load(), "one Missing a run with clean nodes")
					assert.LessOrEqual(t, exists.Load(), int64(3), "Exists only for early cutoff")
				} else {
					assert.Zero(t, missing.Load())
					assert.GreaterOrEqual(t, exists.Load(), int64(l.g.Len()), "one Exists a clean node")
				}
			})
		})
	}
}

func TestForcedRegeneratesEvenIfUnchanged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 60)
		e := l.executor(executor.Options{})
		_, err := l.run(e)
		require.NoError(t, err)
		l.resetCalls()
		rep, err := l.run(e, dirty.Mark{ID: "asset:music", Reason: dirty.ReasonForced})
		require.NoError(t, err)
		// The music is the same, so the timeline keeps its result.
		assert.Equal(t, []string{"asset:music"}, rep.Generated)
		assert.Equal(t, []string{"timeline"}, rep.Unchanged)
	})
}

// TestIdempotencyKeyTakes: a provider that deduplicates by the
// idempotency key must make another take of a forced node, and of a
// graph deleted and made again (whose revisions start again from 0),
// and must get the same key for every attempt of one making, so that a
// retry is not billed twice.
func TestIdempotencyKeyTakes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		var keys, scripts []string // of the music's and the script's attempts, in order
		failNext, hang := false, false
		gen := executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
			if req.NodeID == "script" {
				l.mu.Lock()
				scripts = append(scripts, req.IdempotencyKey)
				l.mu.Unlock()
			}
			if req.NodeID == "asset:music" {
				l.mu.Lock()
				keys = append(keys, req.IdempotencyKey)
				fail, wait := failNext, hang
				failNext, hang = false, false
				l.mu.Unlock()
				if fail {
					return executor.Asset{}, errors.New("provider hiccup")
				}
				if wait {
					<-ctx.Done() // until the run is cancelled
					return executor.Asset{}, ctx.Err()
				}
				// A take of its own: a provider that deduplicates would
				// return the take of the first request with the key.
				return executor.Asset{Data: []byte(req.IdempotencyKey)}, nil
			}
			return l.Generate(ctx, req)
		})
		e := l.executor(executor.Options{Generators: l.registry(gen)})
		forced := dirty.Mark{ID: "asset:music", Reason: dirty.ReasonForced}

		_, err := l.run(e)
		require.NoError(t, err)
		_, err = l.run(e, forced) // another take
		require.NoError(t, err)
		l.mu.Lock()
		failNext = true
		l.mu.Unlock()
		_, err = l.run(e, forced) // another again, whose first attempt fails
		require.NoError(t, err)
		require.Len(t, keys, 4)
		assert.NotEqual(t, keys[0], keys[1], "a forced node must not repeat the key of the take it replaces")
		assert.NotEqual(t, keys[1], keys[2], "a second force must not repeat the first's key")
		assert.NotEqual(t, keys[0], keys[2])
		assert.Equal(t, keys[2], keys[3], "a retry repeats its attempt's key")
		assert.Contains(t, keys[1], "/after-")

		// A forced run cancelled in the call, then resumed (as after a
		// crash): the resume's call repeats the interrupted call's key,
		// so a provider that deduplicates bills it once.
		l.mu.Lock()
		hang = true
		l.mu.Unlock()
		ctx, cancel := context.WithCancel(context.Background())
		r, err := e.Start(ctx, executor.RunRequest{GraphKey: "lecture", Graph: l.g, Marks: []dirty.Mark{forced}})
		require.NoError(t, err)
		synctest.Wait()
		cancel()
		rep, err := r.Wait()
		require.ErrorIs(t, err, executor.ErrCancelled)
		r, err = e.Resume(context.Background(), l.g, rep.Record.ID)
		require.NoError(t, err)
		_, err = r.Wait()
		require.NoError(t, err)
		require.Len(t, keys, 6)
		assert.Equal(t, keys[4], keys[5], "a resume repeats the interrupted call's key")
		assert.NotEqual(t, keys[3], keys[4], "a third force must not repeat the second's key")

		// The script's key holds for runs of one making of the graph; a
		// graph deleted and made again gets new keys, though its
		// revisions, and so its input hashes, start again from 0.
		first := scripts[0]
		_, err = l.states.DeleteGraph(context.Background(), "lecture")
		require.NoError(t, err)
		_, err = l.run(e)
		require.NoError(t, err)
		require.Len(t, scripts, 2)
		assert.NotEqual(t, first, scripts[1], "a graph made again must not repeat the keys of the deleted one")
	})
}

func TestIdempotencyKeyAndDeps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		seen := map[string]executor.Request{}
		gen := executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
			l.mu.Lock()
			seen[req.NodeID] = req
			l.mu.Unlock()
			req.Progress.Report(executor.Note{Message: "working on " + req.NodeID, PreviewURL: "https://x/" + req.NodeID})
			return l.Generate(ctx, req)
		})
		e := l.executor(executor.Options{Generators: l.registry(gen)})
		_, err := l.run(e)
		require.NoError(t, err)
		v := seen["asset:video:segment[2]"]
		require.Len(t, v.Deps, 2)
		assert.Equal(t, "asset:narration:segment[2]", v.Deps[0].NodeID)
		assert.Equal(t, "asset:image:segment[2]", v.Deps[1].NodeID)
		snap := l.snapshot()
		assert.Equal(t, snap.States["asset:image:segment[2]"].OutputHash, v.Deps[1].Asset.Hash)
		assert.Equal(t, defaultData(seen["asset:image:segment[2]"]), v.Deps[1].Asset.Data)
		in := snap.States["asset:video:segment[2]"].InputHash
		making := snap.States[executor.GraphStateID].OutputHash
		assert.Equal(t, "lecture/asset:video:segment[2]/"+in+"/"+making, v.IdempotencyKey)
		assert.Equal(t, 1, v.Attempt)
		tl := seen["timeline"]
		assert.Len(t, tl.Deps, 2*3+1)
		msgs := l.eventsOf(progress.Message)
		assert.Len(t, msgs, l.g.Len())
		assert.Equal(t, "https://x/"+msgs[0].Node, msgs[0].PreviewURL)
	})
}

// A generator's note or error can be anything, a provider's whole
// response say: the events keep at most MaxEventText bytes of each text
// field, cut at a character boundary with a marker, and leave out a
// preview URL that long, so that an event stays small enough for a
// stream and for progress/sse's Client (MaxEventSize, 1 MiB). The error
// texts the executor stores (the record's, the node state's) are cut the
// same way; the returned error is whole. Short text goes out whole.
func TestEventTextIsCut(t *testing.T) {
	huge := "x" + strings.Repeat("é", 1<<20) // 2 MiB + 1: a byte cut would split a character
	tests := []struct {
		name string
		note executor.Note
		err  string
		want func(t *testing.T, msg, failed progress.Event)
	}{
		{
			name: "huge",
			note: executor.Note{Message: huge, Reasoning: huge, PreviewURL: "data:image/png;base64," + strings.Repeat("A", 1<<21)},
			err:  huge,
			want: func(t *testing.T, msg, failed progress.Event) {
				// The message also says that the URL was left out.
				left := fmt.Sprintf(" [preview URL of %d bytes left out]", len("data:image/png;base64,")+1<<21)
				assert.True(t, strings.HasSuffix(msg.Message, left), "the message says the preview was left out: %q", msg.Message[len(msg.Message)-100:])
				for name, s := range map[string]string{"message": strings.TrimSuffix(msg.Message, left), "reasoning": msg.Reasoning, "error": failed.Error} {
					assert.LessOrEqual(t, len(s), executor.MaxEventText, name)
					assert.True(t, utf8.ValidString(s), "%s is cut at a character boundary", name)
					assert.True(t, strings.HasPrefix(huge, strings.TrimSuffix(s, fmt.Sprintf("… [cut from %d bytes]", len(huge)))), "%s keeps the start", name)
					assert.True(t, strings.HasSuffix(s, fmt.Sprintf("… [cut from %d bytes]", len(huge))), "%s says it was cut", name)
				}
				assert.LessOrEqual(t, len(msg.Message), executor.MaxEventText)
				assert.Zero(t, len(msg.PreviewURL), "a cut URL would be broken: it is left out")
			},
		},
		{
			// A note of a preview alone, too long to send, went out as an
			// empty message (an embedder's trial).
			name: "preview alone",
			note: executor.Note{PreviewURL: "data:image/png;base64," + strings.Repeat("A", executor.MaxEventText)},
			err:  strings.Repeat("e", 2000),
			want: func(t *testing.T, msg, _ progress.Event) {
				assert.Zero(t, len(msg.PreviewURL))
				assert.Equal(t, fmt.Sprintf("[preview URL of %d bytes left out]", len("data:image/png;base64,")+executor.MaxEventText), msg.Message)
			},
		},
		{
			name: "at the limit",
			note: executor.Note{Message: strings.Repeat("m", executor.MaxEventText), PreviewURL: "https://x/" + strings.Repeat("p", executor.MaxEventText-10)},
			err:  strings.Repeat("e", executor.MaxEventText),
			want: func(t *testing.T, msg, failed progress.Event) {
				assert.Equal(t, strings.Repeat("m", executor.MaxEventText), msg.Message)
				assert.Equal(t, "https://x/"+strings.Repeat("p", executor.MaxEventText-10), msg.PreviewURL)
				assert.Equal(t, strings.Repeat("e", executor.MaxEventText), failed.Error)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, 30)
				l.set("script", func(_ context.Context, req executor.Request) ([]byte, error) {
					req.Progress.Report(tt.note)
					return nil, executor.Permanent(errors.New(tt.err))
				})
				e := l.executor(executor.Options{})
				rep, err := l.run(e)
				require.ErrorIs(t, err, executor.ErrRunFailed)
				msgs, failed := l.eventsOf(progress.Message), l.eventsOf(progress.NodeFailed)
				require.Len(t, msgs, 1)
				require.Len(t, failed, 1)
				tt.want(t, msgs[0], failed[0])
				// The stored error texts are cut too; the returned error's
				// node errors are whole (its text lists them cut: see
				// TestRunErrorTextIsBounded).
				var re *executor.RunError
				require.ErrorAs(t, err, &re)
				require.Len(t, re.Failed, 1)
				assert.Contains(t, re.Failed[0].Error(), tt.err)
				rec, gerr := l.runs.GetRun(context.Background(), rep.Record.ID)
				require.NoError(t, gerr)
				st := l.snapshot().States["script"]
				for name, s := range map[string]string{"record's error": rec.Error, "state's last error": st.LastError} {
					assert.LessOrEqual(t, len(s), executor.MaxEventText, name)
					assert.True(t, utf8.ValidString(s), name)
				}
				assert.Contains(t, rec.Error, tt.err[:900], "the record keeps the error's start")
				assert.Contains(t, st.LastError, tt.err[:1001], "the state keeps the error's start")
				l.mu.Lock()
				defer l.mu.Unlock()
				for _, ev := range l.events {
					data, err := json.Marshal(ev)
					require.NoError(t, err)
					assert.Less(t, len(data), sse.MaxEventSize, "event %d (%s)", ev.Seq, ev.Type)
				}
			})
		})
	}
}

func TestNonRetryableStopsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		l.set("asset:music", fail(executor.Permanent(errors.New("bad prompt"))))
		e := l.executor(executor.Options{})
		rep, err := l.run(e)
		var pe *executor.PermanentError
		require.ErrorAs(t, err, &pe)
		assert.Equal(t, 1, l.calls["asset:music"])
		assert.Equal(t, []string{"asset:music"}, rep.Failed)
		assert.Equal(t, []string{"timeline"}, rep.Skipped)
	})
}

func TestStageEventsWhenEverythingIsSkipped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		l.set("script", fail(executor.Permanent(errors.New("no script"))))
		e := l.executor(executor.Options{})
		rep, err := l.run(e)
		require.ErrorIs(t, err, executor.ErrRunFailed)
		assert.Len(t, rep.Skipped, l.g.Len()-1)
		var got []string
		l.mu.Lock()
		for _, ev := range l.events {
			if ev.Type == progress.StageStarted || ev.Type == progress.StageFinished {
				got = append(got, fmt.Sprintf("%s %d", ev.Type, ev.Stage))
			}
		}
		l.mu.Unlock()
		assert.Equal(t, []string{
			"stage.started 0", "stage.finished 0", "stage.started 1", "stage.finished 1",
			"stage.started 2", "stage.finished 2", "stage.started 3", "stage.finished 3",
		}, got)
		l.requireEventOrder(progress.RunFailed)
	})
}

// A provider's quota is the executor's, not each run's: two runs at once
// share the rate of their batch key.
func TestRatesSharedByRuns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		gen, startsOf := l.recordStarts(graph.KindImage)
		e := l.executor(executor.Options{Generators: l.registry(gen),
			Rates: map[string]executor.Rate{graph.KindImage: {Starts: 1, Per: 10 * time.Second}}})
		for _, rep := range l.runAll(e, "a", "b") {
			assert.Len(t, rep.Generated, l.g.Len())
		}
		starts := startsOf()
		require.Len(t, starts, 6)
		for i := 1; i < len(starts); i++ {
			assert.Equal(t, 10*time.Second, starts[i].Sub(starts[i-1]), "start %d", i)
		}
	})
}

// A node waiting for the shared quota is cancelled with its run, at once,
// and never starts afterwards: it counts as not started.
func TestRatesWaitEndsWithCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 10)
		e := l.executor(executor.Options{
			Rates: map[string]executor.Rate{graph.KindImage: {Starts: 1, Per: time.Hour}}})
		a, err := e.Start(context.Background(), executor.RunRequest{GraphKey: "a", Graph: l.g})
		require.NoError(t, err)
		b, err := e.Start(context.Background(), executor.RunRequest{GraphKey: "b", Graph: l.g})
		require.NoError(t, err)
		// One run's image ran at 20 s, and that run ended at 68 s; the
		// other's image waits for the quota.
		time.Sleep(80 * time.Second)
		synctest.Wait()
		assert.Equal(t, 1, l.callsOf("asset:image:segment[0]"))
		var waiting *executor.Run
		ended := 0
		for _, r := range []*executor.Run{a, b} {
			select {
			case <-r.Done():
				ended++
			default:
				waiting = r
			}
		}
		require.Equal(t, 1, ended, "one run ended, the other waits for the quota")
		start := time.Now()
		waiting.Cancel()
		rep, err := waiting.Wait()
		require.ErrorIs(t, err, executor.ErrCancelled)
		assert.Zero(t, time.Since(start), "the cancel did not end the wait")
		// It never started: it is in no list but Dirty, left for a resume.
		assert.Empty(t, rep.Cancelled)
		assert.Contains(t, rep.Dirty, "asset:image:segment[0]")
		assert.Empty(t, rep.Failed)
		time.Sleep(2 * time.Hour)
		synctest.Wait()
		assert.Equal(t, 1, l.callsOf("asset:image:segment[0]"), "nothing starts after the cancel")
	})
}

// A provider's concurrency quota is the executor's: two runs at once keep
// to Options.Limits together, and waiting for room does not count against
// a call's timeout.
func TestLimitsSharedByRuns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 60)
		e := l.executor(executor.Options{Limits: map[string]int{graph.KindVideo: 2},
			Kinds: map[string]executor.KindOptions{graph.KindVideo: {Timeout: 35 * time.Second,
				Retry: executor.RetryPolicy{MaxAttempts: 1}}}})
		for _, rep := range l.runAll(e, "a", "b") {
			assert.Len(t, rep.Generated, l.g.Len())
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		assert.Equal(t, 2, l.maxRun[graph.KindVideo], "videos in flight at most, across both runs")
	})
}

// A generator that ignores its context gives its room under
// Options.Limits back when its call is abandoned at the timeout, so the
// other calls of the key go on.
func TestLimitsFreedByAbandonedCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		l.set("asset:video:segment[0]", func(context.Context, executor.Request) ([]byte, error) {
			time.Sleep(time.Hour) // ignores its context
			return nil, nil
		})
		e := l.executor(executor.Options{Limits: map[string]int{graph.KindVideo: 1},
			Kinds: map[string]executor.KindOptions{graph.KindVideo: {Timeout: time.Minute,
				Retry: executor.RetryPolicy{MaxAttempts: 1}}}})
		start := time.Now()
		rep, err := l.run(e)
		require.Error(t, err)
		assert.Equal(t, []string{"asset:video:segment[0]"}, rep.Failed)
		assert.Subset(t, rep.Generated, []string{"asset:video:segment[1]", "asset:video:segment[2]"})
		assert.Less(t, time.Since(start), 10*time.Minute, "the hung call kept its room")
	})
}

// A bulk call takes no more nodes than the key's limit, and each of its
// nodes counts as a call in flight, across runs.
func TestLimitsCapBulkCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 60)
		b := &countingBulk{bulk: bulk{lab: l}}
		reg := l.registry(l)
		reg[graph.KindImage] = b
		e := l.executor(executor.Options{Generators: reg, Limits: map[string]int{graph.KindImage: 2}})
		l.runAll(e, "a", "b")
		n := 0
		for _, batch := range l.batches {
			assert.LessOrEqual(t, len(batch), 2)
			n += len(batch)
		}
		assert.Equal(t, 12, n)
		assert.Equal(t, 2, int(b.most.Load()), "image nodes in flight at most, across both runs")
	})
}

// countingBulk is a bulk that counts the nodes in its calls in flight.
type countingBulk struct {
	bulk
	now, most atomic.Int32
}

func (c *countingBulk) GenerateBatch(ctx context.Context, reqs []executor.Request) []executor.Outcome {
	n := c.now.Add(int32(len(reqs)))
	for m := c.most.Load(); n > m && !c.most.CompareAndSwap(m, n); m = c.most.Load() {
	}
	defer c.now.Add(-int32(len(reqs)))
	return c.bulk.GenerateBatch(ctx, reqs)
}

// With both a rate and a limit, the rate counts calls that start: a call
// that waited for room does not start right after the one before it.
func TestRatesWithLimits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		var starts []time.Time
		var first atomic.Bool
		gen := executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
			if req.ID.Kind != graph.KindVideo {
				return l.Generate(ctx, req)
			}
			l.mu.Lock()
			starts = append(starts, time.Now())
			l.mu.Unlock()
			d := time.Second
			if first.CompareAndSwap(false, true) {
				d = 25 * time.Second // the others wait for room, past their rate
			}
			time.Sleep(d)
			return executor.Asset{Data: []byte(req.NodeID)}, nil
		})
		e := l.executor(executor.Options{Generators: l.registry(gen),
			Rates:  map[string]executor.Rate{graph.KindVideo: {Starts: 1, Per: 10 * time.Second}},
			Limits: map[string]int{graph.KindVideo: 1}})
		_, err := l.run(e)
		require.NoError(t, err)
		require.Len(t, starts, 3)
		for i := 1; i < len(starts); i++ {
			assert.GreaterOrEqual(t, starts[i].Sub(starts[i-1]), 10*time.Second, "start %d", i)
		}
	})
}

// A run ID names one run: a second run with a taken ID is refused before
// anything is committed, and the first run's record stays.
func TestRunIDTaken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		e := l.executor(executor.Options{})
		ctx := context.Background()
		_, err := e.Run(ctx, executor.RunRequest{GraphKey: "a", Graph: l.g, RunID: "job-1"})
		require.NoError(t, err)
		before := l.snapshot()
		_, err = e.Run(ctx, executor.RunRequest{GraphKey: "b", Graph: l.g, RunID: "job-1"})
		require.ErrorIs(t, err, executor.ErrInvalidRequest)
		assert.ErrorContains(t, err, `RunRequest.RunID "job-1" is taken by a run of graph "a"`)
		rec, err := e.Runs().GetRun(ctx, "job-1")
		require.NoError(t, err)
		assert.Equal(t, "a", rec.GraphKey)
		snap, err := e.States().Load(ctx, "b")
		require.NoError(t, err)
		assert.Zero(t, snap.Version, "nothing committed for the refused run")
		assert.Equal(t, before, l.snapshot())
	})
}

// Resume and RerunFailed refuse a graph of another duration than the
// run's.
func TestResumeChecksTheDuration(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 60)
		e := l.executor(executor.Options{})
		rep, err := l.run(e)
		require.NoError(t, err)
		short, err := graph.Build(graph.Lecture(), 30)
		require.NoError(t, err)
		ctx := context.Background()
		_, err = e.Resume(ctx, short, rep.Record.ID)
		require.ErrorIs(t, err, executor.ErrInvalidRequest)
		assert.ErrorContains(t, err, "it ran on a graph of 60 s, and this one is of 30 s")
		_, err = e.RerunFailed(ctx, short, rep.Record.ID)
		require.ErrorIs(t, err, executor.ErrInvalidRequest)
		_, err = e.Resume(ctx, nil, rep.Record.ID)
		require.ErrorIs(t, err, executor.ErrInvalidRequest)
		r, err := e.Resume(ctx, l.g, rep.Record.ID)
		require.NoError(t, err)
		_, err = r.Wait()
		require.NoError(t, err)
	})
}

// A lecture shortened on the same graph key: the timeline, made from the
// segments that are gone, is stale though recorded clean; the next run
// regenerates it (and only it), and the one after has nothing to do.
func TestShortenedLectureRegeneratesWhatDependsOnAllSegments(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 120)
		e := l.executor(executor.Options{})
		_, err := l.run(e)
		require.NoError(t, err)
		short, err := graph.Build(graph.Lecture(), 60)
		require.NoError(t, err)
		ctx := context.Background()
		rep, err := e.Run(ctx, executor.RunRequest{GraphKey: "lecture", Graph: short})
		require.NoError(t, err)
		assert.Equal(t, []string{"timeline"}, rep.Generated)
		rep, err = e.Run(ctx, executor.RunRequest{GraphKey: "lecture", Graph: short})
		require.NoError(t, err)
		assert.Empty(t, rep.Generated)
		assert.Zero(t, rep.Record.Counts.Planned)
		// And back to the longer lecture: its nodes are clean, but the
		// timeline was made from 6 segments.
		rep, err = e.Run(ctx, executor.RunRequest{GraphKey: "lecture", Graph: l.g})
		require.NoError(t, err)
		assert.Equal(t, []string{"timeline"}, rep.Generated)
	})
}

// An output whose text fields a SQL store could not keep (NUL, invalid
// UTF-8) is refused as invalid output before it is stored, whatever the
// store: the node fails at once (see TestOutputTextRefusalIsNotRetried).
func TestOutputTextChecked(t *testing.T) {
	for _, tc := range []struct {
		name string
		a    executor.Asset
		want string
	}{
		{"NUL in a Meta value", executor.Asset{Data: []byte("x"), Meta: map[string]string{"provider": "v1\x00"}}, `Meta["provider"]`},
		{"invalid UTF-8 in a Meta key", executor.Asset{Data: []byte("x"), Meta: map[string]string{"\xff": "v"}}, `Meta["\xff"]`},
		{"NUL in the URL", executor.Asset{URL: "https://x/\x00"}, "URL"},
		{"invalid UTF-8 in the Hash", executor.Asset{Data: []byte("x"), Hash: "h\xfe"}, "Hash"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, 10)
				gen := executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
					if req.NodeID == "script" {
						return tc.a, nil
					}
					return l.Generate(ctx, req)
				})
				e := l.executor(executor.Options{Generators: l.registry(gen)})
				rep, err := l.run(e)
				require.Error(t, err)
				require.ErrorIs(t, err, executor.ErrInvalidOutput)
				assert.ErrorContains(t, err, tc.want)
				assert.Equal(t, []string{"script"}, rep.Failed)
				assert.Zero(t, l.assets.Len(), "nothing stored")
			})
		})
	}
}

// Nodes that early cutoff keeps make no provider call: their starts do
// not count against their key's rate. A forced script with the same
// output keeps the six narrations at once, not one per ten seconds.
func TestRatesSpareNodesKeptByCutoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 60)
		e := l.executor(executor.Options{Rates: map[string]executor.Rate{
			graph.KindNarration: {Starts: 1, Per: 10 * time.Second}}})
		_, err := l.run(e)
		require.NoError(t, err)
		start := time.Now()
		rep, err := l.run(e, dirty.Mark{ID: "script", Reason: dirty.ReasonForced})
		require.NoError(t, err)
		took := time.Since(start) // virtual time: synctest makes it exact
		assert.Equal(t, []string{"script"}, rep.Generated)
		assert.Len(t, rep.Unchanged, l.g.Len()-1, "all the rest kept")
		// The script takes its latency; the rest would take 50 s more if
		// the six kept narrations waited for the rate.
		assert.Less(t, took, l.latency[graph.KindScript]+10*time.Second, "the kept narrations waited for the rate")
	})
}

// Plan previews a run: the same plan and reasons as the run, with nothing
// committed or generated.
func TestPlanPreviewsARun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 120)
		e := l.executor(executor.Options{})
		ctx := context.Background()
		plan, _, err := e.Plan(ctx, executor.RunRequest{GraphKey: "lecture", Graph: l.g})
		require.NoError(t, err)
		assert.Equal(t, l.g.Len(), plan.Len(), "a new lecture: every node")
		_, err = l.run(e)
		require.NoError(t, err)

		before := l.snapshot()
		l.resetCalls()
		mark := dirty.Mark{ID: "asset:narration:segment[3]", Reason: dirty.ReasonEdited}
		req := executor.RunRequest{GraphKey: "lecture", Graph: l.g, Marks: []dirty.Mark{mark}}
		plan, set, err := e.Plan(ctx, req)
		require.NoError(t, err)
		assert.Equal(t, "Stage 0: Generating 1 asset:narration node in batches of 4\n"+
			"Stage 1: Generating 1 asset:video node in batches of 3\n"+
			"Stage 2: Generating 1 timeline node\n", plan.String())
		video, err := l.g.Lookup("asset:video:segment[3]")
		require.NoError(t, err)
		assert.Equal(t, "upstream asset:narration:segment[3] edited", set.Explain(video))
		assert.Equal(t, before, l.snapshot(), "nothing committed")
		assert.Empty(t, l.calledIDs(), "nothing generated")

		r, err := e.Start(ctx, req)
		require.NoError(t, err)
		assert.Equal(t, plan.String(), r.Plan().String(), "the run plans the same")
		_, err = r.Wait()
		require.NoError(t, err)

		_, _, err = e.Plan(ctx, executor.RunRequest{GraphKey: "lecture"})
		require.ErrorIs(t, err, executor.ErrInvalidRequest)
		_, _, err = e.Plan(ctx, executor.RunRequest{GraphKey: "lecture", Graph: l.g,
			Marks: []dirty.Mark{{ID: "asset:narration:segment[99]", Reason: dirty.ReasonEdited}}})
		assert.ErrorContains(t, err, "out of range")
	})
}

// gateRuns holds the first GetRun until the test releases it: a Start
// is then between its check of the RunID and its record of the run.
type gateRuns struct {
	*executor.MemoryRuns
	held             *atomic.Bool
	entered, release chan struct{}
}

func (g gateRuns) GetRun(ctx context.Context, id string) (executor.Record, error) {
	if g.held.CompareAndSwap(false, true) { // the first call only; the others pass
		close(g.entered)
		<-g.release
	}
	return g.MemoryRuns.GetRun(ctx, id)
}

// A Start with the RunID of a run still starting is refused: the check of
// the RunStore alone would let both through.
func TestRunIDTakenByAStartingRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 60)
		g := gateRuns{l.runs, &atomic.Bool{}, make(chan struct{}), make(chan struct{})}
		e, err := executor.New(executor.Options{Generators: l.registry(l), States: l.states, Assets: l.assets, Runs: g})
		require.NoError(t, err)
		ctx := context.Background()
		req := executor.RunRequest{GraphKey: "lecture", Graph: l.g, RunID: "same"}
		first := make(chan error, 1)
		go func() {
			r, err := e.Start(ctx, req)
			if err == nil {
				_, err = r.Wait()
			}
			first <- err
		}()
		<-g.entered
		second, err := e.Start(ctx, req)
		close(g.release) // before any assertion: a failed one must not leave the first Start hanging
		require.NoError(t, <-first)
		if second != nil {
			_, _ = second.Wait()
		}
		require.ErrorIs(t, err, executor.ErrInvalidRequest)
		assert.ErrorContains(t, err, `RunRequest.RunID "same" is taken by a run that is starting`)
		_, err = e.Start(ctx, req)
		assert.ErrorContains(t, err, `RunRequest.RunID "same" is taken by a run of graph "lecture"`)
		require.NoError(t, e.Close(ctx))
	})
}

// A run warns of Options keys its graph has no use for: a misspelt kind
// or batch key would otherwise be ignored without a word.
func TestUnknownOptionKeysAreLogged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		var buf bytes.Buffer
		e, err := executor.New(executor.Options{Generators: l.registry(l), States: l.states, Assets: l.assets,
			Runs: l.runs, Logger: slog.New(slog.NewTextHandler(&buf, nil)),
			Kinds:  map[string]executor.KindOptions{"asset:narration": {}, "asset:narations": {}},
			Rates:  map[string]executor.Rate{"asset:image": {Starts: 9, Per: time.Second}, "tts": {Starts: 1, Per: time.Second}},
			Limits: map[string]int{"tts": 2, "gpu": 1}})
		require.NoError(t, err)
		_, err = l.run(e)
		require.NoError(t, err)
		out := buf.String()
		assert.Contains(t, out, `Options.Kinds names kinds the graph does not have`)
		assert.Contains(t, out, `kinds=[asset:narations]`)
		assert.Contains(t, out, `keys="[tts gpu]"`)
		assert.NotContains(t, out, "asset:image]")
	})
}

// A template changed on the same graph key: the videos now also depend on
// the music. Their recorded input hashes are not those of their new
// inputs, so the next run regenerates them, and what depends on them,
// though they are recorded clean; the run after has nothing to do.
func TestChangedTemplateRegeneratesNodesWithNewInputs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 60)
		e := l.executor(executor.Options{})
		_, err := l.run(e)
		require.NoError(t, err)
		tmpl := graph.Lecture()
		for i, k := range tmpl.Kinds {
			if k.Name == graph.KindVideo {
				tmpl.Kinds[i].Deps = append(tmpl.Kinds[i].Deps, graph.Dep{Kind: graph.KindMusic, Scope: graph.ScopeGlobal})
			}
		}
		g, err := graph.Build(tmpl, 60)
		require.NoError(t, err)
		ctx := context.Background()
		_, set, err := e.Plan(ctx, executor.RunRequest{GraphKey: "lecture", Graph: g})
		require.NoError(t, err)
		want := append(ids(l, graph.KindVideo, 0, 1, 2, 3, 4, 5), "timeline")
		var planned []string
		for _, n := range set.Nodes() {
			planned = append(planned, g.NodeID(n))
			if g.KindName(g.KindOf(n)) == graph.KindVideo {
				why, _ := set.Why(n)
				assert.Equal(t, dirty.ReasonInputsChanged, why.Reason, "why %s", g.NodeID(n))
			}
		}
		assert.ElementsMatch(t, want, planned, "the plan before the run")
		rep, err := e.Run(ctx, executor.RunRequest{GraphKey: "lecture", Graph: g})
		require.NoError(t, err)
		assert.ElementsMatch(t, want, rep.Generated)
		rep, err = e.Run(ctx, executor.RunRequest{GraphKey: "lecture", Graph: g})
		require.NoError(t, err)
		assert.Empty(t, rep.Generated)
		assert.Zero(t, rep.Record.Counts.Planned)
	})
}

// A lecture shortened, then edited upstream, then made longer again: the
// segments that come back were made from the old script. They are
// recorded clean, but their inputs are not the script's output now, so
// the run regenerates them (an embedder's review found them kept).
func TestRegrownSegmentsMadeFromOldInputsRegenerate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 60)
		e := l.executor(executor.Options{})
		_, err := l.run(e)
		require.NoError(t, err)
		short, err := graph.Build(graph.Lecture(), 30)
		require.NoError(t, err)
		ctx := context.Background()
		_, err = e.Run(ctx, executor.RunRequest{GraphKey: "lecture", Graph: short,
			Marks: []dirty.Mark{{ID: "script", Reason: dirty.ReasonEdited}}})
		require.NoError(t, err)
		rep, err := e.Run(ctx, executor.RunRequest{GraphKey: "lecture", Graph: l.g})
		require.NoError(t, err)
		var want []string
		for _, k := range []string{graph.KindNarration, graph.KindImage, graph.KindVideo} {
			want = append(want, ids(l, k, 3, 4, 5)...)
		}
		want = append(want, "timeline")
		assert.ElementsMatch(t, want, rep.Generated)
		l.requireAllClean()
	})
}

// A node whose stored output is lost, found so only by early cutoff (its
// inputs unchanged, its asset gone: it was not clean when the run
// started, or Options.SkipAssetCheck skipped the check, or the asset went
// during the run), was made again with the very key of the take whose
// asset was lost, so a provider that deduplicates by the key returned
// that take again, where the asset check at a run's start gives the key
// of a new take ("/after-"), as Request.IdempotencyKey's doc says of
// every node made again because its stored output was lost. The key is
// the same in a resume of a call cut short, as the asset is still lost.
func TestIdempotencyKeyOfAnOutputLostAtCutoff(t *testing.T) {
	for _, skipCheck := range []bool{false, true} {
		t.Run(fmt.Sprint("SkipAssetCheck=", skipCheck), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, 30)
				var keys []string // of the music's calls, in order
				var lose func()
				hang := false
				gen := executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
					l.mu.Lock()
					f, wait := lose, false
					if req.NodeID == "script" {
						lose = nil
					}
					if req.NodeID == "asset:music" {
						keys = append(keys, req.IdempotencyKey)
						wait, hang = hang, false
					}
					l.mu.Unlock()
					if req.NodeID == "script" && f != nil {
						f()
					}
					if wait {
						<-ctx.Done() // until the run is cancelled
						return executor.Asset{}, ctx.Err()
					}
					return l.Generate(ctx, req)
				})
				e := l.executor(executor.Options{Generators: l.registry(gen), SkipAssetCheck: skipCheck})
				_, err := l.run(e)
				require.NoError(t, err)
				require.Len(t, keys, 1)
				ref := l.snapshot().States["asset:music"].AssetRef
				deleteMusic := func() { require.True(t, l.assets.Delete(ref)) }
				if skipCheck {
					deleteMusic() // before the run, which trusts the clean states
				} else {
					l.mu.Lock()
					lose = deleteMusic // during the run, after its asset check
					l.mu.Unlock()
				}
				l.mu.Lock()
				hang = true
				l.mu.Unlock()
				// The script is made again, with the same output: the
				// music's inputs are unchanged, but its asset is gone.
				ctx, cancel := context.WithCancel(context.Background())
				r, err := e.Start(ctx, executor.RunRequest{GraphKey: "lecture", Graph: l.g,
					Marks: []dirty.Mark{{ID: "script", Reason: dirty.ReasonForced}}})
				require.NoError(t, err)
				synctest.Wait()
				cancel()
				rep, err := r.Wait()
				require.ErrorIs(t, err, executor.ErrCancelled)
				r, err = e.Resume(context.Background(), l.g, rep.Record.ID)
				require.NoError(t, err)
				_, err = r.Wait()
				require.NoError(t, err)
				require.Len(t, keys, 3)
				assert.NotEqual(t, keys[0], keys[1], "the take whose asset was lost must not lend its key to the next")
				assert.True(t, strings.HasPrefix(keys[1], keys[0]+"/after-"), "%s: want the key of another take, after %s", keys[1], keys[0])
				assert.Equal(t, keys[1], keys[2], "a resume repeats the interrupted call's key")
				l.requireAllClean()
			})
		})
	}
}
