package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/graph"
)

// Example wires the Postgres stores into an executor: the host owns the
// pool, migrates once at start-up, and passes the one Store as all three
// stores. It needs a Postgres server, so it has no Output and is only
// compiled.
func Example() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://app@127.0.0.1:5432/app?sslmode=disable")
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()

	store, err := pgstore.New(pool, pgstore.Options{Schema: "regen"})
	if err != nil {
		log.Fatal(err)
	}
	if err := store.Migrate(ctx); err != nil { // idempotent; safe from many processes at once
		log.Fatal(err)
	}

	// The host's generators; this one makes placeholder assets.
	gen := executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
		a := executor.Asset{Data: []byte("asset of " + req.NodeID)}
		if req.ID.Kind == graph.KindNarration {
			a.Length = 10 * time.Second // the narration fits its segment
		}
		return a, nil
	})
	reg := executor.Registry{}
	for _, k := range graph.Lecture().Kinds {
		reg[k.Name] = gen
	}
	e, err := executor.New(executor.Options{
		Generators: reg,
		States:     store,
		Assets:     store,
		Runs:       store,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		// Bounded: Close waits for every generator call, and one whose
		// generator ignores its context would hold it forever.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := e.Close(ctx); err != nil {
			log.Print(err)
		}
	}()

	g, err := graph.Build(graph.Lecture(), 120)
	if err != nil {
		log.Fatal(err)
	}
	// A new lecture: every node is generated.
	if _, err := e.Run(ctx, executor.RunRequest{GraphKey: "lecture-42", Graph: g}); err != nil {
		log.Fatal(err)
	}
	// An edit: only what depends on the narration of segment 3 runs again.
	rep, err := e.Run(ctx, executor.RunRequest{GraphKey: "lecture-42", Graph: g,
		Marks: []dirty.Mark{{ID: "asset:narration:segment[3]", Reason: dirty.ReasonEdited}}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(rep.Generated)
}

// ExampleStore_Commit shows the compare-and-swap: a commit at a stale
// version applies nothing and returns a *executor.ConflictError.
func ExampleStore_Commit() {
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

	snap, err := store.Load(ctx, "lecture-42")
	if err != nil {
		log.Fatal(err)
	}
	st := snap.States["script"]
	st.Status = dirty.StatusDirty
	_, err = store.Commit(ctx, "lecture-42", snap.Version, []executor.Change{{ID: "script", State: st}})
	var conflict *executor.ConflictError
	switch {
	case errors.As(err, &conflict):
		fmt.Printf("someone committed version %d first: load again and retry\n", conflict.Actual)
	case err != nil:
		log.Fatal(err)
	}
}

// ExampleStore_PruneAssets is a host's periodic clean-up: regenerating a
// node leaves its old asset behind, and deleted graphs leave theirs. An
// age longer than the longest run makes it safe while runs go on.
func ExampleStore_PruneAssets() {
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

	// The user deleted a lecture: its states and run records go at once.
	if _, err := store.DeleteGraph(ctx, "lecture-41"); err != nil {
		log.Fatal(err)
	}
	// Then, say nightly: assets nobody refers to, and old run records.
	assets, err := store.PruneAssets(ctx, 6*time.Hour)
	if err != nil {
		log.Fatal(err)
	}
	runs, err := store.PruneRuns(ctx, 90*24*time.Hour)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("deleted %d assets and %d run records\n", assets, runs)
}

// ExampleStore_TryLockGraph runs a user's edit of a lecture under the
// key's lock, so that no other process of the host runs the key at the
// same time: a second request, from this process or another, is refused
// while this one runs. The run is cancelled if the lock is lost (its
// connection dropped), as another process may then take the key.
func ExampleStore_TryLockGraph() {
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
	e, err := executor.New(executor.Options{Generators: executor.Registry{ /* ... */ },
		States: store, Assets: store, Runs: store})
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		// Bounded: Close waits for every generator call, and one whose
		// generator ignores its context would hold it forever.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := e.Close(ctx); err != nil {
			log.Print(err)
		}
	}()
	g, err := graph.Build(graph.Lecture(), 120)
	if err != nil {
		log.Fatal(err)
	}

	lock, err := store.TryLockGraph(ctx, "lecture-42")
	if errors.Is(err, pgstore.ErrGraphLocked) {
		fmt.Println("lecture-42 is being regenerated: try again when it is done")
		return
	} else if err != nil {
		log.Fatal(err)
	}
	defer func() { // bounded: on a dead network the server cannot be told
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = lock.Unlock(uctx) // closes the connection whatever happens
	}()
	run, err := e.Start(ctx, executor.RunRequest{GraphKey: "lecture-42", Graph: g,
		Marks: []dirty.Mark{{ID: "asset:narration:segment[3]", Reason: dirty.ReasonEdited}}})
	if err != nil {
		log.Fatal(err)
	}
	// Hold cancels the run if the lock is lost (another process may then
	// take the key), and unlocks the key once the run has ended.
	held := lock.Hold(run)
	rep, err := run.Wait()
	if err != nil {
		log.Print(err)
	}
	if err := <-held; err != nil {
		log.Print(err) // lost before the end: the run may have overlapped another
	}
	fmt.Println(rep.Record.Status)
}

