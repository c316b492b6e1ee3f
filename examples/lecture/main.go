// Command lecture generates a lecture with fake generators, edits one
// node and regenerates only what the edit affects.
//
//	go run ./examples/lecture [-duration SECONDS] [-latency DURATION] [-seed N]
//	    [-edit NODEID|none]... [-fail NODEID]... [-flaky RATE]
//	    [-mode dataflow|staged] [-json]
//
// It builds the lecture graph (default 120 s: 12 segments, 39 nodes) and
// runs it through the executor with deterministic fake generators
// (internal/fake) on the executor's embedded in-memory stores:
//
//  1. a first run generates the whole lecture, with a live progress
//     display: a bar per kind, with the run's ETA;
//  2. an edit of segment 3's narration (asset:narration:segment[3]; the
//     last segment's in a lecture shorter than 40 s), or of the nodes
//     given with -edit, followed by a second run that regenerates only
//     what the edit affects: for the default edit the narration, the
//     video of its segment and the timeline;
//  3. a summary table: per run, its status, the nodes generated,
//     unchanged, failed and skipped, the attempts and the duration.
//
// The second run happens only when the first one succeeded: after a
// failure the lecture is not whole, so the second run would not show what
// an edit costs (it would retry the failed nodes as well), and after a
// cancel there is nothing more to do. -edit none skips it too.
//
// The flags:
//
//	-duration SECONDS  the lecture's length, a multiple of 10 up to 86400
//	                   (default 120)
//	-latency DURATION  the median latency of every fake generator (default
//	                   100ms); each attempt's latency is log-normal around it
//	-seed N            seeds the latencies and the flaky failures (default 1)
//	-edit NODEID       a node whose parameters change before the second run;
//	                   repeatable; replaces the default edit; "none" skips the
//	                   second run
//	-fail NODEID       a node whose generator always fails; repeatable
//	-flaky RATE        the probability, from 0 to 1, that an attempt fails
//	                   and is retried (default 0)
//	-mode MODE         dataflow (default) or staged
//	-json              print only a JSON summary on stdout (no display):
//	                   {"runs": [{"status": "succeeded"|"failed"|"cancelled",
//	                   "generated": [ids], "failed": [ids], "skipped": [ids],
//	                   "attempts": N}]}, every list of IDs sorted in
//	                   byte order (segment[10] before segment[2])
//
// A -fail node fails at its first attempt for good (its error is
// permanent); a -flaky failure is retried, up to 5 attempts in all, after
// 10 ms, then 20 ms, 40 ms and 80 ms, so that -flaky does not make the
// example slow. The same flags give the same attempts and the same outcomes, in
// either mode: the fakes draw latencies and failures from the seed and
// the node, never from the scheduling.
//
// Interrupting the command (SIGINT) cancels the run in progress; the
// interrupted nodes are recorded as cancelled. A run interrupted before
// it began is reported as cancelled too, with nothing done.
//
// The exit status is 0 when every run succeeded, 1 when a run failed or
// was cancelled or the output could not be written (a full disk), and 2
// on bad flags, with one line on stderr. -h prints the
// usage, with a line on each flag, on stdout and exits 0.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/internal/errwriter"
	"github.com/regengraph/regen/internal/fake"
	"github.com/regengraph/regen/planner"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// defaultEdit is the node the second run edits when no -edit is given:
// segment 3's narration, or the last segment's in a shorter lecture.
func defaultEdit(g *graph.Graph) string {
	return graph.ID{Kind: graph.KindNarration, Segment: min(3, g.Segments()-1)}.String()
}

// graphKey names the lecture in the stores.
const graphKey = "lecture"

// usage is the synopsis -h prints before the flags.
const usage = `usage: lecture [-duration SECONDS] [-latency DURATION] [-seed N] [-edit NODEID|none]...
    [-fail NODEID]... [-flaky RATE] [-mode dataflow|staged] [-json]

Generates a lecture with fake generators, then edits a node and regenerates
only what the edit affects. The edit run happens only when the first run
succeeded. Exit status: 0 when every run succeeded, 1 when one failed or
was cancelled or the output could not be written, 2 on bad flags.

Flags:
`

type idList []string

func (l *idList) String() string     { return strings.Join(*l, ",") }
func (l *idList) Set(s string) error { *l = append(*l, s); return nil }

// config is the parsed command line.
type config struct {
	g       *graph.Graph
	latency time.Duration
	seed    uint64
	edits   []string // nil: no second run
	fail    map[string]bool
	flaky   float64
	mode    executor.Mode
	json    bool
}

// errHelp asks for the usage text.
var errHelp = errors.New("help requested")

