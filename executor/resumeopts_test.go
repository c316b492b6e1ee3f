package executor_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
)

// Resume and RerunFailed took no options: the run they started was
// credited to the resumed run's TriggeredBy (the audit page named the
// user who started the first run, not the one who pressed "retry"), its
// Reason and ID could not be given. ResumeOptions gives them; without it,
// the defaults are as before.
func TestResumeOptions(t *testing.T) {
	for _, tc := range []struct {
		name   string
		rerun  bool
		opts   []executor.ResumeOptions
		wantBy string
		wantRe string // the Reason; "" for the default
		wantID string // "" for a random one
	}{
		{name: "resume, defaults", wantBy: "user:alice"},
		{name: "resume, all given", opts: []executor.ResumeOptions{{RunID: "retry-1", TriggeredBy: "user:bob", Reason: "retry button"}},
			wantBy: "user:bob", wantRe: "retry button", wantID: "retry-1"},
		{name: "resume, who only", opts: []executor.ResumeOptions{{TriggeredBy: "user:bob"}}, wantBy: "user:bob"},
		{name: "rerun, defaults", rerun: true, wantBy: "user:alice"},
		{name: "rerun, all given", rerun: true, opts: []executor.ResumeOptions{{RunID: "retry-2", TriggeredBy: "user:carol", Reason: "fix images"}},
			wantBy: "user:carol", wantRe: "fix images", wantID: "retry-2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, 30)
				l.set("asset:image:segment[1]", fail(errors.New("provider down")))
				e := l.executor(executor.Options{Kinds: map[string]executor.KindOptions{
					"asset:image": {Retry: executor.RetryPolicy{MaxAttempts: 1}},
				}})
				ctx := context.Background()
				first, err := e.Run(ctx, executor.RunRequest{GraphKey: "lecture", Graph: l.g, TriggeredBy: "user:alice", Reason: "new lecture"})
				require.Error(t, err)
				l.set("asset:image:segment[1]", nil)
				id := first.Record.ID
				var r *executor.Run
				wantRe := "resume of run " + id
				if tc.rerun {
					r, err = e.RerunFailed(ctx, l.g, id, tc.opts...)
					wantRe = "rerun of the failed nodes of run " + id
				} else {
					r, err = e.Resume(ctx, l.g, id, tc.opts...)
				}
				require.NoError(t, err)
				rep, err := r.Wait()
				require.NoError(t, err)
				if tc.wantRe != "" {
					wantRe = tc.wantRe
				}
				rec, err := l.runs.GetRun(ctx, r.ID())
				require.NoError(t, err)
				assert.Equal(t, tc.wantBy, rec.TriggeredBy)
				assert.Equal(t, wantRe, rec.Reason)
				if tc.wantID != "" {
					assert.Equal(t, tc.wantID, r.ID())
				}
				assert.NotEqual(t, id, r.ID())
				assert.Contains(t, rep.Generated, "asset:image:segment[1]")
				l.requireAllClean()
			})
		})
	}
}

// More than one ResumeOptions, or a RunID that is taken, is refused, and
// nothing runs.
func TestResumeOptionsRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		e := l.executor(executor.Options{})
		ctx := context.Background()
		first, err := e.Run(ctx, executor.RunRequest{GraphKey: "lecture", Graph: l.g})
		require.NoError(t, err)
		id := first.Record.ID
		_, err = e.Resume(ctx, l.g, id, executor.ResumeOptions{}, executor.ResumeOptions{})
		require.ErrorIs(t, err, executor.ErrInvalidRequest)
		assert.ErrorContains(t, err, "2 ResumeOptions given: give at most one")
		_, err = e.RerunFailed(ctx, l.g, id, executor.ResumeOptions{RunID: id})
		require.ErrorIs(t, err, executor.ErrInvalidRequest)
		assert.ErrorContains(t, err, "is taken")
		runs, err := l.runs.ListRuns(ctx, "lecture")
		require.NoError(t, err)
		assert.Len(t, runs, 1)
	})
}

// A refusal of a ResumeOptions field named RunRequest's field of the same
// name ("RunRequest.RunID ... is taken", "RunRequest.TriggeredBy ... is
// not valid UTF-8"), which the caller of Resume or RerunFailed never
// built: it names the ResumeOptions field the caller gave.
func TestResumeOptionsRefusalsNameTheirField(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		e := l.executor(executor.Options{})
		ctx := context.Background()
		first, err := e.Run(ctx, executor.RunRequest{GraphKey: "lecture", Graph: l.g})
		require.NoError(t, err)
		id := first.Record.ID
		for _, tc := range []struct {
			name  string
			opts  executor.ResumeOptions
			field string
		}{
			{"a taken RunID", executor.ResumeOptions{RunID: id}, "ResumeOptions.RunID"},
			{"a RunID with NUL", executor.ResumeOptions{RunID: "a\x00b"}, "ResumeOptions.RunID"},
			{"a TriggeredBy with NUL", executor.ResumeOptions{TriggeredBy: "user\x00"}, "ResumeOptions.TriggeredBy"},
			{"a Reason not UTF-8", executor.ResumeOptions{Reason: "\xff"}, "ResumeOptions.Reason"},
		} {
			for _, rerun := range []bool{false, true} {
				if rerun {
					_, err = e.RerunFailed(ctx, l.g, id, tc.opts)
				} else {
					_, err = e.Resume(ctx, l.g, id, tc.opts)
				}
				require.ErrorIs(t, err, executor.ErrInvalidRequest, "%s, rerun=%v", tc.name, rerun)
				assert.ErrorContains(t, err, tc.field, "%s, rerun=%v", tc.name, rerun)
				assert.NotContains(t, err.Error(), "RunRequest", "%s, rerun=%v", tc.name, rerun)
			}
		}
		runs, err := l.runs.ListRuns(ctx, "lecture")
		require.NoError(t, err)
		assert.Len(t, runs, 1)
	})
}

// A ResumeOptions.RunID taken by a run going on in the executor is
// refused naming ResumeOptions.RunID, not RunRequest.RunID.
func TestResumeOptionsLiveRunIDNamesTheField(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		e := l.executor(executor.Options{})
		ctx := context.Background()
		first, err := e.Run(ctx, executor.RunRequest{GraphKey: "lecture", Graph: l.g})
		require.NoError(t, err)
		live, err := e.Start(ctx, executor.RunRequest{GraphKey: "other", Graph: l.g, RunID: "live-1"})
		require.NoError(t, err)
		_, err = e.Resume(ctx, l.g, first.Record.ID, executor.ResumeOptions{RunID: "live-1"})
		require.ErrorIs(t, err, executor.ErrInvalidRequest)
		assert.ErrorContains(t, err, "ResumeOptions.RunID")
		assert.NotContains(t, err.Error(), "RunRequest")
		_, err = live.Wait()
		require.NoError(t, err)
	})
}
