package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
)

// cleanStates returns the states of a graph of tmpl over secs seconds as
// a run that made every node would leave them: each clean, at rev 1, with
// the InputHash of its dependencies' outputs and an output of its own.
func cleanStates(t *testing.T, tmpl graph.Template, secs int) (*graph.Graph, map[string]dirty.State) {
	t.Helper()
	g, err := graph.Build(tmpl, secs)
	require.NoError(t, err)
	states := make(map[string]dirty.State, g.Len())
	for n := range g.Len() {
		var deps []string
		for _, d := range g.Deps(graph.Node(n)) {
			deps = append(deps, states[g.NodeID(d)].OutputHash)
		}
		id := g.NodeID(graph.Node(n))
		states[id] = dirty.State{Status: dirty.StatusClean, Rev: 1, InputHash: dirty.InputHash(1, deps),
			OutputHash: "out " + id, AssetRef: "assets/" + id}
	}
	return g, states
}

// statesFile writes states in the -states form and returns its path.
func statesFile(t *testing.T, states map[string]dirty.State) string {
	t.Helper()
	data, err := json.Marshal(states)
	require.NoError(t, err)
	return writeFile(t, "states.json", string(data))
}

// TestStatesFile: -states reads the nodes' states, plans from them, and
// marks the clean nodes made from other inputs than their dependencies'
// outputs now (dirty.StaleInputs). A node not in the file is missing.
func TestStatesFile(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(map[string]dirty.State)
		args   []string
		want   string
	}{
		{
			name: "every node clean",
			want: "3 segments, 12 nodes, 0 dirty\n",
		},
		{
			name:   "a node not in the file is missing",
			change: func(s map[string]dirty.State) { delete(s, "asset:image:segment[2]") },
			want: `3 segments, 12 nodes, 3 dirty
Stage 0: Generating 1 asset:image node in batches of 5
Stage 1: Generating 1 asset:video node in batches of 3
Stage 2: Generating 1 timeline node
Why:
  asset:image:segment[2]: never generated
  asset:video:segment[2]: upstream asset:image:segment[2] never generated
  timeline: upstream asset:video:segment[2], from asset:image:segment[2] never generated
`,
		},
		{
			// A run regenerated and saved the narration, then crashed
			// before its dependents ran: the video and the timeline,
			// recorded clean, were made from the old narration.
			name: "a crash between a new output and its dependent's run",
			change: func(s map[string]dirty.State) {
				st := s["asset:narration:segment[1]"]
				st.Rev, st.OutputHash = 2, "new narration"
				st.InputHash = dirty.InputHash(2, []string{s["script"].OutputHash})
				s["asset:narration:segment[1]"] = st
			},
			want: `3 segments, 12 nodes, 2 dirty
Stage 0: Generating 1 asset:video node in batches of 3
Stage 1: Generating 1 timeline node
Why:
  asset:video:segment[1]: inputs changed
  timeline: inputs changed
`,
		},
		{
			name: "a failed node",
			change: func(s map[string]dirty.State) {
				s["asset:image:segment[0]"] = dirty.State{Status: dirty.StatusFailed, Attempts: 3, LastError: "gpu out of memory"}
			},
			want: `3 segments, 12 nodes, 3 dirty
Stage 0: Generating 1 asset:image node in batches of 5
Stage 1: Generating 1 asset:video node in batches of 3
Stage 2: Generating 1 timeline node
Why:
  asset:image:segment[0]: last attempt failed
  asset:video:segment[0]: upstream asset:image:segment[0] last attempt failed
  timeline: upstream asset:video:segment[0], from asset:image:segment[0] last attempt failed
`,
		},
		{
			name: "a node left running, a node cancelled and an edit on top",
			change: func(s map[string]dirty.State) {
				st := s["asset:music"]
				st.Status = dirty.StatusRunning
				s["asset:music"] = st
				st = s["asset:video:segment[2]"]
				st.Status = dirty.StatusCancelled
				s["asset:video:segment[2]"] = st
			},
			args: []string{"-edit", "asset:narration:segment[0]"},
			want: `3 segments, 12 nodes, 5 dirty
Stage 0: Generating 1 asset:narration node in batches of 4, 1 asset:video node in batches of 3, 1 asset:music node
Stage 1: Generating 1 asset:video node in batches of 3
Stage 2: Generating 1 timeline node
Why:
  asset:narration:segment[0]: edited
  asset:video:segment[0]: upstream asset:narration:segment[0] edited
  asset:video:segment[2]: cancelled
  asset:music: interrupted
  timeline: upstream asset:narration:segment[0] edited
`,
		},
		{
			// A clean node with no input hash recorded is made from
			// unknown inputs: StaleInputs marks it.
			name: "a clean node without an input hash",
			change: func(s map[string]dirty.State) {
				s["timeline"] = dirty.State{Status: dirty.StatusClean}
			},
			want: `3 segments, 12 nodes, 1 dirty
Stage 0: Generating 1 timeline node
Why:
  timeline: inputs changed
`,
		},
		{
			name:   "an empty object: every node missing",
			change: func(s map[string]dirty.State) { clear(s) },
			args:   []string{"-format", "json"},
			want: `{"segments":3,"nodes":12,"dirty":12,"why":{"script":"never generated","asset:narration:segment[0]":"never generated","asset:narration:segment[1]":"never generated","asset:narration:segment[2]":"never generated","asset:image:segment[0]":"never generated","asset:image:segment[1]":"never generated","asset:image:segment[2]":"never generated","asset:video:segment[0]":"never generated","asset:video:segment[1]":"never generated","asset:video:segment[2]":"never generated","asset:music":"never generated","timeline":"never generated"},` +
				`"stages":[{"index":0,"groups":[{"kind":"single","nodes":["script"]}]},{"index":1,"groups":[{"kind":"batch","batchKey":"asset:narration","concurrency":4,"nodes":["asset:narration:segment[0]","asset:narration:segment[1]","asset:narration:segment[2]"]},{"kind":"batch","batchKey":"asset:image","concurrency":5,"nodes":["asset:image:segment[0]","asset:image:segment[1]","asset:image:segment[2]"]},{"kind":"single","nodes":["asset:music"]}]},{"index":2,"groups":[{"kind":"batch","batchKey":"asset:video","concurrency":3,"nodes":["asset:video:segment[0]","asset:video:segment[1]","asset:video:segment[2]"]}]},{"index":3,"groups":[{"kind":"single","nodes":["timeline"]}]}]}` + "\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, states := cleanStates(t, graph.Lecture(), 30)
			if tc.change != nil {
				tc.change(states)
			}
			args := append([]string{"-duration", "30", "-states", statesFile(t, states)}, tc.args...)
			code, out, errOut := runCLI(args...)
			require.Equal(t, 0, code, errOut)
			assert.Empty(t, errOut)
			if diff := cmp.Diff(tc.want, out); diff != "" {
				t.Fatalf("(-want +got):\n%s", diff)
			}
			_, again, _ := runCLI(args...)
			assert.Equal(t, out, again, "the same input gives the same output")
		})
	}
}