// ExampleStore_RunsByStatus is a host's start-up recovery by hand: it
// resumes the runs that a process which stopped left recorded as
// running, on every key. TryLockGraph is refused while a live process
// runs the key, which is skipped; the record is read again under the
// lock, as another process may have resumed the run meanwhile.
// ([Store.ResumeLeftRunning] does this in one call: see its example.)
func ExampleStore_RunsByStatus() {
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
	e, err := executor.New(executor.Options{Generators: executor.Registry{ /* ... */ },
		States: store, Assets: store, Runs: store})
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		// Bounded: Close waits for every generator call, and one whose
		// generator ignores its context would hold it forever.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := e.Close(ctx); err != nil {
			log.Print(err)
		}
	}()

	running, err := store.RunsByStatus(ctx, executor.RunRunning)
	if err != nil {
		log.Fatal(err)
	}
	for _, rec := range running {
		lock, err := store.TryLockGraph(ctx, rec.GraphKey)
		if errors.Is(err, pgstore.ErrGraphLocked) {
			continue // a live process runs it
		}
		if err != nil {
			log.Fatal(err)
		}
		if rec, err = store.GetRun(ctx, rec.ID); err == nil && rec.Status == executor.RunRunning {
			// The graph the run had, from the host's templates: rec.Graph
			// is its fingerprint, rec.Seconds its duration.
			g, err := executor.GraphOf(rec, graph.Options{}, graph.Lecture())
			if err != nil {
				log.Fatal(err)
			}
			// The lock's session may have ended since it was taken, and
			// another process taken the lock: ask the server, just before.
			if err := lock.Check(ctx); err != nil {
				log.Print(err)
			} else if run, err := e.Resume(ctx, g, rec.ID); err == nil {
				held := lock.Hold(run) // unlocks the key once the run has ended
				rep, _ := run.Wait()
				if err := <-held; err != nil {
					log.Print(err)
				}
				fmt.Println(rec.ID, "resumed by", rep.Record.ID)
				continue
			} else {
				log.Print(err)
			}
		}
		if err := lock.Unlock(ctx); err != nil {
			log.Print(err)
		}
	}
}

// ExampleStore_ResumeLeftRunning is a host's start-up recovery in one
// call: it resumes, each under its key's lock, the runs that a process
// which stopped left recorded as running, skips those that a live process
// runs or that another process resumed meanwhile, and abandons those
// whose graph no template of the host builds any more. Replicas that
// start at once may all call it: each run is resumed by one of them.
func ExampleStore_ResumeLeftRunning() {
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
	e, err := executor.New(executor.Options{Generators: executor.Registry{ /* ... */ },
		States: store, Assets: store, Runs: store})
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		// Bounded: Close waits for every generator call, and one whose
		// generator ignores its context would hold it forever.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := e.Close(ctx); err != nil {
			log.Print(err)
		}
	}()

	// The graph each run had, from the host's templates: rec.Graph is its
	// fingerprint, rec.Seconds its duration. graphOf runs under the key's
	// lock: a run whose graph no template builds any more is abandoned
	// there, recorded as interrupted, not resumed, so that it is not
	// listed again.
	graphOf := func(rec executor.Record) (*graph.Graph, error) {
		g, err := executor.GraphOf(rec, graph.Options{}, graph.Lecture())
		if err != nil {
			if aerr := e.Abandon(ctx, rec.ID, "no template builds its graph"); aerr != nil {
				log.Print(aerr)
			}
		}
		return g, err
	}
	recs, err := store.ResumeLeftRunning(ctx, e, graphOf, executor.ResumeOptions{TriggeredBy: "start-up recovery"})
	if err != nil {
		log.Print(err) // the runs listed so far are in recs all the same
	}
	for _, r := range recs {
		switch r.Outcome {
		case pgstore.Resumed:
			fmt.Println(r.Record.ID, "resumed by", r.Run.ID())
		case pgstore.NotResumed:
			log.Printf("run %s not resumed: %v", r.Record.ID, r.Err)
		}
	}
	// The resumed runs go on; each unlocks its key when it ends.
	for _, r := range recs {
		if _, err := r.Wait(); err != nil && r.Outcome == pgstore.Resumed {
			log.Print(err)
		}
	}
}
