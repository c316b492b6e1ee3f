// Command progress runs a lecture and serves its progress to browsers as
// Server-Sent Events, the way a host backend would.
//
//	go run ./examples/progress [-addr 127.0.0.1:8080] [-duration 120] [-latency 300ms] [-linger 1m]
//	    [-prefix regen-example:]
//
// It publishes the run's events to Redis Streams when the Redis at
// REGEN_REDIS_URL (default redis://127.0.0.1:6379/0) answers, one stream
// per run under the key -prefix + "run:{runId}" (by default
// "regen-example:run:demo-<nanoseconds>", which expires a minute after
// -linger ends), with an in-memory archive beside it and a Buffered wrapper so that a Redis outage
// never fails the run; otherwise to the in-memory progress.Memory, with
// the same archive for the events its ring no longer holds. It
// serves GET /runs/{run}/events with progress/sse, prints a curl command
// that watches the run, follows the stream itself with the Go SSE client,
// and checks that it received every event once, in order. After the run
// it keeps serving for -linger (replay works: a late curl gets the whole
// run), then exits; Ctrl-C exits at once. Ctrl-C during the run cancels
// it: the command's client still receives the run.cancelled that ends the
// stream, and the command exits without lingering. -addr must be a
// loopback HOST:PORT: the example serves this machine only. Exit status:
// 0 when the run succeeded and the stream was complete, 1 otherwise (or
// when the output could not be written), 2 on bad flags, with one line
// on stderr; -h prints the usage and the flags
// on stdout and exits 0.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/internal/errwriter"
	"github.com/regengraph/regen/internal/fake"
	"github.com/regengraph/regen/internal/loopback"
	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/redisstream"
	"github.com/regengraph/regen/progress/sse"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	// After the first signal, a second one kills the process at once.
	context.AfterFunc(ctx, stop)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// backend is where the events go and where the SSE handler reads them.
type backend struct {
	name   string
	sink   progress.Sink
	source progress.Source
	close  func(context.Context)
}