// TestStatesFileOfALongerLecture: states carried over to a longer
// lecture are read by node ID; the new segment's nodes are missing, and
// the timeline is dirty through them.
func TestStatesFileOfALongerLecture(t *testing.T) {
	_, states := cleanStates(t, graph.Lecture(), 30)
	code, out, errOut := runCLI("-duration", "40", "-states", statesFile(t, states))
	require.Equal(t, 0, code, errOut)
	want := `4 segments, 15 nodes, 4 dirty
Stage 0: Generating 1 asset:narration node in batches of 4, 1 asset:image node in batches of 5
Stage 1: Generating 1 asset:video node in batches of 3
Stage 2: Generating 1 timeline node
Why:
  asset:narration:segment[3]: never generated
  asset:image:segment[3]: never generated
  asset:video:segment[3]: never generated
  timeline: upstream asset:narration:segment[3] never generated
`
	if diff := cmp.Diff(want, out); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
}

// TestStatesFileOfAShorterLecture: states carried over to a shorter
// lecture, less the segment cut, are all clean; the timeline, made from
// four segments and now of three, is marked inputs changed.
func TestStatesFileOfAShorterLecture(t *testing.T) {
	_, states := cleanStates(t, graph.Lecture(), 40)
	path := statesFile(t, states)
	code, _, errOut := runCLI("-duration", "30", "-states", path)
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, `segment 3 is out of range: the graph has 3 segments (0 to 2)`, "the cut segment's states are refused")

	for id := range states {
		if strings.Contains(id, "segment[3]") {
			delete(states, id)
		}
	}
	code, out, errOut := runCLI("-duration", "30", "-states", statesFile(t, states))
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, "3 segments, 12 nodes, 1 dirty\nStage 0: Generating 1 timeline node\nWhy:\n  timeline: inputs changed\n", out)
}

