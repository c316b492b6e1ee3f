package pgstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/internal/testenv"
)

// commitFails is a store whose Commits fail for good, and which says
// that every asset is missing: a resume's plan then has changes (the
// clean nodes whose assets are missing), and its start fails at their
// commit, once its first record is stored; the run is recorded as
// failed, with all its counts 0.
type commitFails struct{ *pgstore.Store }

func (commitFails) Commit(context.Context, string, int64, []executor.Change) (int64, error) {
	return 0, executor.Permanent(errors.New("states: disk full"))
}

func (commitFails) Missing(_ context.Context, refs []string) ([]string, error) { return refs, nil }

// holdVideos makes p's video calls wait until their context ends, each
// first sending its run's ID on the channel returned.
func holdVideos(p *provider) <-chan string {
	started := make(chan string, 64)
	p.hook = func(ctx context.Context, req executor.Request) error {
		if req.ID.Kind != graph.KindVideo {
			return nil
		}
		select {
		case started <- req.RunID:
		default:
		}
		<-ctx.Done()
		return ctx.Err()
	}
	return started
}

// cancelledBy starts a run of g on key with e, cancels it with cause once
// its first video call has started (from started, of holdVideos: the
// nodes before it are clean), waits for it, and returns its ID.
func cancelledBy(t *testing.T, e *executor.Executor, g *graph.Graph, key string, started <-chan string, cause error) string {
	t.Helper()
	r, err := e.Start(context.Background(), executor.RunRequest{GraphKey: key, Graph: g})
	require.NoError(t, err)
	for waiting := true; waiting; {
		select {
		case id := <-started:
			waiting = id != r.ID() // another run's, started before
		case <-r.Done():
			t.Fatalf("run %s ended before its videos started", r.ID())
		}
	}
	r.CancelCause(cause)
	_, err = r.Wait()
	require.ErrorIs(t, err, executor.ErrCancelled)
	return r.ID()
}

// A resume of a cancelled run that failed as it started (its plan's
// commit failed) left a record (failed, Resumes naming the run, all
// counts 0, no failed node) that superseded the run for good: no later
// ResumeCancelled resumed it, and no record listed a node to rerun, so
// the run's work was silently dropped. A record that failed as it
// started, of the run's graph, now supersedes nothing, and the next call
// resumes the run; one that failed after its start (it planned and
// failed nodes) still supersedes it, as does a Start of another graph
// that failed as it started.
func TestResumeCancelledAfterAFailedStartOfItsResume(t *testing.T) {
	t.Parallel() // its own schema
	s, _ := newStore(t)
	ctx := testenv.Context(t, 60*time.Second)
	g := build(t, 30)
	name := testenv.UniqueName(t)
	shutdown := executor.CancelCode("shutdown", errors.New("service stopping"))
	slow := newProvider()
	started := holdVideos(slow)
	first := newExecutor(t, s, slow.registry())
	x := cancelledBy(t, first, g, name+"-x", started, shutdown)
	y := cancelledBy(t, first, g, name+"-y", started, shutdown)
	z := cancelledBy(t, first, g, name+"-z", started, shutdown)
	// A Start of another graph of z's key that failed as it started
	// still supersedes z: the host meant to replace z's graph.
	longer := build(t, 60)
	require.NoError(t, s.PutRun(ctx, executor.Record{ID: name + "-z-longer", GraphKey: name + "-z", Seconds: 60,
		Graph: executor.Fingerprint(longer), Status: executor.RunFailed, StartedAt: time.Now(), EndedAt: time.Now(),
		Error: "commit the plan: states: disk full"}))

	// The resumes of x fail as they start: the state store refuses every
	// commit.
	broken := newExecutorOf(t, executor.Options{Generators: newProvider().registry(), States: commitFails{s}, Assets: commitFails{s}, Runs: s})
	at := time.Now()
	for range 2 { // each call resumes x again, and fails again
		recs, err := s.ResumeCancelled(ctx, broken, lectureOf, executor.ResumeOptions{}, "shutdown")
		require.NoError(t, err)
		require.Len(t, recs, 2, "x and y, not z (%s)", z)
		for _, rc := range recs {
			assert.Equal(t, pgstore.NotResumed, rc.Outcome, "%s", rc.Record.ID)
			assert.ErrorContains(t, rc.Err, "states: disk full")
		}
	}
	runs, err := s.ListRuns(ctx, name+"-x")
	require.NoError(t, err)
	require.Len(t, runs, 3, "x and its two failed resumes")
	for _, r := range runs[1:] {
		assert.Equal(t, x, r.Resumes)
		assert.Equal(t, executor.RunFailed, r.Status)
		assert.Equal(t, executor.Counts{}, r.Counts)
	}
	// A resume of y that failed after its start (it planned nodes, and
	// failed one) still supersedes y: a RerunFailed of it is the host's.
	require.NoError(t, s.PutRun(ctx, executor.Record{ID: name + "-y-resume", GraphKey: name + "-y", Seconds: 30,
		Graph: executor.Fingerprint(g), Resumes: y, Status: executor.RunFailed, StartedAt: at, EndedAt: time.Now(),
		Counts: executor.Counts{Planned: 3, Generated: 2, Failed: 1, Attempts: 5}, Failed: []string{"video:segment[0]"}}))

	requireResumedToItsEnd(t, ctx, s, x, "the failed resumes")
}

// requireResumedToItsEnd checks that a ResumeCancelled of the runs cut
// by "shutdown" resumes cut alone, to its end, and that the call after it
// resumes nothing: cut's resume supersedes it. after says, in a failure,
// what came before the call.
func requireResumedToItsEnd(t *testing.T, ctx context.Context, s *pgstore.Store, cut, after string) {
	t.Helper()
	next := newExecutor(t, s, newProvider().registry())
	recs, err := s.ResumeCancelled(ctx, next, lectureOf, executor.ResumeOptions{}, "shutdown")
	require.NoError(t, err)
	if d := cmp.Diff([]outcome{{cut, pgstore.Resumed}}, outcomes(recs)); d != "" {
		t.Fatalf("ResumeCancelled after %s (-want +got):\n%s", after, d)
	}
	rep, err := recs[0].Wait()
	require.NoError(t, err)
	assert.Equal(t, cut, rep.Record.Resumes)
	assert.Equal(t, executor.RunSucceeded, rep.Record.Status)

	// Resumed to its end, cut is superseded by its resume.
	recs, err = s.ResumeCancelled(ctx, next, lectureOf, executor.ResumeOptions{}, "shutdown")
	require.NoError(t, err)
	assert.Empty(t, outcomes(recs))
}
