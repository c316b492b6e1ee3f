package pgstore_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
)

// A write whose text fields (not its keys) Postgres cannot hold, a node
// state's LastError or a run record's Error with a NUL byte or invalid
// UTF-8, say, is refused before any SQL with a *TextError wrapping
// ErrNotText, in executor.Permanent, and changes nothing. Postgres
// refused it with SQLSTATE 22021 (or 22P05 in jsonb) however often it
// was sent, and the store returned that as a plain driver error, which
// the executor takes for a passing failure and retries; an asset's Meta
// with invalid UTF-8 was stored with U+FFFD in its place, silently
// changed.
func TestTextNotStorableIsPermanent(t *testing.T) {
	t.Parallel() // a schema of its own
	s, _ := newStore(t)
	ctx := t.Context()
	started := time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)
	rec := executor.Record{ID: "run", GraphKey: "g", Graph: "fingerprint", Status: executor.RunFailed, StartedAt: started,
		Marks: []dirty.Mark{{ID: "script", Reason: dirty.ReasonEdited}}, Failed: []string{"script"}, Error: "failed"}
	require.NoError(t, s.PutRun(ctx, rec))
	st := dirty.State{Status: dirty.StatusClean, Rev: 1, InputHash: "in", OutputHash: "out", AssetRef: "pg:a",
		LastError: "none"}
	_, err := s.Commit(ctx, "g", 0, []executor.Change{{ID: "n", State: st}})
	require.NoError(t, err)
	a := executor.Asset{Data: []byte("data"), URL: "https://x", Hash: "h", Meta: map[string]string{"k": "v"}}
	ref, err := s.Put(ctx, "a", a)
	require.NoError(t, err)

	for _, bad := range []string{"a\x00b", "a\xffb"} {
		for _, tc := range []struct {
			field string
			write func() error
		}{
			{"LastError", func() error {
				bst := st
				bst.LastError = bad
				_, err := s.Commit(ctx, "g", 1, []executor.Change{{ID: "m", State: st}, {ID: "n", State: bst}})
				return err
			}},
			{"InputHash", func() error {
				bst := st
				bst.InputHash = bad
				_, err := s.Commit(ctx, "g", 1, []executor.Change{{ID: "n", State: bst}})
				return err
			}},
			{"AssetRef", func() error {
				bst := st
				bst.AssetRef = bad
				_, err := s.Commit(ctx, "g", 1, []executor.Change{{ID: "n", State: bst}})
				return err
			}},
			{"Error", func() error { r := rec; r.Error = bad; return s.PutRun(ctx, r) }},
			{"TriggeredBy", func() error { r := rec; r.TriggeredBy = bad; return s.PutRun(ctx, r) }},
			{"Graph", func() error { r := rec; r.Graph = bad; return s.PutRun(ctx, r) }},
			{"Failed", func() error { r := rec; r.Failed = []string{"script", bad}; return s.PutRun(ctx, r) }},
			{"Marks", func() error {
				r := rec
				r.Marks = []dirty.Mark{{ID: bad, Reason: dirty.ReasonEdited}}
				return s.PutRun(ctx, r)
			}},
			{"Status", func() error { r := rec; r.Status = executor.RunStatus(bad); return s.PutRun(ctx, r) }},
			{"URL", func() error { b := a; b.URL = bad; _, err := s.Put(ctx, "a", b); return err }},
			{"Meta", func() error {
				b := a
				b.Meta = map[string]string{"k": bad}
				_, err := s.Put(ctx, "a", b)
				return err
			}},
			{"Meta", func() error {
				b := a
				b.Meta = map[string]string{bad: "v"}
				_, err := s.Put(ctx, "a", b)
				return err
			}},
		} {
			err := tc.write()
			require.ErrorIs(t, err, pgstore.ErrNotText, "%s %q", tc.field, bad)
			var te *pgstore.TextError
			require.ErrorAs(t, err, &te, "%s %q", tc.field, bad)
			assert.Contains(t, te.Field, tc.field, "%s %q", tc.field, bad)
			var pe *executor.PermanentError
			require.ErrorAs(t, err, &pe, "%s %q: wrapped in executor.Permanent, so that the executor does not retry it", tc.field, bad)
		}
	}

	// Nothing changed.
	snap, err := s.Load(ctx, "g")
	require.NoError(t, err)
	assert.Equal(t, int64(1), snap.Version)
	assert.Equal(t, map[string]dirty.State{"n": st}, snap.States)
	got, err := s.GetRun(ctx, rec.ID)
	require.NoError(t, err)
	assert.True(t, got.StartedAt.Equal(rec.StartedAt))
	got.StartedAt = rec.StartedAt
	assert.Equal(t, rec, got)
	ga, err := s.Get(ctx, ref)
	require.NoError(t, err)
	assert.Equal(t, a, ga)

	// A mark's reason that has no name is refused for good too.
	r := rec
	r.Marks = []dirty.Mark{{ID: "script"}}
	err = s.PutRun(ctx, r)
	var pe *executor.PermanentError
	require.ErrorAs(t, err, &pe, "a mark without a reason: wrapped in executor.Permanent")
}