// TestBadStatesFile: a states file that is not a JSON object of node ID
// to state, names a node the graph has not, or names one twice, is
// refused on one line on stderr with exit status 2, and the error is a
// *StatesError that names the ID.
func TestBadStatesFile(t *testing.T) {
	const clean = `{"status": "clean", "rev": 1, "inputHash": "x"}`
	for _, tc := range []struct {
		name    string
		content string
		id      string // the ID the error names, or ""
		is      error  // what the error wraps, or nil
		msg     string // part of the one line on stderr
	}{
		{"unknown kind", `{"script": ` + clean + `, "asset:sound": ` + clean + `}`, "asset:sound", graph.ErrUnknownNode,
			`node "asset:sound": graph: unknown node "asset:sound": the template has no kind "asset:sound": its kinds are script, asset:narration, asset:image, asset:video, asset:music, timeline`},
		{"segment out of range", `{"asset:image:segment[3]": ` + clean + `}`, "asset:image:segment[3]", graph.ErrUnknownNode,
			"segment 3 is out of range: the graph has 3 segments (0 to 2)"},
		{"malformed ID", `{"asset:image:segment[01]": ` + clean + `}`, "asset:image:segment[01]", graph.ErrMalformedID,
			`graph: malformed node ID "asset:image:segment[01]": segment index "01" has a leading zero`},
		{"ID with a newline", `{"script\ntimeline": ` + clean + `}`, "script\ntimeline", graph.ErrMalformedID, `node "script\ntimeline"`},
		{"ID given twice", `{"script": ` + clean + `, "timeline": {}, "script": {"status": "failed"}}`, "script", errDuplicateState,
			`node "script": given twice: give each node's state once`},
		{"ID given twice, once escaped", `{"script": {}, "\u0073cript": {}}`, "script", errDuplicateState, "given twice"},
		{"not JSON", `{"script": {"status": "clean",}}`, "", nil, "invalid character '}'"},
		{"empty", ``, "", nil, "want a JSON object of node ID to state"},
		{"an array", `[{"id": "script"}]`, "", nil, `a JSON object of node ID to state, {"script": {"status": "clean", ...}, ...}: found [`},
		{"null", `null`, "", nil, "found null"},
		{"a state that is null", `{"script": null}`, "script", nil, `node "script": a state is a JSON object, {"status": "clean", "rev": 1, ...}: found null`},
		{"a state that is a string", `{"script": "clean"}`, "script", nil, `found "clean"`},
		{"a state with an unknown field", `{"script": {"status": "clean", "hash": "x"}}`, "script", dirty.ErrInvalidJSON, `node "script": dirty: invalid JSON`},
		{"a state with an unknown status", `{"timeline": {"status": "done"}}`, "timeline", dirty.ErrUnknownName, `unknown status "done"`},
		{"a state with a key in another case", `{"script": {"Status": "clean"}}`, "script", dirty.ErrInvalidJSON, `"Status"`},
		{"not closed", `{"script": {}`, "", nil, `at byte 13: the file ends within the object: want a JSON object of node ID to state`},
		{"cut in a state", `{"script": {"status": "cle`, "", nil, "unexpected EOF"},
		{"trailing data", `{"script": {}} {}`, "", nil, "trailing data after the object"},
		{"trailing garbage", `{"script": {}}x`, "", nil, "invalid character 'x'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, "states.json", tc.content)
			code, out, errOut := runCLI("-duration", "30", "-states", path)
			assert.Equal(t, 2, code)
			assert.Empty(t, out)
			require.True(t, strings.HasSuffix(errOut, "\n"), "%q", errOut)
			assert.Equal(t, 1, strings.Count(errOut, "\n"), "one line: %q", errOut)
			assert.True(t, strings.HasPrefix(errOut, "plan: -states "+path+": "), "%q", errOut)
			assert.Contains(t, errOut, tc.msg)

			g, err := graph.Build(graph.Lecture(), 30)
			require.NoError(t, err)
			_, err = readStates(path, g)
			var se *StatesError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, path, se.Path)
			assert.Equal(t, tc.id, se.ID)
			if tc.is != nil {
				assert.ErrorIs(t, err, tc.is)
			}
		})
	}
	t.Run("no such file", func(t *testing.T) {
		path := t.TempDir() + "/none.json"
		code, out, errOut := runCLI("-duration", "30", "-states", path)
		assert.Equal(t, 2, code)
		assert.Empty(t, out)
		assert.Equal(t, "plan: -states: open "+path+": no such file or directory\n", errOut)
	})
	t.Run("no path", func(t *testing.T) {
		code, out, errOut := runCLI("-duration", "30", "-states=")
		assert.Equal(t, 2, code)
		assert.Empty(t, out)
		assert.Equal(t, "plan: -states needs a FILE.json: a JSON object of node ID to state\n", errOut)
	})
	t.Run("twice", func(t *testing.T) {
		code, _, errOut := runCLI("-duration", "30", "-states", "a.json", "-states", "b.json")
		assert.Equal(t, 2, code)
		assert.Contains(t, errOut, `for flag -states: given twice, "a.json" and "b.json"`)
	})
	t.Run("binary", func(t *testing.T) {
		path := writeFile(t, "states.json", `{"asset:sound": {}}`)
		code, out, errOut := runBinary(t, "-duration", "30", "-states", path)
		assert.Equal(t, 2, code)
		assert.Empty(t, out)
		assert.True(t, strings.HasPrefix(errOut, "plan: -states "+path+`: node "asset:sound": graph: unknown node`), "%q", errOut)
	})
}

