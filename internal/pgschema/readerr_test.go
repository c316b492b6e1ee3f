package pgschema_test

import (
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/internal/pgschema"
	"github.com/regengraph/regen/internal/testenv"
)

// TestReadCommittedReadError has read refuse a result that the server
// gave without an error: the server runs the batch whole, its COMMIT
// with it, so the statement is committed, and the error is read's, as
// ReadCommitted's doc says (it said that the transaction was rolled
// back on any error).
func TestReadCommittedReadError(t *testing.T) {
	t.Parallel() // its own schema
	pg := testenv.NewPostgres(t)
	ctx := testenv.Context(t, 60*time.Second)
	table, stored := kvTable(t, ctx, pg, "(1, 'old')")
	mine := errors.New("read refused the result")
	err := pgschema.ReadCommitted(ctx, pg.Pool, "UPDATE "+table+" SET v = 'new' WHERE k = 1 RETURNING v", nil, func(r pgx.BatchResults) error {
		var v string
		if err := r.QueryRow().Scan(&v); err != nil {
			return err
		}
		return mine
	})
	require.ErrorIs(t, err, mine)
	assert.Equal(t, "new", stored(), "the statement was committed, with the batch")
	assert.Equal(t, byte('I'), func() byte {
		conn, err := pg.Pool.Acquire(ctx)
		require.NoError(t, err)
		defer conn.Release()
		return conn.Conn().PgConn().TxStatus()
	}(), "the connection went back in no transaction")
}
