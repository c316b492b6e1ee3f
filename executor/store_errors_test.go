package executor_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/progress"
)

// shakyStates fails commits as told: after applying them (a lost reply),
// or without applying them.
type shakyStates struct {
	*executor.MemoryStates
	mu         sync.Mutex
	commits    int
	lostReply  map[int]bool // commit numbers applied, then reported failed
	failBefore int          // commits from this number on fail unapplied (0: never)
}

func (s *shakyStates) Commit(ctx context.Context, key string, expect int64, changes []executor.Change) (int64, error) {
	s.mu.Lock()
	s.commits++
	n := s.commits
	s.mu.Unlock()
	if s.failBefore > 0 && n >= s.failBefore {
		return 0, errors.New("connection reset")
	}
	v, err := s.MemoryStates.Commit(ctx, key, expect, changes)
	if err == nil && s.lostReply[n] {
		return 0, errors.New("connection reset after commit")
	}
	return v, err
}

func TestCommitWhoseReplyWasLostIsKept(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 60)
		// Commit 1 records the graph's fingerprint at the start of the run.
		shaky := &shakyStates{MemoryStates: l.states, lostReply: map[int]bool{2: true, 4: true, 5: true}}
		e, err := executor.New(executor.Options{Generators: l.registry(l), States: shaky, Assets: l.assets})
		require.NoError(t, err)
		rep, err := l.run(e)
		require.NoError(t, err)
		assert.Len(t, rep.Generated, l.g.Len())
		l.requireAllClean()
		require.NoError(t, e.Close(context.Background()))
	})
}

func TestCommitThatKeepsFailingFailsItsNodes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		// Commit 1 records the graph's fingerprint at the start of the run.
		shaky := &shakyStates{MemoryStates: l.states, failBefore: 2}
		e, err := executor.New(executor.Options{Generators: l.registry(l), States: shaky, Assets: l.assets})
		require.NoError(t, err)
		rep, err := l.run(e)
		require.ErrorIs(t, err, executor.ErrRunFailed)
		assert.Equal(t, []string{"script"}, rep.Failed, "the script's result could not be recorded")
		assert.Len(t, rep.Skipped, l.g.Len()-1)
		var re *executor.RunError
		require.ErrorAs(t, err, &re)
		assert.ErrorContains(t, re.Failed[0], "record result")
		assert.Equal(t, int64(1), l.snapshot().Version, "nothing was recorded after the graph's fingerprint")
		require.NoError(t, e.Close(context.Background()))
	})
}

func TestSinkPanicNeverFailsTheRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		calls := 0
		sink := progress.SinkFunc(func(context.Context, ...progress.Event) error {
			calls++
			panic("sink bug")
		})
		e, err := executor.New(executor.Options{Generators: l.registry(l), States: l.states, Assets: l.assets, Sink: sink})
		require.NoError(t, err)
		rep, err := l.run(e)
		require.NoError(t, err)
		assert.Equal(t, executor.RunSucceeded, rep.Record.Status)
		assert.Positive(t, calls)
		rep2, err := l.run(e, dirty.Mark{ID: "asset:music", Reason: dirty.ReasonEdited})
		require.NoError(t, err)
		assert.Equal(t, []string{"asset:music"}, rep2.Generated[:1])
	})
}

// shakyAssets fails one call of each of Get, Put and Exists whose key or
// reference contains fail, as a lost connection does: the first, or for
// Exists the second (the first is the run's check of the clean nodes'
// assets at its start, which fails the run before anything is done).
type shakyAssets struct {
	executor.AssetStore
	fail  string
	mu    sync.Mutex
	calls map[string]int // by method
}

func (s *shakyAssets) shake(method, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail == "" || !strings.Contains(key, s.fail) {
		return nil
	}
	if s.calls == nil {
		s.calls = map[string]int{}
	}
	s.calls[method]++
	at := 1
	if method == "Exists" {
		at = 2
	}
	if s.calls[method] != at {
		return nil
	}
	return errors.New("connection reset by peer")
}

func (s *shakyAssets) Get(ctx context.Context, ref string) (executor.Asset, error) {
	if err := s.shake("Get", ref); err != nil {
		return executor.Asset{}, err
	}
	return s.AssetStore.Get(ctx, ref)
}

func (s *shakyAssets) Put(ctx context.Context, key string, a executor.Asset) (string, error) {
	if err := s.shake("Put", key); err != nil {
		return "", err
	}
	return s.AssetStore.Put(ctx, key, a)
}