// usage is the synopsis -h prints before the flags.
const usage = `usage: progress [-addr HOST:PORT] [-duration SECONDS] [-latency DURATION] [-linger DURATION]
    [-prefix PREFIX]

Runs a lecture with fake generators, serves its events as Server-Sent
Events at /runs/{run}/events and follows them with the Go SSE client.
Events go to Redis Streams at REGEN_REDIS_URL (default
redis://127.0.0.1:6379/0) when it answers, to memory otherwise.

Flags:
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("progress", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	addr := fs.String("addr", "127.0.0.1:8080", "address to serve on (loopback)")
	seconds := fs.Int("duration", 120, "lecture length in seconds, a multiple of 10")
	latency := fs.Duration("latency", 300*time.Millisecond, "median fake generator latency")
	linger := fs.Duration("linger", time.Minute, "how long to keep serving after the run")
	prefix := fs.String("prefix", defaultPrefix, `prefix of the Redis keys: a run's stream is PREFIX + "run:{runId}"`)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return 0
		}
		// One line, whatever the input: the flag package names an
		// unknown flag unquoted, and a name may hold a newline.
		fmt.Fprintf(stderr, "progress: %s\n", strings.ReplaceAll(err.Error(), "\n", `\n`))
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "progress: unexpected argument %q: every input is a flag\n", fs.Arg(0))
		return 2
	}
	if *seconds > graph.DefaultMaxSeconds && *seconds%graph.SegmentSeconds == 0 {
		// The graph's message names Options.MaxSeconds, which no flag sets.
		fmt.Fprintf(stderr, "progress: -duration %d: the longest lecture is %d s (%d segments)\n",
			*seconds, graph.DefaultMaxSeconds, graph.DefaultMaxSeconds/graph.SegmentSeconds)
		return 2
	}
	g, err := graph.Build(graph.Lecture(), *seconds)
	if err != nil {
		fmt.Fprintf(stderr, "progress: -duration: %v\n", err)
		return 2
	}
	if *latency < 0 || *linger < 0 {
		fmt.Fprintln(stderr, "progress: -latency and -linger must not be negative")
		return 2
	}
	if *prefix == "" || strings.Contains(*prefix, redisstream.RunIDPlaceholder) {
		fmt.Fprintf(stderr, "progress: -prefix %q: want a non-empty prefix of the example's own, without %s, such as %q\n",
			*prefix, redisstream.RunIDPlaceholder, defaultPrefix)
		return 2
	}
	if err := loopback.Check(*addr); err != nil {
		fmt.Fprintf(stderr, "progress: %v\n", err)
		return 2
	}
	// A write that fails (a full disk) is remembered: the command then
	// fails, since nobody saw the curl command or the checks.
	out := errwriter.New(stdout)
	stdout = out
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(stderr, "progress: listen on %s: %v\n", *addr, err)
		return 1
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	be := pickBackend(ctx, logger, *prefix, *linger+time.Minute)
	defer closeBackend(be)

	h, err := sse.NewHandler(be.source, sse.HandlerOptions{
		Authorize:    func(r *http.Request) (string, error) { return r.PathValue("run"), nil },
		CloseOnFinal: true,
		Logger:       logger,
	})
	if err != nil {
		fmt.Fprintf(stderr, "progress: %v\n", err)
		return 1
	}
	mux := http.NewServeMux()
	mux.Handle("GET /runs/{run}/events", h)
	// Streams never end on their own (a client may wait for a run that is
	// not here), so stopping cancels the requests' context rather than
	// wait for them.
	reqCtx, stopRequests := context.WithCancel(context.Background())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return reqCtx }}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		stopRequests()
		sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-served
	}()

	runID := fmt.Sprintf("demo-%d", time.Now().UnixNano())
	url := fmt.Sprintf("http://%s/runs/%s/events", ln.Addr(), runID)
	fmt.Fprintf(stdout, "Events go to %s.\nWatch the run with:\n\n  curl -N %s\n\n", be.name, url)

	// Follow the stream as a browser would, from the first event.
	type followed struct {
		events []progress.Event
		err    error
	}
	follow := make(chan followed, 1)
	// Not ended by Ctrl-C: the run's cancellation ends its stream with a
	// run.cancelled, which the client still receives (see followGrace).
	fctx, cancelFollow := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancelFollow()
	go func() {
		var f followed
		c := sse.NewClient(url, sse.ClientOptions{Retry: 100 * time.Millisecond})
		// Follow returns nil once the run's final event is taken, rather
		// than wait to reconnect; a 204 before it (no event of the run
		// within reach) is an error wrapping sse.ErrNoFinalEvent.
		f.err = c.Follow(fctx, func(e progress.Event) error {
			f.events = append(f.events, e)
			return nil
		})
		follow <- f
	}()

	f := fake.New(fake.Options{Seed: 1, Default: *latency, Sigma: 0.5})
	e, err := executor.New(executor.Options{Generators: f.Registry(), Sink: be.sink, Logger: logger})
	if err != nil {
		fmt.Fprintf(stderr, "progress: %v\n", err)
		return 1
	}
	rep, runErr := e.Run(ctx, executor.RunRequest{GraphKey: "lecture", Graph: g, RunID: runID,
		TriggeredBy: "examples/progress"})
	if runErr != nil && rep == nil {
		fmt.Fprintf(stderr, "progress: %v\n", runErr)
		return 1
	}
	fmt.Fprintf(stdout, "Run %s %s: %d nodes generated.\n", runID, rep.Record.Status, len(rep.Generated))

	var got followed
	if ctx.Err() == nil {
		got = <-follow // within fctx's bound, however far behind the client is
	} else {
		// Interrupted: the client gets a moment for the final event.
		grace := time.NewTimer(followGrace)
		select {
		case got = <-follow:
		case <-grace.C: // the final event did not come: say so below
			cancelFollow()
			got = <-follow
		}
		grace.Stop()
	}
	code := 0
	if runErr != nil {
		code = 1
	}
	if err := checkStream(got.events); err != nil || got.err != nil {
		fmt.Fprintf(stdout, "The SSE client's stream is not right: %v %v\n", err, got.err)
		code = 1
	} else {
		fmt.Fprintf(stdout, "The SSE client received all %d events, seq 1 to %d, in order, ending with %s.\n",
			len(got.events), len(got.events), got.events[len(got.events)-1].Type)
	}
	if err := out.Err(); err != nil {
		// Nobody was told where to watch the run: no point lingering.
		fmt.Fprintf(stderr, "progress: write: %v\n", err)
		return 1
	}
	if *linger > 0 && ctx.Err() == nil {
		fmt.Fprintf(stdout, "Serving for %v more; a late curl replays the whole run. Ctrl-C to stop.\n", *linger)
		t := time.NewTimer(*linger)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		if err := out.Err(); err != nil {
			fmt.Fprintf(stderr, "progress: write: %v\n", err)
			return 1
		}
	}
	return code
}

