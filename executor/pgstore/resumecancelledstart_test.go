package pgstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/internal/testenv"
)

// cancelAtResume is a run store that calls cancel once it has stored the
// first record of a resuming run: the context of the ResumeCancelled
// that resumes it ends then (the host's start-up cut short), as the run
// starts, before it has started any node.
type cancelAtResume struct {
	*pgstore.Store
	cancel func()
}

func (c cancelAtResume) PutRun(ctx context.Context, rec executor.Record) error {
	err := c.Store.PutRun(ctx, rec)
	if rec.Resumes != "" && rec.Status == executor.RunRunning {
		c.cancel()
	}
	return err
}

// A resume of a run cut by the host's shutdown, itself cancelled at its
// start with a code that the host does not resume (ResumeCancelled's ctx
// ended, say, as the host's start-up was cut short: "context"), left a
// record (cancelled, Resumes naming the run, no node started) that
// superseded the run for good: the next ResumeCancelled with the
// shutdown's code left it out, though nothing of it had been made since,
// and the lecture stayed unfinished without a word. A later record of the
// run's graph that started no node (no attempt, and no node generated,
// unchanged, failed, superseded or cancelled) and was cancelled with a
// code not asked for that says its context ended or its lock was lost
// (not a user's cancel, a host's own code, or an unknown code, in a
// record written before CancelledBy existed), now supersedes nothing,
// and the next call resumes the run.
func TestResumeCancelledAfterItsResumeWasCancelledAtItsStart(t *testing.T) {
	t.Parallel() // its own schema
	s, _ := newStore(t)
	ctx := testenv.Context(t, 60*time.Second)
	g := build(t, 30)
	key := testenv.UniqueName(t)
	slow := newProvider()
	started := holdVideos(slow)
	first := newExecutor(t, s, slow.registry())
	cut := cancelledBy(t, first, g, key, started, executor.CancelCode("shutdown", errors.New("service stopping")))

	startup, stop := context.WithCancel(ctx)
	defer stop()
	cutShort := newExecutorOf(t, executor.Options{Generators: newProvider().registry(), States: s, Assets: s,
		Runs: cancelAtResume{Store: s, cancel: stop}})
	recs, err := s.ResumeCancelled(startup, cutShort, lectureOf, executor.ResumeOptions{}, "shutdown")
	require.ErrorIs(t, err, context.Canceled)
	for _, rc := range recs {
		_, _ = rc.Wait()
	}
	runs, err := s.ListRuns(ctx, key)
	require.NoError(t, err)
	require.Len(t, runs, 2, "the cut run and its resume")
	resume := runs[1]
	assert.Equal(t, cut, resume.Resumes)
	assert.Equal(t, executor.RunCancelled, resume.Status)
	assert.Equal(t, executor.CancelledByContext, resume.CancelledBy)
	assert.Equal(t, executor.Counts{Planned: resume.Counts.Planned}, resume.Counts, "the resume started no node")

	requireResumedToItsEnd(t, ctx, s, cut, "the resume cancelled at its start")
}

