package pgstore_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/internal/testenv"
)

// In a rolling deploy a newer release may write a run record whose marks
// hold a dirty.Reason that this release does not know. GetRun, ListRuns
// and RunsByStatus failed on such a record, and so ResumeLeftRunning
// failed for every run of every key. Now the record reads with the marks
// this release knows (the others left out of Record.Marks), the rest of
// the record as stored; ResumeLeftRunning resumes it as any other, and
// the PutRun that records it as interrupted keeps, in the table, the
// marks that it could not read, for the newer release (after the others).
func TestRecordWithAnUnknownMarkReasonReads(t *testing.T) {
	t.Parallel() // its own schema
	s, pg := newStore(t)
	ctx := testenv.Context(t, 60*time.Second)
	g := build(t, 30)
	name := testenv.UniqueName(t)
	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	leftRunning(t, ctx, s, "newer", name+"-a", g, start)
	leftRunning(t, ctx, s, "older", name+"-b", g, start.Add(time.Second))
	stored := `[{"id": "script", "reason": "edited"}, {"id": "asset:narration:segment[1]", "reason": "teleported"}, ` +
		`{"id": "timeline", "reason": "forced"}]`
	_, err := pg.Pool.Exec(ctx, `UPDATE "`+pg.Schema+`".runs SET marks = $1::jsonb WHERE id = 'newer'`, stored)
	require.NoError(t, err)
	known := []dirty.Mark{{ID: "script", Reason: dirty.ReasonEdited}, {ID: "timeline", Reason: dirty.ReasonForced}}

	rec, err := s.GetRun(ctx, "newer")
	require.NoError(t, err, "GetRun")
	if d := cmp.Diff(known, rec.Marks); d != "" {
		t.Errorf("GetRun's Marks (-want +got):\n%s", d)
	}
	assert.Equal(t, executor.RunRunning, rec.Status)
	list, err := s.ListRuns(ctx, name+"-a")
	require.NoError(t, err, "ListRuns")
	require.Len(t, list, 1)
	assert.Equal(t, rec, list[0])
	running, err := s.RunsByStatus(ctx, executor.RunRunning)
	require.NoError(t, err, "RunsByStatus")
	require.Len(t, running, 2)
	assert.Equal(t, rec, running[0])

	e := newExecutor(t, s, newProvider().registry())
	recs, err := s.ResumeLeftRunning(ctx, e, lectureOf, executor.ResumeOptions{})
	require.NoError(t, err, "ResumeLeftRunning")
	require.Len(t, recs, 2)
	for _, r := range recs {
		require.Equal(t, pgstore.Resumed, r.Outcome, "run %s: %v", r.Record.ID, r.Err)
		_, err := r.Wait()
		require.NoError(t, err)
	}
	rec, err = s.GetRun(ctx, "newer")
	require.NoError(t, err)
	assert.Equal(t, executor.RunInterrupted, rec.Status)
	if d := cmp.Diff(known, rec.Marks); d != "" {
		t.Errorf("the interrupted record's Marks (-want +got):\n%s", d)
	}
	var marks string
	require.NoError(t, pg.Pool.QueryRow(ctx, `SELECT marks::text FROM "`+pg.Schema+`".runs WHERE id = 'newer'`).Scan(&marks))
	assert.JSONEq(t, `[{"id": "script", "reason": "edited"}, {"id": "timeline", "reason": "forced"}, `+
		`{"id": "asset:narration:segment[1]", "reason": "teleported"}]`, marks,
		"the stored marks, the unknown one kept after those the record put back")
}