// defaultPrefix is -prefix's default: the Redis is shared, so the
// example's keys say whose they are.
const defaultPrefix = "regen-example:"

// shutdownGrace bounds the wait for the requests in progress when the
// command stops.
var shutdownGrace = 5 * time.Second

// followGrace bounds the wait, once a run interrupted by Ctrl-C has
// ended, for the command's own client to receive its final event.
var followGrace = 10 * time.Second

// checkStream checks a whole run: seq 1..N and a final event last.
func checkStream(events []progress.Event) error {
	if len(events) == 0 {
		return errors.New("no events")
	}
	for i, e := range events {
		if e.Seq != uint64(i+1) {
			return fmt.Errorf("event %d has seq %d", i+1, e.Seq)
		}
	}
	if last := events[len(events)-1]; !last.Type.Final() {
		return fmt.Errorf("the last event is %s, not a final one", last.Type)
	}
	return nil
}

// closeBackend closes be within shutdownGrace: during a Redis outage its
// Buffered would otherwise retry the events still queued for good.
func closeBackend(be backend) {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	be.close(ctx)
}

// pickBackend uses Redis when it answers, and memory otherwise. A run's
// stream is the key prefix + "run:{runId}"; a finished run's expires
// after ttl.
func pickBackend(ctx context.Context, logger *slog.Logger, prefix string, ttl time.Duration) backend {
	url := os.Getenv("REGEN_REDIS_URL")
	if url == "" {
		url = "redis://127.0.0.1:6379/0"
	}
	opts, err := redis.ParseURL(url)
	if err == nil {
		client := redis.NewClient(opts)
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err = client.Ping(pctx).Err()
		cancel()
		if err == nil {
			hist := progress.NewMemoryHistory()
			key := prefix + "run:" + redisstream.RunIDPlaceholder
			stream, serr := redisstream.New(client, redisstream.Options{KeyTemplate: key, History: hist,
				FinishedTTL: ttl, Logger: logger})
			if serr == nil {
				buffered := progress.NewBuffered(stream, progress.BufferedOptions{Logger: logger})
				return backend{
					name:   "Redis Streams at " + opts.Addr + " (key " + key + ", archived in memory)",
					sink:   progress.NewFanout(progress.NewArchive(hist), buffered),
					source: stream,
					close: func(ctx context.Context) {
						_ = buffered.Close(ctx)
						_ = stream.Close()
						_ = client.Close()
					},
				}
			}
			err = serr
		}
		_ = client.Close()
	}
	logger.Warn("Redis unavailable; using the in-memory progress stream", "url", url, "err", err)
	// The stream keeps a run's latest 10,000 events; the archive keeps
	// them all, so that a reader behind, or a late one, gets the whole run.
	hist := progress.NewMemoryHistory()
	mem := progress.NewMemory(progress.MemoryOptions{History: hist})
	return backend{name: "the in-memory stream (Redis did not answer; archived in memory)",
		sink: progress.NewFanout(progress.NewArchive(hist), mem), source: mem,
		close: func(context.Context) {}}
}
