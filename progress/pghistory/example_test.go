package pghistory_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/pghistory"
	"github.com/regengraph/regen/progress/redisstream"
)

// Example keeps every event of every run in Postgres beside the live
// Redis stream: a browser that resumes after Redis trimmed or expired a
// run's stream gets the missing events from the archive. It needs
// Postgres and Redis servers, so it has no Output and is only compiled.
func Example() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://app@127.0.0.1:5432/app?sslmode=disable")
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	hist, err := pghistory.New(pool, pghistory.Options{Schema: "regen"})
	if err != nil {
		log.Fatal(err)
	}
	if err := hist.Migrate(ctx); err != nil { // idempotent; safe from many processes at once
		log.Fatal(err)
	}

	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer client.Close()
	stream, err := redisstream.New(client, redisstream.Options{History: hist, FinishedTTL: time.Hour})
	if err != nil {
		log.Fatal(err)
	}
	defer stream.Close()

	// The executor's sink: the archive, and the live stream behind a
	// buffer, so that a Redis outage never slows nor fails a run.
	sink := progress.NewFanout(
		progress.NewArchive(hist),
		progress.NewBuffered(stream, progress.BufferedOptions{Logger: slog.Default()}),
	)
	_ = sink // executor.Options{Sink: sink, ...}; serve stream with progress/sse
}

// ExampleHistory_Prune is a host's periodic clean-up: runs that appended
// nothing for a week go, while runs that go on are kept.
func ExampleHistory_Prune() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://app@127.0.0.1:5432/app?sslmode=disable")
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	hist, err := pghistory.New(pool, pghistory.Options{})
	if err != nil {
		log.Fatal(err)
	}

	// The user deleted a lecture: its runs' events go at once.
	if _, err := hist.DeleteRun(ctx, "run-41"); err != nil {
		log.Fatal(err)
	}
	// Then, say nightly:
	n, err := hist.Prune(ctx, 7*24*time.Hour)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("deleted %d events\n", n)
}

// ExampleNew shows the checks New makes without touching the database:
// a schema name that is not a plain lowercase identifier is refused with
// a message that says what is allowed.
func ExampleNew() {
	pool, err := pgxpool.New(context.Background(), "postgres://app@127.0.0.1:5432/app?sslmode=disable")
	if err != nil { // parses the URL only: pgxpool connects lazily
		log.Fatal(err)
	}
	defer pool.Close()
	_, err = pghistory.New(pool, pghistory.Options{Schema: "Progress-Events"})
	fmt.Println(err)
	// Output:
	// pghistory: invalid schema name "Progress-Events": want 1 to 63 lowercase ASCII letters, digits and underscores, starting with a letter or an underscore, and not starting with "pg_" (reserved by Postgres) nor information_schema (the system schemas)
}
