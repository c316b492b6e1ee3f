package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/internal/fake"
	"github.com/regengraph/regen/internal/testgraph"
	"github.com/regengraph/regen/progress"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fast makes the fake generators quick enough for tests.
var fast = []string{"-latency", "1ms"}

type result struct {
	code           int
	stdout, stderr string
}

func runArgs(t *testing.T, args ...string) result {
	t.Helper()
	return runCtx(t, context.Background(), args...)
}

func runCtx(t *testing.T, ctx context.Context, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := runContext(ctx, args, &stdout, &stderr)
	return result{code, stdout.String(), stderr.String()}
}

// summary is the -json output, decoded strictly.
type summary struct {
	Runs []struct {
		Status    string   `json:"status"`
		Generated []string `json:"generated"`
		Failed    []string `json:"failed"`
		Skipped   []string `json:"skipped"`
		Attempts  int      `json:"attempts"`
	} `json:"runs"`
}

// runJSONArgs runs with -json and checks the output's shape: only the
// contract's keys, no null lists, every list sorted, nothing on stderr.
func runJSONArgs(t *testing.T, wantCode int, args ...string) summary {
	t.Helper()
	r := runArgs(t, append(append([]string{"-json"}, fast...), args...)...)
	require.Equal(t, wantCode, r.code, "exit status; stderr: %s", r.stderr)
	require.Empty(t, r.stderr)
	requireJSONShape(t, r.stdout)
	var s summary
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&s))
	return s
}

func requireJSONShape(t *testing.T, out string) {
	t.Helper()
	require.True(t, strings.HasSuffix(out, "}\n") && strings.Count(out, "\n") == 1, "one JSON line: %q", out)
	var top map[string][]map[string]json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(out), &top), "stdout is only the JSON object: %q", out)
	require.Len(t, top, 1, "only the runs key")
	runs, ok := top["runs"]
	require.True(t, ok, "a runs key")
	for i, r := range runs {
		keys := make([]string, 0, len(r))
		for k := range r {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		require.Equal(t, []string{"attempts", "failed", "generated", "skipped", "status"}, keys, "run %d", i)
		for _, k := range []string{"generated", "failed", "skipped"} {
			var ids []string
			require.NotEqual(t, "null", string(r[k]), "run %d: %s is null, want []", i, k)
			require.NoError(t, json.Unmarshal(r[k], &ids))
			require.True(t, slices.IsSorted(ids), "run %d: %s is not sorted: %v", i, k, ids)
		}
	}
}

func without(ids []string, drop ...string) []string {
	return slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return slices.Contains(drop, id) })
}

// A lecture shorter than 40 s has no segment 3: the default edit is the
// last segment's narration, and both runs succeed.
func TestDefaultEditOfAShortLecture(t *testing.T) {
	for _, tc := range []struct {
		secs int
		edit string
	}{
		{10, "asset:narration:segment[0]"},
		{30, "asset:narration:segment[2]"},
		{40, "asset:narration:segment[3]"},
	} {
		t.Run(fmt.Sprint(tc.secs), func(t *testing.T) {
			s := runJSONArgs(t, 0, "-duration", fmt.Sprint(tc.secs))
			require.Len(t, s.Runs, 2)
			assert.Equal(t, "succeeded", s.Runs[1].Status)
			video := strings.Replace(tc.edit, "narration", "video", 1)
			assert.Equal(t, []string{tc.edit, video, "timeline"}, s.Runs[1].Generated)
		})
	}
}

func TestDefaultRunRegeneratesTheEditsThreeNodes(t *testing.T) {
	for _, mode := range []string{"dataflow", "staged"} {
		t.Run(mode, func(t *testing.T) {
			s := runJSONArgs(t, 0, "-mode", mode)
			require.Len(t, s.Runs, 2)
			all := testgraph.LectureIDs(t, 120)
			first, second := s.Runs[0], s.Runs[1]
			assert.Equal(t, "succeeded", first.Status)
			assert.Equal(t, all, first.Generated)
			assert.Empty(t, first.Failed)
			assert.Empty(t, first.Skipped)
			assert.Equal(t, len(all), first.Attempts)

			assert.Equal(t, "succeeded", second.Status)
			assert.Equal(t, []string{"asset:narration:segment[3]", "asset:video:segment[3]", "timeline"}, second.Generated)
			assert.Empty(t, second.Failed)
			assert.Empty(t, second.Skipped)
			assert.Equal(t, 3, second.Attempts)
		})
	}
}

