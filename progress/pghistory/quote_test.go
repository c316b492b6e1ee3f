package pghistory_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/pghistory"
	"github.com/regengraph/regen/progress/sinktest"
)

// A host's run IDs may be long, up to MaxRunIDBytes. The executor quotes
// at most 64 bytes of a run ID in its errors, with the length; the
// History's errors quoted it whole, so that a failed append of a run with
// a 1,200-byte ID said "pghistory: append run "<1,200 bytes>" ...". They
// now quote it as the executor does. The pool has no server here, so
// every call fails in the driver.
func TestLongRunIDsAreCutInErrors(t *testing.T) {
	t.Parallel()
	pool, err := pgxpool.New(context.Background(), "postgres://nobody@127.0.0.1:1/none?sslmode=disable")
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	h, err := pghistory.New(pool, pghistory.Options{})
	require.NoError(t, err)
	ctx := t.Context()
	run := strings.Repeat("r", pghistory.MaxRunIDBytes-20) + "-" + sinktest.RunID(t)[:19]
	run = run[:pghistory.MaxRunIDBytes]
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"Append", func() error { return h.Append(ctx, sinktest.Events(run, 1, 3)...) }},
		{"Append one", func() error { return h.Append(ctx, sinktest.Events(run, 1, 1)...) }},
		{"Append of runs", func() error {
			return h.Append(ctx, append(sinktest.Events(run, 1, 1), sinktest.Events("other", 1, 1)...)...)
		}},
		{"Replay", func() error { return h.Replay(ctx, run, 0, func(progress.Event) error { return nil }) }},
		{"LastEvent", func() error { _, _, err := h.LastEvent(ctx, run); return err }},
		{"DeleteRun", func() error { _, err := h.DeleteRun(ctx, run); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			require.Error(t, err)
			msg := err.Error()
			assert.NotContains(t, msg, run[:200], "the run ID is cut")
			assert.Contains(t, msg, fmt.Sprintf("(%d bytes)", len(run)), "the run ID's length is given")
			assert.Less(t, len(msg), 700, "%s", msg)
		})
	}
}
