package pgstore_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
)

// An asset larger than a Postgres message carries in the pool's query
// mode was sent, and failed in the driver ("message body too large") or
// the server ("invalid memory alloc request size", after half a minute),
// with an error that the executor took as passing and tried again. Put
// refuses one over the mode's limit before any SQL, with an
// *AssetSizeError in executor.Permanent. (Data is allocated, never
// written: it costs no memory. An asset of the limit itself, put and read
// back with Get and GetMany in each mode, takes seconds and gigabytes:
// it was checked once, by hand.)
func TestPutRefusesAnAssetLargerThanAMessage(t *testing.T) {
	t.Parallel() // a schema of its own
	_, pg := newStore(t)
	for _, tc := range []struct {
		mode pgx.QueryExecMode
		max  int
	}{
		{pgx.QueryExecModeCacheStatement, pgstore.MaxAssetBytes},
		{pgx.QueryExecModeSimpleProtocol, pgstore.MaxAssetTextBytes},
		{pgx.QueryExecModeExec, pgstore.MaxAssetTextBytes},
	} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			trips := &tripCounter{}
			s := poolStore(t, pg.Schema, func(c *pgxpool.Config) {
				c.ConnConfig.DefaultQueryExecMode = tc.mode
				c.ConnConfig.Tracer = trips
			})
			meta := map[string]string{"voice": "ada"} // {"voice":"ada"}, 15 bytes
			for _, a := range []executor.Asset{
				{Data: make([]byte, tc.max+1)},
				{Data: make([]byte, tc.max-15-3+1), URL: "u", Hash: "hh", Meta: meta},
			} {
				_, err := s.Put(t.Context(), "big", a)
				var se *pgstore.AssetSizeError
				require.ErrorAs(t, err, &se)
				assert.ErrorIs(t, err, pgstore.ErrAssetTooLarge)
				var pe *executor.PermanentError
				assert.ErrorAs(t, err, &pe, "wrapped in executor.Permanent, so that the executor does not retry it")
				assert.Equal(t, pgstore.AssetSizeError{Key: "big", Size: tc.max + 1, Max: tc.max}, *se)
				assert.Contains(t, err.Error(), fmt.Sprintf("takes %d bytes", tc.max+1))
			}
			assert.Zero(t, trips.count(), "statements sent")
		})
	}
}

// Meta goes as jsonb, which holds at most 256 MiB less one byte (its
// header, 8 bytes a key and value, and their bytes): a larger Meta, within
// MaxAssetBytes, was sent and refused by the server ("total size of jsonb
// object elements exceeds the maximum", SQLSTATE 54000), with an error
// that the executor took as passing and tried again. Put refuses it before
// any SQL, with an *AssetSizeError that says Meta. (The limit itself was
// checked against the server by hand: a Meta at MaxAssetMetaBytes is
// stored, one byte more is refused.)
func TestPutRefusesAMetaLargerThanJSONBHolds(t *testing.T) {
	t.Parallel() // a schema of its own
	_, pg := newStore(t)
	trips := &tripCounter{}
	s := poolStore(t, pg.Schema, func(c *pgxpool.Config) { c.ConnConfig.Tracer = trips })
	// The jsonb of {"n": "", "m": v}: 4 + 2×8 + 2 + len(v) bytes.
	meta := map[string]string{"n": "", "m": strings.Repeat("a", pgstore.MaxAssetMetaBytes-4-16-2+1)}
	_, err := s.Put(t.Context(), "big", executor.Asset{URL: "https://example.com/a.mp4", Meta: meta})
	var se *pgstore.AssetSizeError
	require.ErrorAs(t, err, &se)
	assert.ErrorIs(t, err, pgstore.ErrAssetTooLarge)
	var pe *executor.PermanentError
	assert.ErrorAs(t, err, &pe, "wrapped in executor.Permanent, so that the executor does not retry it")
	assert.Equal(t, pgstore.AssetSizeError{Key: "big", Size: pgstore.MaxAssetMetaBytes + 1, Max: pgstore.MaxAssetMetaBytes, Meta: true}, *se)
	assert.Contains(t, err.Error(), fmt.Sprintf("Meta takes %d bytes as jsonb", pgstore.MaxAssetMetaBytes+1))
	assert.Zero(t, trips.count(), "statements sent")
}