// TestStatesTooLarge: a states file is read up to a bound of
// maxStatesBytes and maxStateBytesANode for each node of the graph, so
// that a file without end is refused, on one line, rather than read until
// memory runs out. The bound is lowered here; a file of the bound is read.
func TestStatesTooLarge(t *testing.T) {
	// The default, as -h says: 256 MiB, and 193 KiB a node.
	assert.Equal(t, "256 MiB, and 193 KiB a node", statesBound(maxStatesBytes, maxStateBytesANode))
	assert.Contains(t, usage, "a file over 256 MiB\nand 193 KiB a node are refused")
	defer func(base, each int64) { maxStatesBytes, maxStateBytesANode = base, each }(maxStatesBytes, maxStateBytesANode)
	// The lecture of 10 s has 6 nodes.
	content := `{"timeline": {"status": "failed"}}`
	maxStatesBytes, maxStateBytesANode = int64(len(content))-6*5, 5
	code, out, errOut := runCLI("-duration", "10", "-states", writeFile(t, "s.json", content))
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, "1 segment, 6 nodes, 6 dirty\n", out[:strings.Index(out, "\n")+1])

	for _, tc := range []struct{ name, content string }{
		{"one byte over", content + "\n"},
		{"over in a string", `{"timeline": {"status": "failed", "lastError": "` + strings.Repeat("x", 100) + `"}}`},
		{"over in the file's whitespace", strings.Repeat(" ", 100)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, "big.json", tc.content)
			code, out, errOut := runCLI("-duration", "10", "-states", path)
			assert.Equal(t, 2, code)
			assert.Empty(t, out)
			assert.Equal(t, fmt.Sprintf("plan: -states %s: larger than 34 bytes, the most the states of 6 nodes take (%d bytes, and 5 a node)\n", path, maxStatesBytes), errOut)
			g, err := graph.Build(graph.Lecture(), 10)
			require.NoError(t, err)
			_, err = readStates(path, g)
			assert.ErrorIs(t, err, errStatesTooLarge)
		})
	}

	if _, err := os.Stat("/dev/zero"); err == nil {
		maxStatesBytes, maxStateBytesANode = 1<<20, 1<<10
		code, out, errOut := runCLI("-duration", "10", "-states", "/dev/zero")
		assert.Equal(t, 2, code)
		assert.Empty(t, out)
		assert.Equal(t, `plan: -states /dev/zero: at byte 0: want a JSON object of node ID to state, {"script": {"status": "clean", ...}, ...}: invalid character '\x00' looking for beginning of value`+"\n", errOut)
	}
}