func (s *shakyAssets) Exists(ctx context.Context, ref string) (bool, error) {
	if err := s.shake("Exists", ref); err != nil {
		return false, err
	}
	return s.AssetStore.Exists(ctx, ref)
}

// An asset store call that fails once is made again: reading a
// dependency does not fail the node, storing an output does not call the
// generator again, and checking a stored output for early cutoff does
// not regenerate it.
func TestAssetStoreCallsAreRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 60)
		settleLab(t, l) // every node clean

		// The narration's edit changes nothing in its output: its
		// video and the timeline check that their stored outputs are
		// there (Exists), and keep them. Then a forced image is read
		// (Get) by its video and stored (Put) anew.
		l.set("asset:narration:segment[3]", func(_ context.Context, req executor.Request) ([]byte, error) {
			req.Rev = 0
			return defaultData(req), nil
		})
		l.set("asset:image:segment[2]", func(context.Context, executor.Request) ([]byte, error) { return []byte("new image"), nil })
		for _, tc := range []struct {
			fail      string
			marks     []dirty.Mark
			generated []string
		}{
			{"asset:video:segment[3]", []dirty.Mark{narration3}, []string{"asset:narration:segment[3]"}},
			{"asset:image:segment[2]", []dirty.Mark{{ID: "asset:image:segment[2]", Reason: dirty.ReasonForced}},
				sorted("asset:image:segment[2]", "asset:video:segment[2]", "timeline")},
		} {
			shaky := &shakyAssets{AssetStore: l.assets, fail: tc.fail}
			e, err := executor.New(executor.Options{Generators: l.registry(l), States: l.states, Assets: shaky, Runs: l.runs})
			require.NoError(t, err)
			l.resetCalls()
			rep, err := l.run(e, tc.marks...)
			require.NoError(t, err, tc.fail)
			assert.Equal(t, tc.generated, rep.Generated, tc.fail)
			assert.Equal(t, tc.generated, l.calledIDs(), "%s: each node's generator called once", tc.fail)
			l.requireAllClean()
			require.NoError(t, e.Close(context.Background()))
		}
	})
}

// The commit of a run's plan that went through but whose reply was lost
// is not applied twice when the run retries it: an edited node gets one
// new revision, not two, as without the lost reply.
func TestPlanCommitWhoseReplyWasLostBumpsAnEditOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 60)
		settleLab(t, l) // every node clean
		before := l.snapshot().States[narration3.ID].Rev

		shaky := &shakyStates{MemoryStates: l.states, lostReply: map[int]bool{1: true}}
		e, err := executor.New(executor.Options{Generators: l.registry(l), States: shaky, Assets: l.assets, Runs: l.runs})
		require.NoError(t, err)
		l.resetCalls()
		rep, err := l.run(e, narration3)
		require.NoError(t, err)
		assert.Equal(t, sorted(narration3.ID, "asset:video:segment[3]", "timeline"), rep.Generated)
		assert.Equal(t, before+1, l.snapshot().States[narration3.ID].Rev, "revisions of the edited node")
		l.requireAllClean()
		require.NoError(t, e.Close(context.Background()))
	})
}

// outage fails an asset store's Put of keys holding fail, its first puts
// calls (a store down for a few seconds).
type outage struct {
	executor.AssetStore
	fail string
	mu   sync.Mutex
	puts int
}

func (s *outage) Put(ctx context.Context, key string, a executor.Asset) (string, error) {
	s.mu.Lock()
	down := strings.Contains(key, s.fail) && s.puts > 0
	if down {
		s.puts--
	}
	s.mu.Unlock()
	if down {
		return "", errors.New("connection refused")
	}
	return s.AssetStore.Put(ctx, key, a)
}

