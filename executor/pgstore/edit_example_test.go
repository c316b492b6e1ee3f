package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/graph"
)

// ExampleStore_EditTx is a host's handler of a user's new narration text,
// kept in the host's own table of the same database: the text and the
// edit commit together, or, on any error, neither does (pgx.BeginTxFunc
// rolls back), so that no saved text is ever left without its edit. The
// transaction is READ COMMITTED, whatever the session's default.
func ExampleStore_EditTx() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://app@127.0.0.1:5432/app?sslmode=disable")
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	store, err := pgstore.New(pool, pgstore.Options{})
	if err != nil {
		log.Fatal(err)
	}
	g, err := graph.Build(graph.Lecture(), 120) // the key's graph, of its newest run
	if err != nil {
		log.Fatal(err)
	}

	var version int64
	err = pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE narrations SET text = $1 WHERE lecture = $2 AND segment = $3`,
			"A shorter text.", "lecture-42", 3); err != nil {
			return err
		}
		// Last, just before the commit: the graph's row stays locked
		// until then.
		version, err = store.EditTx(ctx, tx, g, "lecture-42", "asset:narration:segment[3]")
		return err
	})
	switch {
	case errors.Is(err, executor.ErrInvalidRequest):
		fmt.Println("bad request:", err) // nothing was saved
	case err != nil:
		log.Fatal(err) // nothing was saved: try again
	default:
		// Saved and recorded: start a run to make what the edit made
		// stale. Should this process stop first, the next run makes it.
		fmt.Println("edited at version", version)
	}
}