// podcastTemplate is a podcast's: a voice for each segment, music, and a
// mix of them all.
const podcastTemplate = `{"kinds": [
	{"name": "script"},
	{"name": "voice", "perSegment": true, "deps": [{"kind": "script", "scope": "global"}], "batchKey": "tts", "concurrency": 4},
	{"name": "music"},
	{"name": "mix", "deps": [{"kind": "voice", "scope": "all-segments"}, {"kind": "music", "scope": "global"}]}
]}`

// TestCauses: -causes lists every root cause of each dirty node, where
// its explanation names one: with voice:segment[0] and voice:segment[3]
// edited, the mix's explanation names segment[0] alone, and its causes
// are both voices.
func TestCauses(t *testing.T) {
	tmpl := writeFile(t, "podcast.json", podcastTemplate)
	args := []string{"-duration", "50", "-template", tmpl, "-edit", "voice:segment[3]", "-edit", "voice:segment[0]", "-causes"}
	t.Run("text", func(t *testing.T) {
		code, out, errOut := runCLI(append(args, "-format", "text")...)
		require.Equal(t, 0, code, errOut)
		assert.Empty(t, errOut)
		want := `5 segments, 8 nodes, 3 dirty
Stage 0: Generating 2 voice nodes in batches of 4
Stage 1: Generating 1 mix node
Why:
  voice:segment[0]: edited
    cause voice:segment[0]: edited
  voice:segment[3]: edited
    cause voice:segment[3]: edited
  mix: upstream voice:segment[0] edited
    cause voice:segment[0]: edited
    cause voice:segment[3]: edited
`
		if diff := cmp.Diff(want, out); diff != "" {
			t.Fatalf("(-want +got):\n%s", diff)
		}
	})
	t.Run("json", func(t *testing.T) {
		code, out, errOut := runCLI(append(args, "-format", "json")...)
		require.Equal(t, 0, code, errOut)
		assert.Empty(t, errOut)
		want := `{"segments":5,"nodes":8,"dirty":3,` +
			`"why":{"voice:segment[0]":"edited","voice:segment[3]":"edited","mix":"upstream voice:segment[0] edited"},` +
			`"causes":{"voice:segment[0]":["voice:segment[0]"],"voice:segment[3]":["voice:segment[3]"],"mix":["voice:segment[0]","voice:segment[3]"]},` +
			`"stages":[{"index":0,"groups":[{"kind":"batch","batchKey":"tts","concurrency":4,"nodes":["voice:segment[0]","voice:segment[3]"]}]},` +
			`{"index":1,"groups":[{"kind":"single","nodes":["mix"]}]}]}` + "\n"
		assert.Equal(t, want, out)
		assert.True(t, json.Valid([]byte(out)))
	})
	t.Run("the same input, the same output", func(t *testing.T) {
		for _, format := range []string{"text", "json"} {
			_, a, _ := runCLI(append(args, "-format", format)...)
			_, b, _ := runCLI(append(args, "-format", format)...)
			assert.Equal(t, a, b, format)
		}
	})
	t.Run("without -causes, no causes", func(t *testing.T) {
		_, out, _ := runCLI(args[:len(args)-1]...)
		assert.NotContains(t, out, "cause")
		_, out, _ = runCLI(append(args[:len(args)-1:len(args)-1], "-format", "json")...)
		assert.NotContains(t, out, `"causes"`)
	})
	t.Run("a node with a reason of its own downstream of another", func(t *testing.T) {
		// The mix failed; a voice is edited: the mix's explanation is its
		// own failure, its causes both.
		_, states := cleanStates(t, mustParse(t, podcastTemplate), 50)
		states["mix"] = dirty.State{Status: dirty.StatusFailed, LastError: "clipping"}
		code, out, errOut := runCLI("-duration", "50", "-template", tmpl, "-states", statesFile(t, states), "-edit", "voice:segment[2]", "-causes")
		require.Equal(t, 0, code, errOut)
		want := `5 segments, 8 nodes, 2 dirty
Stage 0: Generating 1 voice node in batches of 4
Stage 1: Generating 1 mix node
Why:
  voice:segment[2]: edited
    cause voice:segment[2]: edited
  mix: last attempt failed
    cause voice:segment[2]: edited
    cause mix: last attempt failed
`
		if diff := cmp.Diff(want, out); diff != "" {
			t.Fatalf("(-want +got):\n%s", diff)
		}
	})
	t.Run("nothing dirty", func(t *testing.T) {
		_, states := cleanStates(t, mustParse(t, podcastTemplate), 50)
		code, out, _ := runCLI("-duration", "50", "-template", tmpl, "-states", statesFile(t, states), "-causes", "-format", "json")
		require.Equal(t, 0, code)
		assert.Equal(t, `{"segments":5,"nodes":8,"dirty":0,"why":{},"causes":{},"stages":[]}`+"\n", out)
	})
	for _, tc := range []struct {
		name string
		args []string
		msg  string
	}{
		{"with dot", []string{"-causes", "-format", "dot"}, "-causes: the text and json formats list causes; dot draws none"},
		{"with mermaid", []string{"-format", "mermaid", "-causes"}, "-causes: the text and json formats list causes; mermaid draws none"},
		{"twice", []string{"-causes", "-causes"}, `invalid boolean flag causes: given twice, "true" and "true": give it once`},
		{"not a boolean", []string{"-causes=yes"}, `invalid boolean value "yes" for -causes: want true or false`},
		{"twice, with values", []string{"-causes=false", "-causes=1"}, `invalid boolean value "1" for -causes: given twice, "false" and "1": give it once`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(append([]string{"-duration", "30"}, tc.args...)...)
			assert.Equal(t, 2, code)
			assert.Empty(t, out)
			assert.Equal(t, 1, strings.Count(errOut, "\n"), "%q", errOut)
			assert.Contains(t, errOut, tc.msg)
		})
	}
	t.Run("-causes=false", func(t *testing.T) {
		_, want, _ := runCLI("-duration", "30", "-format", "dot")
		code, out, errOut := runCLI("-duration", "30", "-format", "dot", "-causes=false")
		require.Equal(t, 0, code, errOut)
		assert.Equal(t, want, out)
	})
}