// An asset store down for longer than the retries of one Put does not
// make the provider generate the node again: the output it made is put
// again at the node's next attempt, after its backoff, and the node fails
// only once its attempts are used up.
func TestPutOutageNeverGeneratesTwice(t *testing.T) {
	for _, tc := range []struct {
		name     string
		puts     int // failed Puts
		failed   bool
		attempts int // the script's
	}{
		{"one attempt's retries", 5, false, 2},
		{"two attempts' retries", 10, false, 3},
		{"all three attempts'", 15, true, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, 30)
				assets := &outage{AssetStore: l.assets, fail: "/script/", puts: tc.puts}
				e, err := executor.New(executor.Options{Generators: l.registry(l), States: l.states, Assets: assets, Runs: l.runs})
				require.NoError(t, err)
				rep, err := l.run(e)
				l.mu.Lock()
				calls := l.calls["script"]
				l.mu.Unlock()
				assert.Equal(t, 1, calls, "calls of the script's generator")
				// Each Put again counts as an attempt: before, a node whose
				// output was put at its second attempt said 1.
				assert.Equal(t, tc.attempts, l.snapshot().States["script"].Attempts, "the script's stored attempts")
				if tc.failed {
					require.ErrorIs(t, err, executor.ErrRunFailed)
					assert.Equal(t, []string{"script"}, rep.Failed)
					assert.ErrorContains(t, err, "store asset")
					assert.Equal(t, tc.attempts, rep.Record.Counts.Attempts, "the run's attempts: the others were skipped")
				} else {
					require.NoError(t, err)
					l.requireAllClean()
					assert.Equal(t, l.g.Len()-1+tc.attempts, rep.Record.Counts.Attempts, "the run's attempts")
				}
				require.NoError(t, e.Close(context.Background()))
			})
		})
	}
}

// A run cancelled while a node waits to put again an output whose Put
// kept failing puts it once more before it ends: the output is made and
// paid for, and a cancel does not interrupt an upload. The node is then
// recorded generated, and a Resume does not call its generator again.
// Before, the cancel dropped the output, and the Resume paid the provider
// for it a second time. If the store is still down, the node is
// cancelled, and that last Put counts as an attempt.
func TestCancelKeepsAnOutputWhosePutFailed(t *testing.T) {
	for _, tc := range []struct {
		name      string
		puts      int // failed Puts: the first attempt's 5, and then more
		generated bool
		attempts  int // the script's, in the cancelled run
		calls     int // of the script's generator, both runs
	}{
		{"the store is back", 5, true, 2, 1},
		{"the store is still down", 10, false, 2, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, 30)
				assets := &outage{AssetStore: l.assets, fail: "/script/", puts: tc.puts}
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				sink := progress.SinkFunc(func(ctx context.Context, evs ...progress.Event) error {
					for _, ev := range evs {
						if ev.Type == progress.NodeRetrying && ev.Node == "script" {
							cancel() // during the backoff before the Put again
						}
					}
					return l.Publish(ctx, evs...)
				})
				e, err := executor.New(executor.Options{Generators: l.registry(l), States: l.states, Assets: assets,
					Runs: l.runs, Sink: sink})
				require.NoError(t, err)
				r, err := e.Start(ctx, executor.RunRequest{GraphKey: "lecture", Graph: l.g})
				require.NoError(t, err)
				rep, err := r.Wait()
				require.ErrorIs(t, err, executor.ErrCancelled)
				if tc.generated {
					assert.Equal(t, []string{"script"}, rep.Generated)
					assert.Empty(t, rep.Cancelled)
					assert.Equal(t, dirty.StatusClean, l.snapshot().States["script"].Status)
				} else {
					assert.Equal(t, []string{"script"}, rep.Cancelled)
					assert.Equal(t, dirty.StatusCancelled, l.snapshot().States["script"].Status)
				}
				assert.Equal(t, tc.attempts, rep.Record.Counts.Attempts, "the script's attempts: its call, and its Put again")

				r2, err := e.Resume(context.Background(), l.g, r.ID())
				require.NoError(t, err)
				rep2, err := r2.Wait()
				require.NoError(t, err)
				assert.Equal(t, !tc.generated, slices.Contains(rep2.Generated, "script"), "the resume generated the script")
				l.mu.Lock()
				calls := l.calls["script"]
				l.mu.Unlock()
				assert.Equal(t, tc.calls, calls, "calls of the script's generator")
				l.requireAllClean()
				require.NoError(t, e.Close(context.Background()))
			})
		})
	}
}

// A node that failed for good because its output could not be stored
// leaves nothing behind for the next node its worker runs: that node is
// generated and stored with its own output, not the failed node's.
func TestPutOutageLeavesNothingToTheNextNode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		assets := &outage{AssetStore: l.assets, fail: "/asset:image:segment[0]/", puts: 1000}
		// One worker: it runs every node, one after another, with the
		// same job.
		e, err := executor.New(executor.Options{Generators: l.registry(l), States: l.states, Assets: assets,
			Runs: l.runs, Workers: 1})
		require.NoError(t, err)
		rep, err := l.run(e)
		require.ErrorIs(t, err, executor.ErrRunFailed)
		assert.Equal(t, []string{"asset:image:segment[0]"}, rep.Failed)
		require.NotEmpty(t, rep.Generated)
		snap := l.snapshot()
		for _, id := range rep.Generated {
			a, err := l.assets.Get(context.Background(), snap.States[id].AssetRef)
			require.NoError(t, err, id)
			assert.True(t, strings.HasPrefix(string(a.Data), id+"@"), "%s was stored with the output %q", id, a.Data)
		}
		require.NoError(t, e.Close(context.Background()))
	})
}

