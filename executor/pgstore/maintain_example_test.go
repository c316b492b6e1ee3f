package pgstore_test

import (
	"context"
	"errors"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/progress/pghistory"
)

// ExampleStore_Maintain is the upkeep of every process of a host: at
// start-up and every 10 s or so, it resumes the runs that a dead process
// left running, and those that a shutdown or a lost lock cut short, and
// prunes what is older than a week, the progress events of a pghistory
// History included. Its context is the process's own, which the shutdown
// cancels with a cancel code, so that the runs it cuts are finished by
// another process's next pass. It needs a Postgres server, so it has no
// Output and is only compiled.
func ExampleStore_Maintain() {
	var pool *pgxpool.Pool   // the host's, from pgxpool.New
	var store *pgstore.Store // from pgstore.New(pool, ...), migrated
	var e *executor.Executor // from executor.New, on store
	hist, err := pghistory.New(pool, pghistory.Options{Schema: "regen"})
	if err != nil {
		log.Fatal(err)
	}

	// The process's context, not one bounded for the start-up: it is the
	// context of the runs that Maintain resumes. Nor signal.NotifyContext's,
	// whose cause has no code.
	ctx, stop := context.WithCancelCause(context.Background())
	graphOf := func(rec executor.Record) (*graph.Graph, error) {
		return executor.GraphOf(rec, graph.Options{}, graph.Lecture())
	}
	var resumed int // a metric of the host's
	maintained := make(chan error, 1)
	go func() {
		maintained <- store.Maintain(ctx, e, graphOf, pgstore.MaintainOptions{
			ResumeCodes: []string{"shutdown", pgstore.CancelledByLockLost},
			Retain:      7 * 24 * time.Hour, // longer than the longest run
			Pruners:     []pgstore.Pruner{hist},
			OnPass:      func(p pgstore.Pass) { resumed += p.Count(pgstore.Resumed) },
		})
	}()

	// ... serve, and start every run under its key's lock, until a signal:
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	stop(executor.CancelCode("shutdown", errors.New("service stopping")))
	// Maintain returns once the runs it resumed have ended, cancelled with
	// the code "shutdown", and their keys are unlocked.
	<-maintained
	cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.Close(cctx); err != nil {
		log.Print(err)
	}
	log.Print("runs resumed: ", resumed)
}
