package pgstore_test

import (
	"encoding/base64"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
)

// A cursor whose start ListRunsPage could not have made was taken: one
// before Postgres's first timestamp (4714 BC) failed the page's query
// with "timestamp out of range", a store error (a 500 of a host that
// serves pages, examples/service, for a client's bad ?after=); one
// further down (the least int64) overflowed the driver's encoding into a
// time past every record, an empty last page. A start in another
// spelling than the cursor's own ("+5", "-0", "05"), or Go's zero time
// (which a cursor spells "-"), was taken too. Each is now refused with a
// *PageError, by ListRunsPage and LatestRuns alike, before any SQL.
func TestRunsPageRefusesACursorItDidNotMake(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := t.Context()
	require.NoError(t, s.PutRun(ctx, executor.Record{ID: "a", GraphKey: "g", Seconds: 10, Status: executor.RunSucceeded, StartedAt: time.Now()}))
	id := base64.RawURLEncoding.EncodeToString([]byte("a"))
	for _, start := range []string{
		"-210866803200000001",  // a microsecond before Postgres's first timestamp
		"-9223372036854775808", // the least int64
		"+5", "-0", "05", "",
		"-62135596800000000", // Go's zero time
	} {
		cursor := "r1." + start + "." + id
		t.Run(cursor, func(t *testing.T) {
			for name, read := range map[string]func() ([]executor.Record, string, error){
				"ListRunsPage": func() ([]executor.Record, string, error) { return s.ListRunsPage(ctx, "g", cursor, 10) },
				"LatestRuns":   func() ([]executor.Record, string, error) { return s.LatestRuns(ctx, "g", cursor, 10) },
			} {
				page, next, err := read()
				var pe *pgstore.PageError
				require.ErrorAs(t, err, &pe, "%s", name)
				assert.Equal(t, "cursor", pe.Field, name)
				assert.ErrorIs(t, err, executor.ErrInvalidRequest, name)
				assert.Nil(t, page, name)
				assert.Empty(t, next, name)
			}
		})
	}
	// The first timestamp of Postgres is a start that a cursor may hold.
	page, _, err := s.ListRunsPage(ctx, "g", "r1.-210866803200000000."+id, 10)
	require.NoError(t, err)
	assert.Len(t, page, 1)
}