// Which later record of its key leaves a run cut by the host's shutdown
// to resume: one that started no node and was cancelled, with a code not
// asked for, by its context, a lost lock or the host's cause without a
// code, does; one that started a node, a user's cancel, a host's stop
// with a code of its own that it does not resume (as a user's cancel,
// it ends the key's work: an older run does not come back over it), one
// without a code, a Start of another graph, and one cancelled with a
// code asked for (which is resumed in the cut run's place) do not.
func TestResumeCancelledByWhatTheLaterRunDid(t *testing.T) {
	t.Parallel() // its own schemas
	g := build(t, 30)
	noNode := executor.Counts{Planned: 4}
	for _, tc := range []struct {
		name  string
		later executor.Record // ID, Resumes, Graph, CancelledBy and Counts; cancelled
		want  []string        // the runs resumed: "cut" or "later"
	}{
		{"its resume, cancelled by the context at its start",
			executor.Record{Resumes: "cut", CancelledBy: executor.CancelledByContext, Counts: noNode}, []string{"cut"}},
		{"its resume, cancelled as its start failed",
			executor.Record{Resumes: "cut", CancelledBy: executor.CancelledByDeadline}, []string{"cut"}},
		{"its resume, cancelled by a lost lock with no node started",
			executor.Record{Resumes: "cut", CancelledBy: pgstore.CancelledByLockLost, Counts: executor.Counts{Planned: 4, Skipped: 2}}, []string{"cut"}},
		{"a start of its graph, cancelled by the host at its start",
			executor.Record{CancelledBy: executor.CancelledByHost, Counts: noNode}, []string{"cut"}},
		{"its resume, drained at its start (a shutdown that drains) with no node started",
			executor.Record{Resumes: "cut", CancelledBy: executor.CancelledByDrain, Counts: noNode}, []string{"cut"}},
		{"its resume, cancelled once it had attempted a node",
			executor.Record{Resumes: "cut", CancelledBy: executor.CancelledByContext, Counts: executor.Counts{Planned: 4, Cancelled: 1, Attempts: 1}}, nil},
		{"its resume, cancelled once early cutoff made a node",
			executor.Record{Resumes: "cut", CancelledBy: executor.CancelledByContext, Counts: executor.Counts{Planned: 4, Unchanged: 1}}, nil},
		{"its resume, cancelled by a user at its start",
			executor.Record{Resumes: "cut", CancelledBy: executor.CancelledByCancel, Counts: noNode}, nil},
		{"its resume, cancelled at its start by what its record does not say",
			executor.Record{Resumes: "cut", Counts: noNode}, nil},
		{"a start of another graph, cancelled at its start",
			executor.Record{Graph: executor.Fingerprint(build(t, 60)), Seconds: 60, CancelledBy: executor.CancelledByContext, Counts: noNode}, nil},
		{"a start of its graph, stopped at its start with a code of the host's not asked for",
			executor.Record{CancelledBy: "acme:admin-stop", Counts: noNode}, nil},
		{"its resume, stopped at its start with a code of the host's not asked for",
			executor.Record{Resumes: "cut", CancelledBy: "acme:admin-stop", Counts: noNode}, nil},
		{"its resume, cut by the shutdown at its start",
			executor.Record{Resumes: "cut", CancelledBy: "shutdown", Counts: noNode}, []string{"later"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // its own schema
			s, _ := newStore(t)
			ctx := testenv.Context(t, 60*time.Second)
			key := testenv.UniqueName(t)
			at := time.Now().Add(-time.Minute).Truncate(time.Microsecond)
			fp := executor.Fingerprint(g)
			require.NoError(t, s.PutRun(ctx, executor.Record{ID: "cut", GraphKey: key, Seconds: 30, Graph: fp,
				Status: executor.RunCancelled, CancelledBy: "shutdown", StartedAt: at, EndedAt: at.Add(time.Second),
				Counts: executor.Counts{Planned: 12, Generated: 8, Cancelled: 1, Attempts: 9}}))
			later := tc.later
			later.ID, later.GraphKey, later.Status = "later", key, executor.RunCancelled
			if later.Graph == "" {
				later.Graph, later.Seconds = fp, 30
			}
			later.StartedAt, later.EndedAt = at.Add(2*time.Second), at.Add(3*time.Second)
			require.NoError(t, s.PutRun(ctx, later))

			e := newExecutor(t, s, newProvider().registry())
			recs, err := s.ResumeCancelled(ctx, e, lectureOf, executor.ResumeOptions{}, "shutdown")
			require.NoError(t, err)
			var got []string
			for _, rc := range recs {
				require.Equal(t, pgstore.Resumed, rc.Outcome, "%s: %v", rc.Record.ID, rc.Err)
				_, err := rc.Wait()
				require.NoError(t, err, rc.Record.ID)
				got = append(got, rc.Record.ID)
			}
			assert.Equal(t, tc.want, got)
		})
	}
}