// flags are the raw values of the command line's flags.
type flags struct {
	duration, latency, seed, flaky, mode *string
	edits, fails                         idList
	json                                 *bool
}

// newFlagSet defines the flags, with the usage text -h prints for each.
// Its output is discarded.
func newFlagSet() (*flag.FlagSet, *flags) {
	fs := flag.NewFlagSet("lecture", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f := &flags{}
	f.duration = fs.String("duration", "120", "the lecture's length in `SECONDS`, a multiple of 10 up to 86400")
	f.latency = fs.String("latency", "100ms", "the median `DURATION` of each fake generator call, such as 100ms or 2s")
	f.seed = fs.String("seed", "1", "the seed `N` of the fake latencies and failures, a whole number")
	fs.Var(&f.edits, "edit", "a `NODEID` to edit before the second run (repeatable; default segment 3's narration); none skips that run")
	fs.Var(&f.fails, "fail", "a `NODEID` whose generator always fails (repeatable); the edit run is then skipped")
	f.flaky = fs.String("flaky", "0", "the `RATE`, from 0 to 1, at which attempts fail and are retried")
	f.mode = fs.String("mode", "dataflow", "the executor's `MODE`: dataflow or staged")
	f.json = fs.Bool("json", false, "print only a JSON summary of the runs on stdout, without the live display")
	return fs, f
}

// parse reads the flags. Its errors are one line each.
func parse(args []string) (*config, error) {
	fs, f := newFlagSet()
	duration, latency, seed, flaky, mode, asJSON := f.duration, f.latency, f.seed, f.flaky, f.mode, f.json
	edits, fails := &f.edits, &f.fails
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, errHelp
		}
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q: every input is a flag", fs.Arg(0))
	}
	c := &config{json: *asJSON, fail: map[string]bool{}}
	secs, err := strconv.Atoi(*duration)
	switch {
	case errors.Is(err, strconv.ErrRange) && secs < 0:
		// A whole number, but past what an int holds: say why it is refused.
		return nil, fmt.Errorf("-duration %s: a lecture lasts a positive number of seconds, a multiple of %d up to %d",
			*duration, graph.SegmentSeconds, graph.DefaultMaxSeconds)
	case errors.Is(err, strconv.ErrRange):
		return nil, fmt.Errorf("-duration %s: the longest lecture is %d s (%d segments)",
			*duration, graph.DefaultMaxSeconds, graph.DefaultMaxSeconds/graph.SegmentSeconds)
	case err != nil:
		return nil, fmt.Errorf("-duration %q is not a whole number of seconds", *duration)
	}
	if secs > graph.DefaultMaxSeconds && secs%graph.SegmentSeconds == 0 {
		// The graph's message names Options.MaxSeconds, which no flag sets.
		return nil, fmt.Errorf("-duration %d: the longest lecture is %d s (%d segments)",
			secs, graph.DefaultMaxSeconds, graph.DefaultMaxSeconds/graph.SegmentSeconds)
	}
	if c.g, err = graph.Build(graph.Lecture(), secs); err != nil {
		return nil, fmt.Errorf("-duration: %w", err)
	}
	if c.latency, err = time.ParseDuration(*latency); err != nil || c.latency < 0 {
		return nil, fmt.Errorf("-latency %q: want a duration of 0 or more, such as 100ms or 2s", *latency)
	}
	if c.seed, err = strconv.ParseUint(*seed, 10, 64); err != nil {
		return nil, fmt.Errorf("-seed %q: want a whole number from 0 to %d", *seed, uint64(math.MaxUint64))
	}
	if c.flaky, err = strconv.ParseFloat(*flaky, 64); err != nil || !(c.flaky >= 0 && c.flaky <= 1) {
		return nil, fmt.Errorf("-flaky %q: want a probability from 0 to 1, such as 0.3", *flaky)
	}
	switch *mode {
	case "dataflow":
		c.mode = executor.Dataflow
	case "staged":
		c.mode = executor.Staged
	default:
		return nil, fmt.Errorf("-mode %q: want dataflow or staged", *mode)
	}
	other := slices.IndexFunc(*edits, func(s string) bool { return s != "none" })
	switch {
	case len(*edits) == 0:
		c.edits = []string{defaultEdit(c.g)}
	case slices.Contains(*edits, "none") && other >= 0:
		return nil, fmt.Errorf("-edit none skips the second run: it cannot be combined with -edit %s", (*edits)[other])
	case other < 0:
		c.edits = nil // -edit none
	default:
		for _, id := range *edits {
			n, err := c.g.Lookup(id)
			if err != nil {
				return nil, fmt.Errorf("-edit: %w", err)
			}
			if id = c.g.NodeID(n); !slices.Contains(c.edits, id) {
				c.edits = append(c.edits, id)
			}
		}
	}
	for _, id := range *fails {
		n, err := c.g.Lookup(id)
		if err != nil {
			return nil, fmt.Errorf("-fail: %w", err)
		}
		c.fail[c.g.NodeID(n)] = true
	}
	return c, nil
}

