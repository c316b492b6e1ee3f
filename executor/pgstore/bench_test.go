package pgstore_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/internal/testenv"
)

// BenchmarkReadDeps reads the inputs of the 360-segment lecture's
// timeline, 721 assets of a few hundred bytes (each segment's video and
// narration, and the music), as the executor does before it runs the
// node: one Get each (get), or one GetMany (getmany).
func BenchmarkReadDeps(b *testing.B) {
	pg := testenv.NewPostgres(b)
	s, err := pgstore.New(pg.Pool, pgstore.Options{Schema: pg.Schema})
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	if err := s.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	refs := make([]string, 2*360+1)
	for i := range refs {
		a := executor.Asset{URL: fmt.Sprintf("https://cdn.example.com/lecture/%d.mp4", i),
			Hash: fmt.Sprintf("%064x", i), Meta: map[string]string{"segment": fmt.Sprint(i / 2)}}
		if refs[i], err = s.Put(ctx, fmt.Sprintf("lecture/node-%d/%064x", i, i), a); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("get", func(b *testing.B) {
		for b.Loop() {
			for _, ref := range refs {
				if _, err := s.Get(ctx, ref); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("getmany", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.GetMany(ctx, refs); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// noop is the cheapest generator: a fixed output with a fixed hash, so
// that a benchmark measures the executor and its stores, not the work.
var noop = executor.GeneratorFunc(func(context.Context, executor.Request) (executor.Asset, error) {
	return executor.Asset{Data: []byte("x"), Hash: "h", Length: graph.SegmentLength}, nil
})

// BenchmarkRun is what a run of the 360-segment lecture (1,083 nodes)
// costs on Postgres, beside the executor's in-memory stores, with no-op
// generators: new runs it from nothing, under a new graph key each time
// (ns/node is the store's and the executor's cost per node); edit runs it
// after one edit of segment 3's narration, every node clean before: the
// latency from an edit to the run's end, which regenerates the narration
// only (its no-op output does not change, so early cutoff keeps the
// rest). On Postgres it also reports the round trips of a run
// (round-trips/run): every statement sent, BEGIN and COMMIT included, a
// batch counting once; pgx's preparation of a statement, once per
// connection in its default query mode, is not counted.
func BenchmarkRun(b *testing.B) {
	g, err := graph.Build(graph.Lecture(), 3600)
	if err != nil {
		b.Fatal(err)
	}
	reg := executor.Registry{}
	for i := range g.Kinds() {
		reg[g.KindName(i)] = noop
	}
	b.Run("memory", func(b *testing.B) {
		benchRun(b, g, func(testing.TB) executor.Options { return executor.Options{Generators: reg} }, nil)
	})
	b.Run("postgres", func(b *testing.B) {
		var trips tripCounter
		benchRun(b, g, func(b testing.TB) executor.Options {
			s := newBenchStore(b, &trips)
			return executor.Options{Generators: reg, States: s, Assets: s, Runs: s}
		}, &trips)
	})
}

// benchRun runs the new and edit benchmarks of BenchmarkRun on the stores
// that opts gives; trips, if not nil, counts their round trips.
func benchRun(b *testing.B, g *graph.Graph, opts func(testing.TB) executor.Options, trips *tripCounter) {
	report := func(b *testing.B, start int64) {
		if trips != nil {
			b.ReportMetric(float64(trips.count()-start)/float64(b.N), "round-trips/run")
		}
	}
	b.Run("new", func(b *testing.B) {
		e := newBenchExecutor(b, opts(b))
		b.ReportAllocs()
		start, i := trips.count(), 0
		for b.Loop() {
			i++
			rep, err := e.Run(b.Context(), executor.RunRequest{GraphKey: fmt.Sprint("new-", i), Graph: g})
			if err != nil || len(rep.Generated) != g.Len() {
				b.Fatalf("run: %v, generated %d of %d nodes", err, len(rep.Generated), g.Len())
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(g.Len()), "ns/node")
		report(b, start)
	})
	b.Run("edit", func(b *testing.B) {
		e := newBenchExecutor(b, opts(b))
		if _, err := e.Run(b.Context(), executor.RunRequest{GraphKey: "lecture", Graph: g}); err != nil {
			b.Fatal(err)
		}
		marks := []dirty.Mark{{ID: "asset:narration:segment[3]", Reason: dirty.ReasonEdited}}
		b.ReportAllocs()
		start := trips.count()
		for b.Loop() {
			rep, err := e.Run(b.Context(), executor.RunRequest{GraphKey: "lecture", Graph: g, Marks: marks})
			if err != nil || len(rep.Generated) != 1 {
				b.Fatalf("run: %v, generated %v", err, rep.Generated)
			}
		}
		report(b, start)
	})
}

// newBenchExecutor returns an executor made with opts, closed when b ends.
func newBenchExecutor(b *testing.B, opts executor.Options) *executor.Executor {
	e, err := executor.New(opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.Close(ctx); err != nil {
			b.Error(err)
		}
	})
	return e
}

// newBenchStore returns a migrated Store in a schema private to b, on a
// pool of its own whose statements trips counts.
func newBenchStore(b testing.TB, trips *tripCounter) *pgstore.Store {
	pg := testenv.NewPostgres(b)
	cfg := pg.Pool.Config()
	cfg.ConnConfig.Tracer = trips
	pool, err := pgxpool.NewWithConfig(b.Context(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close) // before testenv drops the schema
	s, err := pgstore.New(pool, pgstore.Options{Schema: pg.Schema})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Migrate(b.Context()); err != nil {
		b.Fatal(err)
	}
	return s
}

// tripCounter is a pgx tracer that counts round trips: each statement
// sent (Query, Exec, QueryRow, BEGIN and COMMIT among them), and each
// batch once, whatever its statements. It is safe for concurrent use.
type tripCounter struct{ n atomic.Int64 }

// count returns the round trips so far; 0 for a nil counter.
func (c *tripCounter) count() int64 {
	if c == nil {
		return 0
	}
	return c.n.Load()
}

func (c *tripCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.n.Add(1)
	return ctx
}

func (c *tripCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (c *tripCounter) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	c.n.Add(1)
	return ctx
}

func (c *tripCounter) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

func (c *tripCounter) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}
