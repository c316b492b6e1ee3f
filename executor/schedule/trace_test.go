package schedule_test

import (
	"cmp"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor/schedule"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/planner"
)

var update = flag.Bool("update", false, "rewrite testdata/lecture.trace with the machine's decisions")

// call is one call to the machine, as a workflow's history would hold
// it: enough to make the same call again.
type call struct {
	op string        // next, more, succeedAt, succeed, fail, supersede, cancel
	n  graph.Node    // the node settled, or More's like
	at time.Duration // the driver's clock, since t0
}

// recorder makes calls to a machine and records each, with a line of
// the machine's answer (the decisions) in log.
type recorder struct {
	t     testing.TB
	m     *schedule.Machine
	g     *graph.Graph
	t0    time.Time
	calls []call
	log   []string
}

func newRecorder(t testing.TB, p *planner.Plan, cfg schedule.Config, t0 time.Time) *recorder {
	return &recorder{t: t, m: newMachine(t, p, cfg), g: p.Graph, t0: t0}
}

// do makes call c and records it and the answer.
func (r *recorder) do(c call) (schedule.Step, bool) {
	r.t.Helper()
	r.calls = append(r.calls, c)
	now := r.t0.Add(c.at)
	var (
		st   schedule.Step
		ok   bool
		line string
	)
	switch c.op {
	case "next", "more":
		if c.op == "next" {
			st, ok = r.m.Next(now)
			line = "next"
		} else {
			st, ok = r.m.More(now, c.n)
			line = "more " + r.g.NodeID(c.n)
		}
		switch wake, waits := r.m.Wake(); {
		case ok:
			line += fmt.Sprintf(" -> %s key=%q stage=%d", r.g.NodeID(st.Node), st.Key, st.Stage)
		case c.op == "next" && waits:
			line += fmt.Sprintf(" -> none, wake at %v", wake.Sub(r.t0))
		default:
			line += " -> none"
		}
	default:
		var (
			res schedule.Result
			err error
		)
		switch c.op {
		case "succeedAt":
			res, err = r.m.SucceedAt(c.n, now)
		case "succeed":
			res, err = r.m.Succeed(c.n)
		case "fail":
			res, err = r.m.Fail(c.n)
		case "supersede":
			res, err = r.m.Supersede(c.n)
		case "cancel":
			res, err = r.m.Cancel(c.n)
		default:
			r.t.Fatalf("unknown call %q", c.op)
		}
		require.NoError(r.t, err, "%s %s at %v", c.op, r.g.NodeID(c.n), c.at)
		line = fmt.Sprintf("%s %s -> skipped %v, stages finished %v", c.op, r.g.NodeID(c.n), ids(r.g, res.Skipped), res.StagesFinished)
	}
	r.log = append(r.log, fmt.Sprintf("%v %s | running %d, settled %d, done %v", c.at, line, r.m.Running(), r.m.Settled(), r.m.Done()))
	return st, ok
}

// replay makes calls on a new machine for p and cfg, at t0, and returns
// its recorder.
func replay(t testing.TB, p *planner.Plan, cfg schedule.Config, t0 time.Time, calls []call) *recorder {
	t.Helper()
	r := newRecorder(t, p, cfg, t0)
	for _, c := range calls {
		r.do(c)
	}
	return r
}

// traceConfig is the golden trace's configuration: a worker cap, a rate
// on images, a batch window on videos (Dataflow only) and calls of up to
// 3 nodes.
func traceConfig(mode schedule.Mode) schedule.Config {
	return schedule.Config{
		Mode: mode, Workers: 8, MaxBatch: 3,
		Rates:   map[string]schedule.Rate{graph.KindImage: {Starts: 2, Per: 3 * time.Second}},
		Windows: map[string]time.Duration{graph.KindVideo: 4 * time.Second},
	}
}