// runJSON is one run in the -json output. Its field order and names are
// a contract.
type runJSON struct {
	Status    executor.RunStatus `json:"status"`
	Generated []string           `json:"generated"`
	Failed    []string           `json:"failed"`
	Skipped   []string           `json:"skipped"`
	Attempts  int                `json:"attempts"`
}

// outcome is one run's result, for the summary.
type outcome struct {
	title string
	rep   *executor.Report
	err   error
}

// run is the command; it returns the exit status. SIGINT cancels it; a
// second one, while the run winds down, kills the process at once.
func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	context.AfterFunc(ctx, stop)
	return runContext(ctx, args, stdout, stderr)
}

// runContext is run with a context whose end cancels the run in
// progress.
func runContext(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c, err := parse(args)
	if errors.Is(err, errHelp) {
		fmt.Fprint(stdout, usage)
		fs, _ := newFlagSet()
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return 0
	}
	if err != nil {
		// One line, whatever the input: the flag package names an
		// unknown flag unquoted, and a name may hold a newline.
		fmt.Fprintf(stderr, "lecture: %s\n", strings.ReplaceAll(err.Error(), "\n", `\n`))
		return 2
	}

	f := fake.New(fake.Options{Seed: c.seed, Default: c.latency, Sigma: 0.5, Fail: c.fail, Flaky: c.flaky})
	// The text output is written as the runs go; a write that fails (a
	// full disk) is remembered, and makes the command fail at the end.
	out := errwriter.New(stdout)
	if !c.json {
		stdout = out
	}
	var disp *display
	opts := executor.Options{Generators: f.Registry(), Mode: c.mode,
		Default: executor.KindOptions{Estimate: c.latency, Retry: executor.RetryPolicy{
			MaxAttempts: 5, InitialInterval: 10 * time.Millisecond, MaxInterval: 100 * time.Millisecond}}}
	if !c.json {
		disp = newDisplay(stdout)
		opts.Sink = disp
	}
	e, err := executor.New(opts)
	if err != nil {
		fmt.Fprintf(stderr, "lecture: %v\n", err)
		return 1
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = e.Close(cctx)
	}()

	if !c.json {
		segments := fmt.Sprintf("%d segments", c.g.Segments())
		if c.g.Segments() == 1 {
			segments = "1 segment"
		}
		fmt.Fprintf(stdout, "Lecture of %d s: %s, %d nodes; fake latency %v (median); %s mode; seed %d\n\n",
			c.g.Segments()*graph.SegmentSeconds, segments, c.g.Len(), c.latency, c.mode, c.seed)
	}
	var runs []outcome
	do := func(title string, marks []dirty.Mark) bool {
		o := generate(ctx, e, c.g, disp, len(runs)+1, title, marks)
		runs = append(runs, o)
		if o.rep == nil {
			fmt.Fprintf(stderr, "lecture: %v\n", o.err)
			return false
		}
		if disp != nil {
			describe(stdout, len(runs), o)
		}
		return o.err == nil
	}
	if do("new lecture", nil) && c.edits != nil {
		marks := make([]dirty.Mark, len(c.edits))
		for i, id := range c.edits {
			marks[i] = dirty.Mark{ID: id, Reason: dirty.ReasonEdited}
		}
		if disp != nil {
			fmt.Fprintf(stdout, "\nEditing %s: new parameters, so a new revision.\n\n", strings.Join(c.edits, ", "))
		}
		do("edit "+strings.Join(c.edits, ", "), marks)
	} else if disp != nil && c.edits != nil {
		fmt.Fprintf(stdout, "\nThe edit run is skipped: run 1 did not succeed.\n")
	}

	if c.json {
		if err := writeJSON(stdout, runs); err != nil {
			fmt.Fprintf(stderr, "lecture: write: %v\n", err)
			return 1
		}
	} else {
		writeTable(stdout, runs)
		if err := out.Err(); err != nil {
			fmt.Fprintf(stderr, "lecture: write: %v\n", err)
			return 1
		}
	}
	for _, o := range runs {
		if o.err != nil {
			return 1
		}
	}
	return 0
}