func TestEdits(t *testing.T) {
	all := testgraph.LectureIDs(t, 60)
	tests := []struct {
		name  string
		args  []string
		runs  int
		regen []string // the second run's generated nodes
	}{
		{"none skips the second run", []string{"-edit", "none"}, 1, nil},
		{"none twice", []string{"-edit", "none", "-edit", "none"}, 1, nil},
		{"an image", []string{"-edit", "asset:image:segment[0]"}, 2,
			[]string{"asset:image:segment[0]", "asset:video:segment[0]", "timeline"}},
		{"two edits, one repeated", []string{"-edit", "asset:music", "-edit", "asset:video:segment[5]", "-edit", "asset:music"}, 2,
			[]string{"asset:music", "asset:video:segment[5]", "timeline"}},
		{"the timeline alone", []string{"-edit", "timeline"}, 2, []string{"timeline"}},
		{"the script: everything", []string{"-edit", "script"}, 2, all},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := runJSONArgs(t, 0, append([]string{"-duration", "60"}, tt.args...)...)
			require.Len(t, s.Runs, tt.runs)
			assert.Equal(t, all, s.Runs[0].Generated)
			if tt.runs == 2 {
				assert.Equal(t, tt.regen, s.Runs[1].Generated)
				assert.Equal(t, "succeeded", s.Runs[1].Status)
			}
		})
	}
}

func TestFail(t *testing.T) {
	all := testgraph.LectureIDs(t, 60)
	tests := []struct {
		name    string
		fail    []string
		skipped []string
	}{
		{"an image", []string{"asset:image:segment[2]"}, []string{"asset:video:segment[2]", "timeline"}},
		{"a narration and a video", []string{"asset:narration:segment[0]", "asset:video:segment[4]"},
			[]string{"asset:video:segment[0]", "timeline"}},
		{"the script", []string{"script"}, without(all, "script")},
		{"the timeline", []string{"timeline"}, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"-duration", "60"}
			for _, id := range tt.fail {
				args = append(args, "-fail", id)
			}
			s := runJSONArgs(t, 1, args...)
			require.Len(t, s.Runs, 1, "no edit run after a failed run")
			r := s.Runs[0]
			assert.Equal(t, "failed", r.Status)
			assert.Equal(t, slices.Sorted(slices.Values(tt.fail)), r.Failed)
			assert.Equal(t, tt.skipped, r.Skipped)
			assert.Equal(t, without(all, append(slices.Clone(tt.fail), tt.skipped...)...), r.Generated)
			assert.Equal(t, len(r.Generated)+len(r.Failed), r.Attempts, "a permanent failure is not retried")
		})
	}
}

func TestFlakyRetriesSucceed(t *testing.T) {
	s := runJSONArgs(t, 0, "-flaky", "0.3", "-seed", "42")
	require.Len(t, s.Runs, 2)
	all := testgraph.LectureIDs(t, 120)
	assert.Equal(t, all, s.Runs[0].Generated)
	assert.Greater(t, s.Runs[0].Attempts, len(all), "some attempts failed and were retried")
	assert.Len(t, s.Runs[1].Generated, 3)
}

// TestReproducible checks that the attempts and outcomes come from the
// flags alone, whatever the mode and the scheduling.
func TestReproducible(t *testing.T) {
	args := []string{"-flaky", "0.4", "-seed", "7", "-duration", "60", "-fail", "asset:image:segment[1]"}
	want := runJSONArgs(t, 1, args...)
	for _, mode := range []string{"dataflow", "staged", "dataflow"} {
		got := runJSONArgs(t, 1, append(args, "-mode", mode)...)
		assert.Empty(t, cmp.Diff(want, got), "mode %s", mode)
	}
}

func TestCancel(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	r := runCtx(t, ctx, "-json", "-latency", "20ms")
	require.Equal(t, 1, r.code, "stderr: %s", r.stderr)
	requireJSONShape(t, r.stdout)
	var s summary
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &s))
	require.Len(t, s.Runs, 1, "no edit run after a cancelled run")
	assert.Equal(t, "cancelled", s.Runs[0].Status)
	assert.Less(t, len(s.Runs[0].Generated), len(testgraph.LectureIDs(t, 120)))
}

func TestBadFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string // in the stderr line
	}{
		{"duration not a number", []string{"-duration", "2m"}, `-duration "2m" is not a whole number of seconds`},
		{"duration not a multiple of 10", []string{"-duration", "125"}, "not a multiple of 10"},
		{"duration zero", []string{"-duration", "0"}, "-duration: graph: invalid duration"},
		{"duration negative", []string{"-duration", "-10"}, "-duration: graph: invalid duration"},
		// The limit, not the graph's Options.MaxSeconds, which no flag sets.
		{"duration above a day", []string{"-duration", "86410"}, "-duration 86410: the longest lecture is 86400 s (8640 segments)"},
		{"duration above the largest limit", []string{"-duration", "100000010"}, "-duration 100000010: the longest lecture is 86400 s (8640 segments)"},
		// Whole numbers past what an int holds are not "not a whole number".
		{"duration past an int", []string{"-duration", "99999999999999999990"}, "-duration 99999999999999999990: the longest lecture is 86400 s (8640 segments)"},
		{"duration past an int, negative", []string{"-duration", "-99999999999999999990"}, "-duration -99999999999999999990: a lecture lasts a positive number of seconds, a multiple of 10 up to 86400"},
		{"latency not a duration", []string{"-latency", "fast"}, `-latency "fast"`},
		{"latency negative", []string{"-latency", "-1s"}, `-latency "-1s"`},
		{"seed negative", []string{"-seed", "-1"}, `-seed "-1"`},
		{"flaky above 1", []string{"-flaky", "1.5"}, `-flaky "1.5": want a probability from 0 to 1`},
		{"flaky negative", []string{"-flaky", "-0.1"}, `-flaky "-0.1"`},
		{"flaky NaN", []string{"-flaky", "NaN"}, `-flaky "NaN"`},
		{"mode unknown", []string{"-mode", "fast"}, `-mode "fast": want dataflow or staged`},
		{"edit unknown kind", []string{"-edit", "asset:voice:segment[3]"}, "-edit: graph: unknown node"},
		{"edit out of range", []string{"-duration", "30", "-edit", "asset:narration:segment[3]"}, "segment 3 is out of range"},
		{"edit malformed", []string{"-edit", "asset:narration:segment[03]"}, "-edit: graph: malformed node ID"},
		{"edit none after another", []string{"-edit", "script", "-edit", "none"}, "-edit none skips the second run: it cannot be combined with -edit script"},
		{"edit none before another", []string{"-edit", "none", "-edit", "timeline"}, "cannot be combined with -edit timeline"},
		{"fail unknown", []string{"-fail", "nothing"}, "-fail: graph: unknown node"},
		{"fail malformed", []string{"-fail", "asset:image:segment[x]"}, "-fail: graph: malformed node ID"},
		{"unknown flag", []string{"-speed", "2"}, "flag provided but not defined: -speed"},
		{"argument", []string{"now"}, `unexpected argument "now"`},
	}
	for _, tt := range tests {
		for _, asJSON := range []bool{false, true} {
			name := tt.name
			args := tt.args
			if asJSON {
				name += ", json"
				args = append([]string{"-json"}, args...)
			}
			t.Run(name, func(t *testing.T) {
				r := runArgs(t, args...)
				assert.Equal(t, 2, r.code)
				assert.Empty(t, r.stdout)
				assert.True(t, strings.HasPrefix(r.stderr, "lecture: "), "stderr %q", r.stderr)
				assert.Equal(t, 1, strings.Count(r.stderr, "\n"), "one line: %q", r.stderr)
				assert.True(t, strings.HasSuffix(r.stderr, "\n"), "one line: %q", r.stderr)
				assert.Contains(t, r.stderr, tt.want)
			})
		}
	}
}

// TestHelp goes through run, the command's entry with its SIGINT
// handler: -h prints the synopsis, then every flag with a line that says
// what it does, and exits 0. It printed the synopsis alone.
func TestHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	assert.Equal(t, 0, run([]string{"-h"}, &stdout, &stderr))
	assert.Empty(t, stderr.String())
	out := stdout.String()
	require.True(t, strings.HasPrefix(out, usage), "%q", out)
	for _, tt := range []struct{ flag, desc string }{
		{"-duration SECONDS", "the lecture's length in SECONDS, a multiple of 10 up to 86400 (default \"120\")"},
		{"-latency DURATION", "the median DURATION of each fake generator call"},
		{"-seed N", "the seed N of the fake latencies and failures"},
		{"-edit NODEID", "none skips that run"},
		{"-fail NODEID", "the edit run is then skipped"},
		{"-flaky RATE", "from 0 to 1"},
		{"-mode MODE", "dataflow or staged (default \"dataflow\")"},
		{"-json", "print only a JSON summary"},
	} {
		i := strings.Index(out, "\n  "+tt.flag+"\n    \t")
		if !assert.GreaterOrEqual(t, i, 0, "no line for %s in %q", tt.flag, out) {
			continue
		}
		desc, _, _ := strings.Cut(out[i+len("\n  "+tt.flag+"\n    \t"):], "\n")
		assert.Contains(t, desc, tt.desc, tt.flag)
	}
}

