package pgstore_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/internal/fake"
	"github.com/regengraph/regen/internal/testenv"
)

// A run whose graph key or run ID is longer than the store takes is bad
// input, as the executor's own refusals are: Run and Start return an
// error wrapping executor.ErrInvalidRequest, which a host answers 400 by
// the executor's documented mapping (it answered 500), with the
// *KeyError that says which key, how long, and what is allowed. Nothing
// is recorded, and no node is generated.
func TestRunWithAKeyTooLongIsAnInvalidRequest(t *testing.T) {
	t.Parallel() // each test has its own schema
	s, _ := newStore(t)
	gen := fake.New(fake.Options{})
	e := newExecutor(t, s, gen.Registry())
	g := lecture(t)
	key := testenv.UniqueName(t)
	longKey := strings.Repeat("k", pgstore.MaxGraphKeyBytes+1)
	longID := strings.Repeat("r", pgstore.MaxRunIDBytes+1)

	for _, tc := range []struct {
		name  string
		req   executor.RunRequest
		field string
	}{
		{"graph key", executor.RunRequest{GraphKey: longKey, Graph: g, RunID: "r-long-key"}, "graph key"},
		{"run ID", executor.RunRequest{GraphKey: key, Graph: g, RunID: longID}, "run ID"},
	} {
		for _, call := range []struct {
			name string
			run  func(executor.RunRequest) error
		}{
			{"Run", func(req executor.RunRequest) error {
				_, err := e.Run(t.Context(), req)
				return err
			}},
			{"Start", func(req executor.RunRequest) error {
				r, err := e.Start(t.Context(), req)
				if r != nil {
					_, werr := r.Wait()
					return werr
				}
				return err
			}},
		} {
			t.Run(tc.name+"/"+call.name, func(t *testing.T) {
				err := call.run(tc.req)
				require.ErrorIs(t, err, executor.ErrInvalidRequest, "a host answers it 400")
				require.ErrorIs(t, err, pgstore.ErrKeyTooLong)
				var ke *pgstore.KeyError
				require.ErrorAs(t, err, &ke)
				assert.Equal(t, tc.field, ke.Field)
				assert.Contains(t, err.Error(), "want at most 1200 bytes")
			})
		}
	}
	_, err := s.GetRun(t.Context(), "r-long-key")
	require.ErrorIs(t, err, executor.ErrNotFound, "no record of the refused run")
	runs, err := s.ListRuns(t.Context(), key)
	require.NoError(t, err)
	assert.Empty(t, runs, "no record of the refused run")
	snap, err := s.Load(t.Context(), key)
	require.NoError(t, err)
	assert.Empty(t, snap.States, "no state committed")
	assert.Zero(t, gen.Calls(), "no node generated")
}