// traceRun drives a machine over a 120-second lecture with a virtual
// clock, as a workflow would: it starts what the machine lets start, in
// calls of a key's nodes (Next, then More), and moves the clock to the
// next event: a node's end (ties by node), the machine's Wake, or the
// cancel at cancelAt, which cancels every running node (ascending). Each
// node takes a fixed time by node; asset:narration:segment[3]'s first
// attempt fails and is retried after 1 s without telling the machine,
// and asset:image:segment[6] fails. timed settles successes with
// SucceedAt, as the executor does; otherwise with Succeed.
func traceRun(t testing.TB, mode schedule.Mode, timed bool, cancelAt time.Duration) *recorder {
	t.Helper()
	g := build(t, graph.Lecture(), 120)
	p := planOf(t, g)
	r := newRecorder(t, p, traceConfig(mode), t0)
	retried, failed := node(t, g, "asset:narration:segment[3]"), node(t, g, "asset:image:segment[6]")
	took := func(n graph.Node) time.Duration {
		return time.Duration(1000+int(n)*737%4000) * time.Millisecond
	}
	type job struct {
		n        graph.Node
		end      time.Duration
		attempts int
	}
	var (
		now       time.Duration
		running   []job
		cancelled bool
	)
	for steps := 0; !r.m.Done(); steps++ {
		require.Less(t, steps, 10*p.Len(), "the run does not end")
		for {
			st, ok := r.do(call{op: "next", at: now})
			if !ok {
				break
			}
			batch := []graph.Node{st.Node}
			for st.Key != "" {
				more, ok := r.do(call{op: "more", n: st.Node, at: now})
				if !ok {
					break
				}
				batch = append(batch, more.Node)
			}
			for _, n := range batch {
				running = append(running, job{n: n, end: now + took(n), attempts: 1})
			}
		}
		if r.m.Done() {
			break
		}
		// Compared, not subtracted: a difference of durations does not fit
		// an int on a 32-bit GOARCH.
		slices.SortFunc(running, func(a, b job) int {
			if c := cmp.Compare(a.end, b.end); c != 0 {
				return c
			}
			return cmp.Compare(a.n, b.n)
		})
		wake, waits := r.m.Wake()
		switch {
		case !cancelled && cancelAt > 0 && (len(running) == 0 || cancelAt < running[0].end) &&
			(!waits || cancelAt < wake.Sub(t0)):
			now, cancelled = cancelAt, true
			slices.SortFunc(running, func(a, b job) int { return int(a.n - b.n) })
			for _, j := range running {
				r.do(call{op: "cancel", n: j.n, at: now})
			}
			running = nil
		case waits && (len(running) == 0 || wake.Sub(t0) < running[0].end):
			now = wake.Sub(t0)
		default:
			require.NotEmpty(t, running, "stuck at %v: nothing runs, nothing may start, not done", now)
			j := running[0]
			running, now = running[1:], j.end
			switch {
			case j.n == retried && j.attempts == 1:
				j.attempts, j.end = 2, now+time.Second+took(j.n)
				running = append(running, j)
			case j.n == failed:
				r.do(call{op: "fail", n: j.n, at: now})
			case timed:
				r.do(call{op: "succeedAt", n: j.n, at: now})
			default:
				r.do(call{op: "succeed", n: j.n, at: now})
			}
		}
	}
	return r
}

// TestGoldenTrace pins the machine's decisions: the full sequence of its
// answers over a fixed run of the 120-second lecture in both modes, with
// a worker cap, a rate, a batch window, calls of up to MaxBatch nodes, a
// failure, a retry and a cancel, on a virtual clock, against
// testdata/lecture.trace. A workflow's history holds those decisions, so
// a change of that file is a change of the machine's decisions: it must
// be called out (go test -run TestGoldenTrace -update rewrites it).
func TestGoldenTrace(t *testing.T) {
	var b strings.Builder
	for _, mode := range []schedule.Mode{schedule.Dataflow, schedule.Staged} {
		r := traceRun(t, mode, true, 20*time.Second)
		fmt.Fprintf(&b, "# %s\n%s\n", mode, strings.Join(r.log, "\n"))
	}
	got := b.String()
	path := filepath.Join("testdata", "lecture.trace")
	if *update {
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test -run TestGoldenTrace -update to write it")
	// A checkout that turns line ends into CRLF (Git's core.autocrlf on
	// Windows) changes the file, not the decisions.
	if diff := gocmp.Diff(strings.Split(strings.ReplaceAll(string(want), "\r\n", "\n"), "\n"), strings.Split(got, "\n")); diff != "" {
		t.Errorf("the machine's decisions changed (-%s +now); a workflow replaying its history would see them change:\n%s", path, diff)
	}
}