func mustParse(t *testing.T, tmpl string) graph.Template {
	t.Helper()
	tp, err := graph.ParseTemplate([]byte(tmpl))
	require.NoError(t, err)
	return tp
}

// TestCausesWriteStopsAtTheFirstError: with -causes, as without, the
// writer's first error ends the output.
func TestCausesWriteStopsAtTheFirstError(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		var stderr strings.Builder
		w := &countingFailWriter{explained: new(int)}
		code := run([]string{"-duration", "86400", "-format", format, "-causes"}, w, &stderr)
		assert.Equal(t, 1, code, format)
		assert.Equal(t, "plan: write: disk full\n", stderr.String(), format)
		assert.Equal(t, 1, w.calls, "writes after the first error")
	}
}

// TestStatesFileOfFailedNodesWithLongErrors: a node's state may hold a
// LastError as long as the executor stores (executor.MaxEventText, a
// provider's error page during an outage), whose JSON escapes may take
// six bytes a byte; the bound of each node covers such a state, so that
// the states of a store whose nodes all failed so are read, not refused
// as "larger than the most the states of N nodes take". The base bound
// is set to 0 here, so that the nodes' bound alone counts.
func TestStatesFileOfFailedNodesWithLongErrors(t *testing.T) {
	assert.Equal(t, executor.MaxEventText, maxLastErrorBytes, "the longest LastError the executor stores")
	defer func(base int64) { maxStatesBytes = base }(maxStatesBytes)
	maxStatesBytes = 0
	g, states := cleanStates(t, graph.Lecture(), 10)
	for id, st := range states {
		// Control characters and HTML, each escaped as \u00XX.
		st.Status, st.LastError = dirty.StatusFailed, strings.Repeat("\x01<", executor.MaxEventText/2)
		st.UpdatedAt = time.Date(2026, 11, 27, 16, 0, 0, 0, time.UTC)
		states[id] = st
	}
	path := statesFile(t, states)
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Greater(t, fi.Size(), int64(g.Len())*6*executor.MaxEventText, "every byte of each error escaped")
	code, out, errOut := runCLI("-duration", "10", "-states", path)
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, "1 segment, 6 nodes, 6 dirty\n", out[:strings.Index(out, "\n")+1])
}
