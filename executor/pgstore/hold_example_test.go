package pgstore_test

import (
	"context"
	"errors"
	"log"
	"net/http"
	"time"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
)

// ExampleGraphLock_Hold starts a run from an HTTP handler under its
// key's lock, and answers at once: the run goes on after the handler
// returns, and Hold unlocks the key once it has ended (or cancels it, if
// the lock is lost first, as another process may then take the key). It
// needs a Postgres server, so it has no Output and is only compiled.
func ExampleGraphLock_Hold() {
	var store *pgstore.Store    // from pgstore.New
	var e *executor.Executor    // from executor.New, on store
	var req executor.RunRequest // the run of "lecture-42"
	start := func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		lock, err := store.TryLockGraph(ctx, req.GraphKey)
		if errors.Is(err, pgstore.ErrGraphLocked) {
			http.Error(w, "being regenerated: try again when it is done", http.StatusConflict)
			return
		} else if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		// Not ctx, which ends when the handler returns: the run's own.
		run, err := e.Start(context.WithoutCancel(ctx), req)
		if err != nil {
			uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			_ = lock.Unlock(uctx) // closes the connection whatever happens
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		held := lock.Hold(run)
		go func() {
			rep, err := run.Wait()
			if err != nil {
				log.Print(err) // errors.Is(err, pgstore.ErrLockLost): cancelled as the lock was lost
			}
			if err := <-held; err != nil {
				log.Print(err) // ErrLockLost: the run may have overlapped another process's
			}
			log.Print(rep.Record.ID, " ", rep.Record.Status)
		}()
		w.WriteHeader(http.StatusAccepted)
	}
	http.HandleFunc("POST /lectures/42/runs", start)
}

// ExampleGraphLock_HoldFor holds a run's lock so that a Postgres restart
// or failover, which the executor's Options.StoreRetry rides out, does
// not cancel the run: once the lock's session ends, the lock is taken
// again on a new session within Retake, and the run goes on. It is
// cancelled with lock-lost only if another process took the key
// meanwhile, or Retake passes. It needs a Postgres server, so it has no
// Output and is only compiled.
func ExampleGraphLock_HoldFor() {
	var store *pgstore.Store    // from pgstore.New
	var e *executor.Executor    // from executor.New, on store, with StoreRetry: 30 * time.Second
	var req executor.RunRequest // the run of "lecture-42"
	ctx := context.Background()
	lock, err := store.LockGraph(ctx, req.GraphKey)
	if err != nil {
		log.Fatal(err)
	}
	run, err := e.Start(ctx, req)
	if err != nil {
		uctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_ = lock.Unlock(uctx)
		log.Fatal(err)
	}
	held := lock.HoldFor(run, pgstore.HoldOptions{Retake: 30 * time.Second})
	if _, err := run.Wait(); err != nil {
		log.Print(err) // errors.Is(err, pgstore.ErrLockLost): the re-take failed
	}
	if err := <-held; err != nil {
		log.Print(err) // ErrLockLost: the run may have overlapped another process's
	}
}