// refusing fails every Put of keys holding fail with an error that no
// retry can fix, and counts the Puts.
type refusing struct {
	executor.AssetStore
	fail   string
	before func() // if set, runs before each refusal
	mu     sync.Mutex
	puts   int
}

func (s *refusing) Put(ctx context.Context, key string, a executor.Asset) (string, error) {
	if !strings.Contains(key, s.fail) {
		return s.AssetStore.Put(ctx, key, a)
	}
	s.mu.Lock()
	s.puts++
	s.mu.Unlock()
	if s.before != nil {
		s.before()
	}
	return "", executor.Permanent(errors.New("key too long for this store"))
}

// A store error wrapped in Permanent is not retried: the Put is called
// once, the generator once, and the node fails at once.
func TestPermanentStoreErrorIsNotRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		assets := &refusing{AssetStore: l.assets, fail: "/script/"}
		e, err := executor.New(executor.Options{Generators: l.registry(l), States: l.states, Assets: assets, Runs: l.runs})
		require.NoError(t, err)
		rep, err := l.run(e)
		require.ErrorIs(t, err, executor.ErrRunFailed)
		assert.Equal(t, []string{"script"}, rep.Failed)
		assert.ErrorContains(t, err, "key too long for this store")
		assert.Equal(t, 1, assets.puts, "Puts of the script's output")
		l.mu.Lock()
		assert.Equal(t, 1, l.calls["script"], "calls of the script's generator")
		l.mu.Unlock()
		require.NoError(t, e.Close(context.Background()))
	})
}

// An output that the asset store refused with an error that no retry
// can fix is not put again when the run is cancelled meanwhile: the
// refusal and the cancel come together, and the Put is called once.
func TestPermanentPutErrorIsNotRetriedOnCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		assets := &refusing{AssetStore: l.assets, fail: "/script/", before: cancel}
		e, err := executor.New(executor.Options{Generators: l.registry(l), States: l.states, Assets: assets, Runs: l.runs})
		require.NoError(t, err)
		_, err = e.Run(ctx, executor.RunRequest{GraphKey: "lecture", Graph: l.g})
		require.ErrorIs(t, err, executor.ErrCancelled)
		assert.Equal(t, 1, assets.puts, "Puts of the script's output")
		require.NoError(t, e.Close(context.Background()))
	})
}

// refusingCommit is a state store that refuses, once, with an error no
// retry can fix, a commit that makes the script clean; before it
// answers, meanwhile runs (another run's commits).
type refusingCommit struct {
	*executor.MemoryStates
	once      sync.Once
	meanwhile func()
}

func (s *refusingCommit) Commit(ctx context.Context, key string, expect int64, changes []executor.Change) (int64, error) {
	for _, c := range changes {
		refused := false
		if c.ID == "script" && c.State.Status == dirty.StatusClean {
			s.once.Do(func() { s.meanwhile(); refused = true })
		}
		if refused {
			return 0, executor.Permanent(errors.New("state too large for this store"))
		}
	}
	return s.MemoryStates.Commit(ctx, key, expect, changes)
}

// A commit refused with an error that no retry can fix applied nothing,
// as the StateStore contract says: its results are not recorded, and
// their nodes fail with the error, even when another run has committed
// the same output of a node meanwhile (a deterministic provider). Before,
// the executor took the commit for applied, and the run reported the
// script generated and succeeded, the store's error lost.
func TestPermanentCommitErrorIsNotTakenAsApplied(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		other := l.executor(executor.Options{})
		states := &refusingCommit{MemoryStates: l.states, meanwhile: func() {
			_, err := l.run(other)
			assert.NoError(t, err)
		}}
		e, err := executor.New(executor.Options{Generators: l.registry(l), States: states, Assets: l.assets, Runs: l.runs})
		require.NoError(t, err)
		rep, err := l.run(e)
		require.ErrorIs(t, err, executor.ErrRunFailed)
		assert.ErrorContains(t, err, "state too large for this store")
		assert.Contains(t, rep.Failed, "script")
		assert.NotContains(t, rep.Generated, "script")
		require.NoError(t, e.Close(context.Background()))
	})
}