// TestTextOutput checks the human output when stdout is not a terminal:
// plain lines, no ANSI codes, and the summary table.
func TestTextOutput(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		want []string
		not  []string
	}{
		{"default", nil, 0, []string{
			"Lecture of 120 s: 12 segments, 39 nodes; fake latency 1ms (median); dataflow mode; seed 1\n",
			"Run 1: new lecture\n",
			"run 1: Regenerating 39 of 39 nodes in 4 stages (dataflow)\n",
			"run 1: Stage 0: Generating 1 script node\n",
			"Run 1 succeeded in ",
			"Editing asset:narration:segment[3]: new parameters, so a new revision.\n",
			"Run 2: edit asset:narration:segment[3]\n",
			"run 2: Regenerating 3 of 39 nodes in 3 stages (dataflow)\n",
			"; regenerated asset:narration:segment[3], asset:video:segment[3], timeline.\n",
			"RUN  WHAT                             STATUS     GENERATED  UNCHANGED  FAILED  SKIPPED  ATTEMPTS  DURATION\n",
			"1    new lecture                      succeeded  39         0          0       0        39        ",
			"2    edit asset:narration:segment[3]  succeeded  3          0          0       0        3         ",
		}, nil},
		{"a failure", []string{"-duration", "30", "-fail", "asset:image:segment[1]", "-mode", "staged"}, 1, []string{
			"run 1: asset:image:segment[1] failed after 1 attempt(s): fake: injected failure: asset:image:segment[1] fails every attempt\n",
			"Run 1 failed in ",
			"; skipped asset:video:segment[1], timeline.\n",
			"The edit run is skipped: run 1 did not succeed.\n",
			"1    new lecture  failed  9          0          1       2        10        ",
		}, []string{"Run 2"}},
		{"no edit", []string{"-edit", "none", "-duration", "10"}, 0, []string{
			"Lecture of 10 s: 1 segment, 6 nodes; ", // not "1 segments"
			"1    new lecture  succeeded  6 ",
		}, []string{"Run 2", "edit run is skipped"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runArgs(t, append(slices.Clone(fast), tt.args...)...)
			require.Equal(t, tt.code, r.code, "stderr: %s", r.stderr)
			assert.Empty(t, r.stderr)
			assert.NotContains(t, r.stdout, "\x1b", "no ANSI codes when stdout is not a terminal")
			for _, w := range tt.want {
				assert.Contains(t, r.stdout, w)
			}
			for _, w := range tt.not {
				assert.NotContains(t, r.stdout, w)
			}
		})
	}
}