// generate runs the lecture once, with the display's view when there is
// one.
func generate(ctx context.Context, e *executor.Executor, g *graph.Graph, disp *display, number int,
	title string, marks []dirty.Mark) outcome {
	req := executor.RunRequest{GraphKey: graphKey, Graph: g, Marks: marks,
		TriggeredBy: "examples/lecture", Reason: title, RunID: fmt.Sprintf("run-%d", number)}
	if disp != nil {
		p, err := plan(ctx, e.States(), g, marks)
		switch {
		case err == nil:
			fmt.Fprintf(disp.w, "Run %d: %s\n", number, title)
			disp.begin(fmt.Sprintf("run %d", number), p)
			stop := disp.start()
			defer stop()
		case ctx.Err() == nil:
			return outcome{title: title, err: err}
		} // interrupted: the executor says so
	}
	rep, err := e.Run(ctx, req)
	if rep == nil && errors.Is(err, executor.ErrCancelled) {
		// Interrupted before the executor began the run: nothing ran, and
		// the run is reported as cancelled, as one interrupted later is.
		now := time.Now()
		rep = &executor.Report{Record: executor.Record{ID: req.RunID, GraphKey: graphKey,
			TriggeredBy: req.TriggeredBy, Reason: title, Status: executor.RunCancelled, StartedAt: now, EndedAt: now}}
	}
	return outcome{title: title, rep: rep, err: err}
}

// plan computes the plan the executor is about to run, so the display
// knows how many nodes of each kind to expect. The executor does the same
// from the same stored states and marks.
func plan(ctx context.Context, states executor.StateStore, g *graph.Graph, marks []dirty.Mark) (*planner.Plan, error) {
	snap, err := states.Load(ctx, graphKey)
	if err != nil {
		return nil, fmt.Errorf("load the lecture's states: %w", err)
	}
	view := dirty.NewStates(g.Len())
	for id, st := range snap.States {
		if n, err := g.Lookup(id); err == nil {
			view.Set(n, st)
		}
	}
	set, err := dirty.Compute(g, dirty.Input{States: view, Marks: marks})
	if err != nil {
		return nil, err
	}
	return planner.New(set), nil
}

// describe says what a run did, below its display, which has shown the
// failures as they came.
func describe(w io.Writer, number int, o outcome) {
	list := func(ids []string) string {
		if len(ids) > 6 {
			return fmt.Sprintf("%d nodes", len(ids))
		}
		return strings.Join(ids, ", ")
	}
	r := o.rep
	fmt.Fprintf(w, "Run %d %s in %v", number, r.Record.Status, round(r.Record.EndedAt.Sub(r.Record.StartedAt)))
	if len(r.Generated) > 0 {
		fmt.Fprintf(w, "; regenerated %s", list(r.Generated))
	}
	if len(r.Skipped) > 0 {
		fmt.Fprintf(w, "; skipped %s", list(r.Skipped))
	}
	fmt.Fprintln(w, ".")
}

// writeTable prints the closing summary.
func writeTable(w io.Writer, runs []outcome) {
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tWHAT\tSTATUS\tGENERATED\tUNCHANGED\tFAILED\tSKIPPED\tATTEMPTS\tDURATION")
	for i, o := range runs {
		if o.rep == nil {
			fmt.Fprintf(tw, "%d\t%s\tnot started\t\t\t\t\t\t\n", i+1, o.title)
			continue
		}
		r := o.rep.Record
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%v\n", i+1, o.title, r.Status, r.Counts.Generated,
			r.Counts.Unchanged, r.Counts.Failed, r.Counts.Skipped, r.Counts.Attempts, round(r.EndedAt.Sub(r.StartedAt)))
	}
	_ = tw.Flush()
}

// file returns the *os.File that w writes to, unwrapping an errWriter,
// so that the display can ask whether it is a terminal, and how wide.
func file(w io.Writer) (*os.File, bool) {
	if e, ok := w.(*errwriter.Writer); ok {
		w = e.Unwrap()
	}
	f, ok := w.(*os.File)
	return f, ok
}

// writeJSON prints the -json object. Runs that could not start are left
// out; their error went to stderr.
func writeJSON(w io.Writer, runs []outcome) error {
	out := struct {
		Runs []runJSON `json:"runs"`
	}{Runs: []runJSON{}}
	sorted := func(ids []string) []string {
		out := append([]string{}, ids...) // never null in JSON
		slices.Sort(out)
		return out
	}
	for _, o := range runs {
		if o.rep == nil {
			continue
		}
		r := o.rep
		out.Runs = append(out.Runs, runJSON{Status: r.Record.Status, Generated: sorted(r.Generated),
			Failed: sorted(r.Failed), Skipped: sorted(r.Skipped), Attempts: r.Record.Counts.Attempts})
	}
	b, err := json.Marshal(out)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
