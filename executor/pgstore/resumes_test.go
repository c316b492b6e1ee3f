package pgstore_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/internal/fake"
	"github.com/regengraph/regen/internal/testgraph"
)

// An embedder's crash recovery resumed a run at every start: nothing in
// the records said that a run had been resumed, but the new run's default
// Reason, which a host's ResumeOptions.Reason replaces. On Postgres too,
// the record of a run that RerunFailed or Resume started now names the
// run it finishes (Record.Resumes), as stored and as the Report says; a
// run that Run started names none, and a resume of a rerun names the
// rerun, its direct predecessor. The runs finished keep their records as
// they ended.
func TestRunRecordsSayWhichRunTheyFinish(t *testing.T) {
	t.Parallel() // its own schema
	s, _ := newStore(t)
	ctx := t.Context()
	g, _, _ := testgraph.Episode(t)
	failing := fake.New(fake.Options{Fail: map[string]bool{"transcript:segment[2]": true}})
	e := newExecutor(t, s, failing.Registry("transcript"))

	first, err := e.Run(ctx, executor.RunRequest{GraphKey: "ep", Graph: g, RunID: "first"})
	require.ErrorIs(t, err, executor.ErrRunFailed)
	assert.Empty(t, first.Record.Resumes, "a run that Run started finishes none")
	r, err := e.RerunFailed(ctx, g, "first", executor.ResumeOptions{RunID: "rerun", Reason: "retry button"})
	require.NoError(t, err)
	rerun, err := r.Wait()
	require.ErrorIs(t, err, executor.ErrRunFailed, "transcript:segment[2] fails for good")
	assert.Equal(t, "first", rerun.Record.Resumes, "Report.Record of the rerun")

	fixed := newExecutor(t, s, fake.New(fake.Options{}).Registry("transcript"))
	r, err = fixed.Resume(ctx, g, "rerun", executor.ResumeOptions{RunID: "resume"})
	require.NoError(t, err)
	resume, err := r.Wait()
	require.NoError(t, err)
	assert.Equal(t, "rerun", resume.Record.Resumes, "Report.Record of the resume of the rerun")

	type got struct {
		ID      string
		Status  executor.RunStatus
		Reason  string
		Resumes string
		Marks   []dirty.Mark
	}
	forced := []dirty.Mark{{ID: "transcript:segment[2]", Reason: dirty.ReasonForced}}
	want := []got{
		{"first", executor.RunFailed, "", "", nil},
		{"rerun", executor.RunFailed, "retry button", "first", forced},
		{"resume", executor.RunSucceeded, "resume of run rerun", "rerun", nil},
	}
	recs, err := s.ListRuns(ctx, "ep")
	require.NoError(t, err)
	var have []got
	for _, rec := range recs {
		have = append(have, got{rec.ID, rec.Status, rec.Reason, rec.Resumes, rec.Marks})
		one, err := s.GetRun(ctx, rec.ID)
		require.NoError(t, err)
		assert.Equal(t, rec.Resumes, one.Resumes, "GetRun(%q)", rec.ID)
	}
	if d := cmp.Diff(want, have); d != "" {
		t.Errorf("ListRuns (-want +got):\n%s", d)
	}
	failed, err := s.RunsByStatus(ctx, executor.RunFailed)
	require.NoError(t, err)
	have = nil
	for _, rec := range failed {
		have = append(have, got{rec.ID, rec.Status, rec.Reason, rec.Resumes, rec.Marks})
	}
	if d := cmp.Diff(want[:2], have); d != "" {
		t.Errorf("RunsByStatus(failed) (-want +got):\n%s", d)
	}
}

// Record.Resumes names a run: PutRun refuses one that no run ID of the
// store can be (longer than MaxRunIDBytes, or not text) with a permanent
// *KeyError, before any SQL, and writes nothing; one of MaxRunIDBytes
// bytes is kept.
func TestPutRunChecksResumes(t *testing.T) {
	t.Parallel() // its own schema
	s, _ := newStore(t)
	ctx := t.Context()
	rec := executor.Record{ID: "r", GraphKey: "g", Status: executor.RunRunning}
	for _, tc := range []struct {
		name    string
		resumes string
		want    error
		notText bool
	}{
		{"too long", strings.Repeat("x", pgstore.MaxRunIDBytes+1), pgstore.ErrKeyTooLong, false},
		{"NUL", "run\x00", pgstore.ErrKeyNotText, true},
		{"not UTF-8", "run\xff", pgstore.ErrKeyNotText, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := rec
			bad.Resumes = tc.resumes
			err := s.PutRun(ctx, bad)
			require.ErrorIs(t, err, tc.want)
			var ke *pgstore.KeyError
			require.ErrorAs(t, err, &ke)
			assert.Equal(t, pgstore.KeyError{Field: "resumed run ID", Key: tc.resumes, Max: pgstore.MaxRunIDBytes, NotText: tc.notText}, *ke)
			var pe *executor.PermanentError
			assert.ErrorAs(t, err, &pe, "wrapped in executor.Permanent, so that the executor does not retry it")
			_, err = s.GetRun(ctx, rec.ID)
			require.True(t, errors.Is(err, executor.ErrNotFound), "a refused PutRun wrote: %v", err)
		})
	}
	rec.Resumes = strings.Repeat("r", pgstore.MaxRunIDBytes)
	require.NoError(t, s.PutRun(ctx, rec))
	got, err := s.GetRun(ctx, rec.ID)
	require.NoError(t, err)
	assert.Equal(t, rec.Resumes, got.Resumes)
}

// A schema of layout 5, which this release has not migrated yet (a
// deployment that starts before its Migrate), has no resumes column: the
// run records' calls say that the store is not migrated, naming the
// column, rather than give a bare driver error; Migrate adds it, and the
// records of before read with no Resumes.
func TestRunsOfLayout5SayNotMigrated(t *testing.T) {
	t.Parallel() // its own schema
	s, pg := newStore(t)
	old := executor.Record{ID: "old", GraphKey: "g", Seconds: 30, Graph: "fingerprint", Status: executor.RunCancelled}
	rec := executor.Record{ID: "r", GraphKey: "g", Seconds: 30, Graph: "fingerprint", Resumes: "old", Status: executor.RunRunning}
	requireRunsNotMigrated(t, s, pg, 5, "resumes", old, rec)
}