// TestTerminalDisplay draws the bars as on a terminal, from a plan and
// events.
func TestTerminalDisplay(t *testing.T) {
	g, err := graph.Build(graph.Lecture(), 30)
	require.NoError(t, err)
	var out bytes.Buffer
	d := newDisplay(&out)
	d.tty = true
	p, err := plan(context.Background(), executor.NewMemoryStates(), g, nil)
	require.NoError(t, err)
	d.begin("run 1", p)
	ev := func(typ progress.Type, node string, done int) progress.Event {
		id, err := graph.ParseID(node)
		require.NoError(t, err)
		return progress.Event{Type: typ, Node: node, Kind: id.Kind, Stage: 1, Done: done, Total: 12, Time: time.Now(), ETA: 3 * time.Second}
	}
	require.NoError(t, d.Publish(context.Background(),
		progress.Event{Type: progress.RunStarted, Total: 12, Message: "Regenerating 12 of 12 nodes in 4 stages (dataflow)"},
		ev(progress.NodeStarted, "script", 0), ev(progress.NodeSucceeded, "script", 1),
		ev(progress.NodeStarted, "asset:image:segment[0]", 0), ev(progress.NodeRetrying, "asset:image:segment[0]", 0),
		ev(progress.NodeStarted, "asset:image:segment[1]", 0), ev(progress.NodeFailed, "asset:image:segment[1]", 2),
		ev(progress.NodeSkipped, "asset:video:segment[1]", 3)))
	d.width = 120 // room for whole bars
	d.render(false)
	first := out.String()
	assert.Contains(t, first, "\r\x1b[2Krun 1: Regenerating 12 of 12 nodes in 4 stages (dataflow)\n")
	assert.Contains(t, first, "\r\x1b[2K  script           stage 0 [########################]   1/1\n")
	assert.Contains(t, first, "\r\x1b[2K  asset:image      stage 1 [########................]   0/3    1 running  1 retried  1 failed\n")
	assert.Contains(t, first, "\r\x1b[2K  asset:video      stage 2 [########................]   0/3    1 skipped\n")
	assert.Contains(t, first, "\r\x1b[2K  all                      [######..................]   3/12   ")
	assert.Contains(t, first, " elapsed, ETA 3s\n")
	assert.Equal(t, 7, d.drawn, "six kinds and the total")

	out.Reset()
	d.render(false)
	assert.Empty(t, out.String(), "nothing changed, nothing drawn")

	require.NoError(t, d.Publish(context.Background(), ev(progress.NodeSucceeded, "asset:image:segment[0]", 4)))
	d.render(true)
	assert.True(t, strings.HasPrefix(out.String(), "\x1b[7A\r\x1b[J"), "redraws over the bars: %q", out.String())
	assert.Equal(t, 0, d.drawn, "the final bars stay")
}

// TestPlanMatchesTheExecutor checks that the display's plan, made before
// a run, has the nodes the run then generates.
func TestPlanMatchesTheExecutor(t *testing.T) {
	g, err := graph.Build(graph.Lecture(), 60)
	require.NoError(t, err)
	states := executor.NewMemoryStates()
	e, err := executor.New(executor.Options{States: states, Generators: fake.New(fake.Options{}).Registry()})
	require.NoError(t, err)
	ctx := context.Background()
	for _, marks := range [][]dirty.Mark{nil, {{ID: "asset:image:segment[4]", Reason: dirty.ReasonEdited}}} {
		p, err := plan(ctx, states, g, marks)
		require.NoError(t, err)
		want := make([]string, 0, p.Len())
		for _, n := range p.Nodes() {
			want = append(want, g.NodeID(n))
		}
		slices.Sort(want)
		rep, err := e.Run(ctx, executor.RunRequest{GraphKey: graphKey, Graph: g, Marks: marks})
		require.NoError(t, err)
		assert.Equal(t, want, rep.Generated)
	}
	require.NoError(t, e.Close(ctx))
}

// round keeps a short run's duration visible, and rounds longer ones.
func TestRound(t *testing.T) {
	for _, tc := range []struct{ in, want time.Duration }{
		{0, 0},
		{412_345 * time.Nanosecond, 410 * time.Microsecond},
		{9_994 * time.Microsecond, 9_990 * time.Microsecond},
		{12_345 * time.Microsecond, 10 * time.Millisecond},
		{9_994 * time.Millisecond, 9_990 * time.Millisecond},
		{12_345 * time.Millisecond, 12_300 * time.Millisecond},
	} {
		assert.Equal(t, tc.want, round(tc.in), "round(%v)", tc.in)
	}
}

// TestCancelledBeforeTheRunStarts: an interrupt that comes before the
// executor has started the first run (the context is already done)
// still reports that run, as cancelled with nothing done: -json printed
// {"runs":[]} and the table "not started", as for a run that could not
// start, and a JSON consumer could not tell an interrupt from an error.
func TestCancelledBeforeTheRunStarts(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"json", []string{"-json"}, `{"runs":[{"status":"cancelled","generated":[],"failed":[],"skipped":[],"attempts":0}]}` + "\n"},
		{"text", nil, "1    new lecture  cancelled  0          0          0       0        0         "},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := runCtx(t, ctx, append(tt.args, fast...)...)
			assert.Equal(t, 1, r.code)
			assert.Empty(t, r.stderr)
			if tt.args != nil {
				assert.Equal(t, tt.want, r.stdout)
				return
			}
			assert.Contains(t, r.stdout, tt.want)
			assert.Contains(t, r.stdout, "The edit run is skipped: run 1 did not succeed.\n")
			assert.NotContains(t, r.stdout, "not started")
		})
	}
}