// A record replaced by one whose marks are others keeps, of its stored
// marks, those whose reason this release cannot read, after the new
// ones; a record whose marks are all known is replaced whole.
func TestPutRunKeepsTheMarksItCouldNotRead(t *testing.T) {
	t.Parallel() // its own schema
	s, pg := newStore(t)
	ctx := t.Context()
	rec := executor.Record{ID: "r", GraphKey: "g", Seconds: 30, Status: executor.RunRunning,
		Marks: []dirty.Mark{{ID: "script", Reason: dirty.ReasonEdited}}}
	require.NoError(t, s.PutRun(ctx, rec))
	_, err := pg.Pool.Exec(ctx, `UPDATE "`+pg.Schema+`".runs SET marks = '[{"id": "a", "reason": "teleported"}, {"id": "script", "reason": "edited"}]' WHERE id = 'r'`)
	require.NoError(t, err)
	rec.Marks = []dirty.Mark{{ID: "timeline", Reason: dirty.ReasonForced}}
	require.NoError(t, s.PutRun(ctx, rec))
	var marks string
	require.NoError(t, pg.Pool.QueryRow(ctx, `SELECT marks::text FROM "`+pg.Schema+`".runs WHERE id = 'r'`).Scan(&marks))
	assert.JSONEq(t, `[{"id": "timeline", "reason": "forced"}, {"id": "a", "reason": "teleported"}]`, marks)
	got, err := s.GetRun(ctx, "r")
	require.NoError(t, err)
	assert.Equal(t, rec.Marks, got.Marks)
}

// A record whose stored marks are not an array (JSON null, or an
// object, written by hand or by another tool) is replaced whole by
// PutRun: keeping its unknown marks looked for them with
// jsonb_array_elements, which fails on anything but an array, and so
// PutRun failed, every time, for a record that GetRun reads (null, as
// no marks), and the executor could not record such a run's end. Of an
// array, PutRun keeps only what a newer release's mark can be, an object
// with a text reason: an element that is not one was kept too, and so
// the record, put back, could not be read any more.
func TestPutRunReplacesMarksThatAreNotAnArray(t *testing.T) {
	t.Parallel() // its own schema
	s, pg := newStore(t)
	ctx := t.Context()
	for _, stored := range []string{`null`, `{"id": "script", "reason": "edited"}`, `"edited"`} {
		t.Run(stored, func(t *testing.T) {
			rec := executor.Record{ID: testenv.UniqueName(t), GraphKey: "g", Seconds: 30, Status: executor.RunRunning}
			require.NoError(t, s.PutRun(ctx, rec))
			_, err := pg.Pool.Exec(ctx, `UPDATE "`+pg.Schema+`".runs SET marks = $1::jsonb WHERE id = $2`, stored, rec.ID)
			require.NoError(t, err)
			rec.Status = executor.RunInterrupted
			rec.Marks = []dirty.Mark{{ID: "timeline", Reason: dirty.ReasonForced}}
			require.NoError(t, s.PutRun(ctx, rec), "PutRun over marks %s", stored)
			got, err := s.GetRun(ctx, rec.ID)
			require.NoError(t, err)
			assert.Equal(t, rec.Marks, got.Marks)
			assert.Equal(t, executor.RunInterrupted, got.Status)
		})
	}
	t.Run("elements that are no mark", func(t *testing.T) {
		rec := executor.Record{ID: testenv.UniqueName(t), GraphKey: "g", Seconds: 30, Status: executor.RunRunning}
		require.NoError(t, s.PutRun(ctx, rec))
		_, err := pg.Pool.Exec(ctx, `UPDATE "`+pg.Schema+`".runs SET marks = $1::jsonb WHERE id = $2`,
			`[{"id": "a", "reason": "teleported"}, "x", 7, null, {"id": "b"}, {"id": "c", "reason": 7}]`, rec.ID)
		require.NoError(t, err)
		rec.Marks = []dirty.Mark{{ID: "timeline", Reason: dirty.ReasonForced}}
		require.NoError(t, s.PutRun(ctx, rec))
		var marks string
		require.NoError(t, pg.Pool.QueryRow(ctx, `SELECT marks::text FROM "`+pg.Schema+`".runs WHERE id = $1`, rec.ID).Scan(&marks))
		assert.JSONEq(t, `[{"id": "timeline", "reason": "forced"}, {"id": "a", "reason": "teleported"}]`, marks)
		got, err := s.GetRun(ctx, rec.ID)
		require.NoError(t, err, "GetRun of the record put back")
		assert.Equal(t, rec.Marks, got.Marks)
	})
}
