package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/graph"
)

// binary is the command built once by TestMain, for the tests of its
// real exit status.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "plan-cli-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "plan")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// runCLI calls run and returns its status, stdout and stderr.
func runCLI(args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// runBinary runs the built command and returns its exit status, stdout
// and stderr.
func runBinary(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("running %s: %v", binary, err)
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}

// writeFile writes content to a file in a test directory and returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
	return path
}

func TestTextNewLecture(t *testing.T) {
	code, out, errOut := runCLI("-duration", "30")
	require.Equal(t, 0, code, errOut)
	assert.Empty(t, errOut)
	want := `3 segments, 12 nodes, 12 dirty
Stage 0: Generating 1 script node
Stage 1: Generating 3 asset:narration nodes in batches of 4, 3 asset:image nodes in batches of 5, 1 asset:music node
Stage 2: Generating 3 asset:video nodes in batches of 3
Stage 3: Generating 1 timeline node
Why:
  script: never generated
  asset:narration:segment[0]: never generated
  asset:narration:segment[1]: never generated
  asset:narration:segment[2]: never generated
  asset:image:segment[0]: never generated
  asset:image:segment[1]: never generated
  asset:image:segment[2]: never generated
  asset:video:segment[0]: never generated
  asset:video:segment[1]: never generated
  asset:video:segment[2]: never generated
  asset:music: never generated
  timeline: never generated
`
	if diff := cmp.Diff(want, out); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
}

// -max-seconds lets a lecture longer than a day be planned, as
// graph.Options.MaxSeconds does.
func TestMaxSeconds(t *testing.T) {
	code, out, errOut := runCLI("-duration", "86410", "-max-seconds", "86410", "-edit", "asset:image:segment[8640]")
	require.Equal(t, 0, code, errOut)
	assert.Empty(t, errOut)
	assert.True(t, strings.HasPrefix(out, "8641 segments, 25926 nodes, 3 dirty\n"), out)
}

// -max-seconds is a decimal number of seconds, as -duration is: a leading
// zero does not make it octal (0100 was read as 64, so that -duration
// 0100 -max-seconds 0100 was refused as over a limit of 64s).
func TestMaxSecondsIsDecimal(t *testing.T) {
	code, out, errOut := runCLI("-duration", "0100", "-max-seconds", "0100")
	require.Equal(t, 0, code, errOut)
	assert.True(t, strings.HasPrefix(out, "10 segments, 33 nodes, 33 dirty\n"), out)
	code, out, errOut = runCLI("-duration", "110", "-max-seconds", "0100")
	assert.Equal(t, 2, code)
	assert.Empty(t, out)
	assert.Contains(t, errOut, "110s exceeds the limit of 100s")
}

func TestTextChanges(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{
			name: "one edit of an hour",
			args: []string{"-duration", "3600", "-edit", "asset:narration:segment[3]"},
			want: `360 segments, 1083 nodes, 3 dirty
Stage 0: Generating 1 asset:narration node in batches of 4
Stage 1: Generating 1 asset:video node in batches of 3
Stage 2: Generating 1 timeline node
Why:
  asset:narration:segment[3]: edited
  asset:video:segment[3]: upstream asset:narration:segment[3] edited
  timeline: upstream asset:narration:segment[3] edited
`,
		},
		{
			name: "edit, force and missing together",
			args: []string{"-duration", "60", "-missing", "asset:image:segment[1]", "-force", "asset:music", "-edit", "asset:video:segment[4]", "-edit", "asset:video:segment[5]"},
			want: `6 segments, 21 nodes, 6 dirty
Stage 0: Generating 1 asset:image node in batches of 5, 2 asset:video nodes in batches of 3, 1 asset:music node
Stage 1: Generating 1 asset:video node in batches of 3
Stage 2: Generating 1 timeline node
Why:
  asset:image:segment[1]: asset missing
  asset:video:segment[1]: upstream asset:image:segment[1] asset missing
  asset:video:segment[4]: edited
  asset:video:segment[5]: edited
  asset:music: forced
  timeline: upstream asset:video:segment[1], from asset:image:segment[1] asset missing
`,
		},
		{
			name: "the same node marked twice",
			args: []string{"-duration", "10", "-force", "timeline", "-edit", "timeline"},
			want: `1 segment, 6 nodes, 1 dirty
Stage 0: Generating 1 timeline node
Why:
  timeline: edited
`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(tc.args...)
			require.Equal(t, 0, code, errOut)
			assert.Empty(t, errOut)
			if diff := cmp.Diff(tc.want, out); diff != "" {
				t.Fatalf("(-want +got):\n%s", diff)
			}
		})
	}
}

// cliOutput is the -format json object.
type cliOutput struct {
	Segments int               `json:"segments"`
	Nodes    int               `json:"nodes"`
	Dirty    int               `json:"dirty"`
	Why      map[string]string `json:"why"`
	Stages   []struct {
		Index  int `json:"index"`
		Groups []struct {
			Kind        string   `json:"kind"`
			BatchKey    *string  `json:"batchKey"`
			Concurrency *int     `json:"concurrency"`
			Nodes       []string `json:"nodes"`
		} `json:"groups"`
	} `json:"stages"`
}

// parseJSON decodes the output strictly: one object, no unknown field,
// nothing after it but a newline.
func parseJSON(t *testing.T, out string) cliOutput {
	t.Helper()
	require.True(t, strings.HasSuffix(out, "}\n"), "output ends with one newline: %q", out)
	require.Equal(t, 1, strings.Count(out, "\n"), "one line")
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	var o cliOutput
	require.NoError(t, dec.Decode(&o))
	require.False(t, dec.More())
	// The top-level keys are exactly the contract's, in its order.
	var keys []string
	dec = json.NewDecoder(strings.NewReader(out))
	_, err := dec.Token()
	require.NoError(t, err)
	for dec.More() {
		tok, err := dec.Token()
		require.NoError(t, err)
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		require.NoError(t, dec.Decode(&skip))
	}
	require.Equal(t, []string{"segments", "nodes", "dirty", "why", "stages"}, keys)
	return o
}

func TestJSON(t *testing.T) {
	t.Run("exact output", func(t *testing.T) {
		code, out, errOut := runCLI("-duration", "60", "-edit", "asset:narration:segment[3]", "-format", "json")
		require.Equal(t, 0, code, errOut)
		assert.Empty(t, errOut)
		want := `{"segments":6,"nodes":21,"dirty":3,` +
			`"why":{"asset:narration:segment[3]":"edited","asset:video:segment[3]":"upstream asset:narration:segment[3] edited","timeline":"upstream asset:narration:segment[3] edited"},` +
			`"stages":[{"index":0,"groups":[{"kind":"batch","batchKey":"asset:narration","concurrency":4,"nodes":["asset:narration:segment[3]"]}]},` +
			`{"index":1,"groups":[{"kind":"batch","batchKey":"asset:video","concurrency":3,"nodes":["asset:video:segment[3]"]}]},` +
			`{"index":2,"groups":[{"kind":"single","nodes":["timeline"]}]}]}` + "\n"
		assert.Equal(t, want, out)
	})

	t.Run("shape", func(t *testing.T) {
		code, out, errOut := runCLI("-duration", "120", "-edit", "asset:image:segment[7]", "-edit", "asset:music", "-format", "json")
		require.Equal(t, 0, code, errOut)
		o := parseJSON(t, out)
		assert.Equal(t, 12, o.Segments)
		assert.Equal(t, 39, o.Nodes)
		assert.Equal(t, 4, o.Dirty)
		assert.Len(t, o.Why, o.Dirty)
		assert.Equal(t, map[string]string{
			"asset:image:segment[7]": "edited",
			"asset:video:segment[7]": "upstream asset:image:segment[7] edited",
			"asset:music":            "edited",
			"timeline":               "upstream asset:video:segment[7], from asset:image:segment[7] edited",
		}, o.Why)
		var planned []string
		for i, st := range o.Stages {
			assert.Equal(t, i, st.Index)
			for _, grp := range st.Groups {
				require.NotEmpty(t, grp.Nodes)
				planned = append(planned, grp.Nodes...)
				switch grp.Kind {
				case "single":
					assert.Nil(t, grp.BatchKey, "a single group has no batchKey")
					assert.Nil(t, grp.Concurrency, "a single group has no concurrency")
					assert.Len(t, grp.Nodes, 1)
				case "batch":
					require.NotNil(t, grp.BatchKey)
					require.NotNil(t, grp.Concurrency)
					assert.Positive(t, *grp.Concurrency)
				default:
					t.Errorf("group kind %q", grp.Kind)
				}
			}
		}
		slices.Sort(planned)
		var why []string
		for id := range o.Why {
			why = append(why, id)
		}
		slices.Sort(why)
		assert.Equal(t, why, planned, "every dirty node is planned once")
		require.Len(t, o.Stages, 3)
		assert.Equal(t, "single", o.Stages[0].Groups[1].Kind)
		assert.Equal(t, []string{"asset:music"}, o.Stages[0].Groups[1].Nodes)
	})

	t.Run("a propagated reason names its upstream node", func(t *testing.T) {
		code, out, _ := runCLI("-duration", "3600", "-force", "script", "-format", "json")
		require.Equal(t, 0, code)
		o := parseJSON(t, out)
		assert.Equal(t, 1083, o.Dirty)
		g, err := graph.Build(graph.Lecture(), 3600)
		require.NoError(t, err)
		for id, reason := range o.Why {
			if id == "script" {
				assert.Equal(t, "forced", reason)
				continue
			}
			n, err := g.Lookup(id)
			require.NoError(t, err)
			// The reason names one of the node's dependencies.
			found := false
			for _, d := range g.Deps(n) {
				found = found || strings.HasPrefix(reason, "upstream "+g.NodeID(d)+" ") || strings.HasPrefix(reason, "upstream "+g.NodeID(d)+",")
			}
			assert.True(t, found, "%s: %q names no dependency", id, reason)
			assert.True(t, strings.HasSuffix(reason, "script forced") || reason == "upstream script forced", "%s: %q", id, reason)
		}
	})

	t.Run("new lecture", func(t *testing.T) {
		code, out, _ := runCLI("-format", "json", "-duration", "30")
		require.Equal(t, 0, code)
		o := parseJSON(t, out)
		assert.Equal(t, 12, o.Dirty)
		require.Len(t, o.Stages, 4)
		for _, reason := range o.Why {
			assert.Equal(t, "never generated", reason)
		}
	})
}

func TestDotAndMermaid(t *testing.T) {
	args := []string{"-duration", "30", "-edit", "asset:image:segment[1]"}
	dirtyIDs := []string{"asset:image:segment[1]", "asset:video:segment[1]", "timeline"}

	t.Run("dot", func(t *testing.T) {
		code, out, errOut := runCLI(append(args, "-format", "dot")...)
		require.Equal(t, 0, code, errOut)
		assert.Empty(t, errOut)
		require.True(t, strings.HasPrefix(out, "digraph regen {\n"))
		require.True(t, strings.HasSuffix(out, "}\n"))
		var filled []string
		nodes, edges := 0, 0
		for _, line := range strings.Split(out, "\n") {
			switch {
			case strings.Contains(line, " -> "):
				edges++
			case strings.Contains(line, "[kind="):
				nodes++
				if strings.Contains(line, "style=filled") {
					filled = append(filled, strings.Trim(strings.Fields(line)[0], `"`))
				}
			}
		}
		assert.Equal(t, 12, nodes)
		assert.Equal(t, 20, edges)
		assert.Equal(t, dirtyIDs, filled, "the dirty nodes are highlighted")
	})
	t.Run("mermaid", func(t *testing.T) {
		code, out, errOut := runCLI(append(args, "-format", "mermaid")...)
		require.Equal(t, 0, code, errOut)
		assert.Empty(t, errOut)
		require.True(t, strings.HasPrefix(out, "flowchart LR\n"))
		var hl []string
		for _, line := range strings.Split(out, "\n") {
			if strings.HasSuffix(line, ":::hl") {
				label := line[strings.Index(line, `"`)+1 : strings.LastIndex(line, `"`)]
				hl = append(hl, label)
			}
		}
		assert.Equal(t, dirtyIDs, hl)
		assert.Contains(t, out, "\tclassDef hl ")
		assert.Equal(t, 20, strings.Count(out, " --> "))
	})
	t.Run("deterministic", func(t *testing.T) {
		for _, format := range []string{"text", "json", "dot", "mermaid"} {
			_, a, _ := runCLI(append(args, "-format", format)...)
			_, b, _ := runCLI(append(args, "-format", format)...)
			assert.Equal(t, a, b, format)
		}
	})
}

const sceneTemplate = `{"kinds": [
	{"name": "script"},
	{"name": "scene", "perSegment": true, "deps": [
		{"kind": "script", "scope": "global"},
		{"kind": "scene", "scope": "previous-segment"}],
	 "batchKey": "gpu", "concurrency": 2},
	{"name": "cut", "deps": [{"kind": "scene", "scope": "all-segments"}]}
]}`

func TestTemplateFile(t *testing.T) {
	path := writeFile(t, "scenes.json", sceneTemplate)
	t.Run("text", func(t *testing.T) {
		code, out, errOut := runCLI("-duration", "40", "-template", path, "-edit", "scene:segment[2]")
		require.Equal(t, 0, code, errOut)
		want := `4 segments, 6 nodes, 3 dirty
Stage 0: Generating 1 scene node in batches of 2
Stage 1: Generating 1 scene node in batches of 2
Stage 2: Generating 1 cut node
Why:
  scene:segment[2]: edited
  scene:segment[3]: upstream scene:segment[2] edited
  cut: upstream scene:segment[2] edited
`
		if diff := cmp.Diff(want, out); diff != "" {
			t.Fatalf("(-want +got):\n%s", diff)
		}
	})
	t.Run("json", func(t *testing.T) {
		code, out, errOut := runCLI("-duration", "20", "-template", path, "-format", "json")
		require.Equal(t, 0, code, errOut)
		o := parseJSON(t, out)
		assert.Equal(t, 2, o.Segments)
		assert.Equal(t, 4, o.Nodes)
		assert.Equal(t, 4, o.Dirty)
		require.Len(t, o.Stages, 4)
		assert.Equal(t, []string{"scene:segment[0]"}, o.Stages[1].Groups[0].Nodes)
		assert.Equal(t, "gpu", *o.Stages[1].Groups[0].BatchKey)
	})
	t.Run("a lecture ID is unknown to it", func(t *testing.T) {
		code, out, errOut := runCLI("-duration", "20", "-template", path, "-edit", "asset:music")
		assert.Equal(t, 2, code)
		assert.Empty(t, out)
		assert.Contains(t, errOut, `no kind "asset:music"`)
	})
}

func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	badJSON := filepath.Join(dir, "bad.json")
	require.NoError(t, os.WriteFile(badJSON, []byte(`{"kinds": [{"name": "a",}]}`), 0o644))
	cycle := filepath.Join(dir, "cycle.json")
	require.NoError(t, os.WriteFile(cycle, []byte(`{"kinds": [{"name": "a", "deps": [{"kind": "b", "scope": "global"}]}, {"name": "b", "deps": [{"kind": "a", "scope": "global"}]}]}`), 0o644))
	unknownField := filepath.Join(dir, "unknown.json")
	require.NoError(t, os.WriteFile(unknownField, []byte(`{"kinds": [{"name": "a", "colour": "red"}]}`), 0o644))
	multiline := filepath.Join(dir, "multi.json")
	require.NoError(t, os.WriteFile(multiline, []byte("{\"kinds\": [\n{\"name\": \"a\n b\"}]}"), 0o644))

	newlineDir := filepath.Join(dir, "a\nb")
	require.NoError(t, os.Mkdir(newlineDir, 0o755))
	newlinePath := filepath.Join(newlineDir, "t.json")
	require.NoError(t, os.WriteFile(newlinePath, []byte(`{"kinds": []}`), 0o644))

	tests := []struct {
		name string
		args []string
		msg  string // part of the one line on stderr
	}{
		{"no arguments", nil, "-duration is required"},
		{"duration not a number", []string{"-duration", "ten"}, `-duration "ten" is not a whole number of seconds`},
		{"duration with a unit", []string{"-duration", "30s"}, `-duration "30s"`},
		{"duration fractional", []string{"-duration", "30.0"}, `-duration "30.0"`},
		// Whole numbers past what an int holds are not "not a whole number".
		{"duration huge", []string{"-duration", "99999999999999999999999"}, "-duration 99999999999999999999999 exceeds the largest limit: 100000000 s (10000000 segments), whatever -max-seconds says"},
		{"duration huge, negative", []string{"-duration", "-99999999999999999999999"}, "-duration -99999999999999999999999: a duration is a positive number of seconds, a multiple of 10"},
		{"duration empty", []string{"-duration", ""}, "-duration is required"},
		{"duration without value", []string{"-duration"}, "flag needs an argument: -duration"},
		{"duration zero", []string{"-duration", "0"}, "graph: invalid duration: 0s must be positive"},
		{"duration negative", []string{"-duration", "-10"}, "graph: invalid duration: -10s must be positive"},
		{"duration not a multiple of 10", []string{"-duration", "125"}, "graph: invalid duration: 125s is not a multiple of 10s"},
		{"duration above a day", []string{"-duration", "86410"}, "86410s exceeds the limit of 86400s (8640 segments); Options.MaxSeconds raises it (here, -max-seconds)"},
		{"duration above -max-seconds", []string{"-duration", "130", "-max-seconds", "120"}, "130s exceeds the limit of 120s (12 segments); Options.MaxSeconds raises it (here, -max-seconds)"},
		{"-max-seconds negative", []string{"-duration", "30", "-max-seconds", "-1"}, "-max-seconds: graph: invalid duration: -1s is not a valid Options.MaxSeconds"},
		{"-max-seconds too large", []string{"-duration", "30", "-max-seconds", "200000000"}, "-max-seconds: graph: invalid duration: 200000000s is not a valid Options.MaxSeconds: allowed are 10 to 100000000"},
		{"-max-seconds not a number", []string{"-duration", "30", "-max-seconds", "abc"}, `-max-seconds "abc" is not a whole number of seconds: allowed are 10 to 100000000, or 0 for the default (86400)`},
		{"-max-seconds empty", []string{"-duration", "30", "-max-seconds="}, `-max-seconds "" is not a whole number of seconds`},
		{"-max-seconds in hexadecimal", []string{"-duration", "30", "-max-seconds", "0x100"}, `-max-seconds "0x100" is not a whole number of seconds`},
		{"-max-seconds with an underscore", []string{"-duration", "30", "-max-seconds", "1_000"}, `-max-seconds "1_000" is not a whole number of seconds`},
		{"-max-seconds huge", []string{"-duration", "30", "-max-seconds", "99999999999999999999"}, "-max-seconds 99999999999999999999: allowed are 10 to 100000000 (1 to 10000000 segments), or 0 for the default (86400)"},
		{"-max-seconds huge, negative", []string{"-duration", "30", "-max-seconds", "-99999999999999999999"}, "-max-seconds -99999999999999999999: allowed are 10 to 100000000 (1 to 10000000 segments), or 0 for the default (86400)"},
		{"-max-nodes negative", []string{"-duration", "30", "-max-nodes", "-1"}, "-max-nodes -1: allowed are 1 to 2147483646, or 0 for the default (20000000)"},
		{"-max-nodes above the cap", []string{"-duration", "30", "-max-nodes", "2147483647"}, "-max-nodes 2147483647: allowed are 1 to 2147483646, or 0 for the default (20000000)"},
		{"-max-nodes huge", []string{"-duration", "30", "-max-nodes", "99999999999999999999"}, "-max-nodes 99999999999999999999: allowed are 1 to 2147483646, or 0 for the default (20000000)"},
		{"-max-nodes not a number", []string{"-duration", "30", "-max-nodes", "many"}, `-max-nodes "many" is not a whole number: allowed are 1 to 2147483646, or 0 for the default (20000000)`},
		{"-max-nodes in hexadecimal", []string{"-duration", "30", "-max-nodes", "0x100"}, `-max-nodes "0x100" is not a whole number`},
		{"-max-edges negative", []string{"-duration", "30", "-max-edges", "-5"}, "-max-edges -5: allowed are 1 to 2147483646, or 0 for the default (50000000)"},
		{"-max-edges with an underscore", []string{"-duration", "30", "-max-edges", "1_000"}, `-max-edges "1_000" is not a whole number: allowed are 1 to 2147483646, or 0 for the default (50000000)`},
		{"-max-edges empty", []string{"-duration", "30", "-max-edges="}, `-max-edges "" is not a whole number`},
		{"unknown node", []string{"-duration", "30", "-edit", "asset:sound"}, `graph: unknown node "asset:sound"`},
		{"segment out of range", []string{"-duration", "30", "-edit", "asset:image:segment[3]"}, "segment 3 is out of range"},
		{"malformed node ID", []string{"-duration", "30", "-force", "asset:image:segment[x]"}, `graph: malformed node ID "asset:image:segment[x]"`},
		{"empty node ID", []string{"-duration", "30", "-missing", ""}, `graph: malformed node ID ""`},
		{"node ID with a newline", []string{"-duration", "30", "-edit", "script\ntimeline"}, `"script\ntimeline"`},
		{"bad node after good ones", []string{"-duration", "30", "-edit", "script", "-missing", "nope:segment[0]"}, `dirty: invalid mark 1`},
		{"missing template file", []string{"-duration", "30", "-template", filepath.Join(dir, "none.json")}, "-template: open "},
		{"template not JSON", []string{"-duration", "30", "-template", badJSON}, "graph: invalid template: bad JSON"},
		{"template with a cycle", []string{"-duration", "30", "-template", cycle}, "graph: cycle among kinds: a -> b -> a"},
		{"template with an unknown field", []string{"-duration", "30", "-template", unknownField}, `unknown field "colour"`},
		{"template with a newline in a name", []string{"-duration", "30", "-template", multiline}, "-template"},
		{"template path with a newline", []string{"-duration", "30", "-template", newlinePath}, `a\nb`},
		{"template path empty", []string{"-duration", "30", "-template="}, "-template needs a FILE.json: a template in graph.Template's JSON form"},
		{"missing template path with a newline", []string{"-duration", "30", "-template", newlineDir + "/none"}, "no such file"},
		{"unknown format", []string{"-duration", "30", "-format", "yaml"}, `-format "yaml": want text, json, dot or mermaid`},
		// An unknown flag is named with the flags there are.
		{"unknown flag", []string{"-duration", "30", "-verbose"}, "flag provided but not defined: -verbose: the flags are -causes, -duration, -edit, -force, -format, -max-edges, -max-nodes, -max-seconds, -missing, -states and -template (-h prints the usage)"},
		{"unknown flag first", []string{"--dur", "30"}, "flag provided but not defined: -dur: the flags are -causes, -duration,"},
		{"stray argument", []string{"-duration", "30", "timeline"}, `unexpected argument "timeline"`},
		// A flag that takes one value, given twice, is refused rather than
		// have the last one win silently.
		{"-duration twice", []string{"-duration", "30", "-duration", "40"}, `invalid value "40" for flag -duration: given twice, "30" and "40": give it once`},
		{"-format twice", []string{"-duration", "30", "-format", "json", "-format", "text"}, `invalid value "text" for flag -format: given twice, "json" and "text": give it once`},
		{"-template twice", []string{"-duration", "30", "-template", "a.json", "-template", "b.json"}, `for flag -template: given twice, "a.json" and "b.json"`},
		{"-max-seconds twice", []string{"-duration", "30", "-max-seconds", "100", "-max-seconds=100"}, `for flag -max-seconds: given twice, "100" and "100"`},
		{"-max-nodes twice", []string{"-duration", "30", "-max-nodes", "100", "-max-nodes", "200"}, `for flag -max-nodes: given twice, "100" and "200"`},
		{"-max-edges twice", []string{"-duration", "30", "-max-edges", "100", "-max-edges", "200"}, `for flag -max-edges: given twice, "100" and "200"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			check := func(t *testing.T, code int, out, errOut string) {
				t.Helper()
				assert.Equal(t, 2, code, "exit status")
				assert.Empty(t, out, "nothing on stdout")
				require.True(t, strings.HasSuffix(errOut, "\n"), "stderr %q ends with a newline", errOut)
				assert.Equal(t, 1, strings.Count(errOut, "\n"), "exactly one line on stderr: %q", errOut)
				assert.True(t, strings.HasPrefix(errOut, "plan: "), "%q", errOut)
				assert.Contains(t, errOut, tc.msg)
			}
			t.Run("run", func(t *testing.T) {
				code, out, errOut := runCLI(tc.args...)
				check(t, code, out, errOut)
			})
			t.Run("binary", func(t *testing.T) {
				code, out, errOut := runBinary(t, tc.args...)
				check(t, code, out, errOut)
			})
		})
	}
}

func TestBinary(t *testing.T) {
	code, out, errOut := runBinary(t, "-duration", "3600", "-edit", "asset:narration:segment[3]", "-format", "json")
	require.Equal(t, 0, code, errOut)
	assert.Empty(t, errOut)
	_, want, _ := runCLI("-duration", "3600", "-edit", "asset:narration:segment[3]", "-format", "json")
	assert.Equal(t, want, out, "the binary prints what run prints")

	code, out, errOut = runBinary(t, "-h")
	assert.Equal(t, 0, code)
	assert.True(t, strings.HasPrefix(out, "usage: plan -duration SECONDS"), "%q", out)
	assert.Empty(t, errOut)
}

// The hint to raise -max-seconds goes only with the error of a duration
// over the limit that some -max-seconds makes valid: a duration that is
// also not a multiple of 10s, or above the highest -max-seconds allowed
// (graph.MaxSecondsLimit), is refused without it.
func TestMaxSecondsHintOnlyForTheLimit(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-duration", "86415"}, "86415s is not a multiple of 10s"},
		{[]string{"-duration", "135", "-max-seconds", "120"}, "135s is not a multiple of 10s"},
		{[]string{"-duration", "100000010"}, "100000010s exceeds the largest limit, MaxSecondsLimit: 100000000s (10000000 segments)"},
	} {
		code, out, errOut := runCLI(tc.args...)
		assert.Equal(t, 2, code, "%v", tc.args)
		assert.Empty(t, out)
		assert.Equal(t, "plan: graph: invalid duration: "+tc.want+"\n", errOut, "%v", tc.args)
	}
}

// TestBuildOptions: -max-seconds raises the longest duration alone; the
// graph's node and edge limits stay at their defaults unless -max-nodes or
// -max-edges raise them. Any -max-seconds lifted both to their caps
// (2,147,483,646), so that a wide template on a long duration went past
// every size check and died out of memory in graph.Build.
func TestBuildOptions(t *testing.T) {
	for _, tc := range []struct {
		maxSecs, maxNodes, maxEdges int
		want                        graph.Options
	}{
		{0, 0, 0, graph.Options{}},
		{graph.MaxSecondsLimit, 0, 0, graph.Options{MaxSeconds: graph.MaxSecondsLimit}},
		{graph.MaxSecondsLimit, 30_000_000, 0, graph.Options{MaxSeconds: graph.MaxSecondsLimit, MaxNodes: 30_000_000}},
		{0, 0, maxSize, graph.Options{MaxEdges: maxSize}},
	} {
		assert.Equal(t, tc.want, buildOptions(tc.maxSecs, tc.maxNodes, tc.maxEdges), "%+v", tc)
	}
}

// wideTemplate writes a template of n per-segment kinds, each depending on
// the one before in the same segment, and returns its path.
func wideTemplate(t *testing.T, n int) string {
	t.Helper()
	var tmpl graph.Template
	for i := range n {
		k := graph.Kind{Name: fmt.Sprintf("k%d", i), PerSegment: true}
		if i > 0 {
			k.Deps = []graph.Dep{{Kind: fmt.Sprintf("k%d", i-1), Scope: graph.ScopeSameSegment}}
		}
		tmpl.Kinds = append(tmpl.Kinds, k)
	}
	data, err := json.Marshal(tmpl)
	require.NoError(t, err)
	return writeFile(t, "wide.json", string(data))
}

// runBounded runs the built command with its address space bounded to
// 1 GiB (ulimit -v), so that a graph the limits let through fails with
// the runtime's out-of-memory trace instead of taking the machine's
// memory: the command must refuse the graph before it allocates it.
func runBounded(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("ulimit -v bounds the command on Linux alone")
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh to run the command under ulimit -v")
	}
	// exec: the command replaces the shell, under its limit.
	cmd := exec.CommandContext(t.Context(), sh, append([]string{"-c", `ulimit -v 1048576 && exec "$0" "$@"`, binary}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("running %s: %v", binary, err)
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}

// TestSizeLimitsRefuseBeforeBuilding: a graph over the node or edge limit
// is refused on one line that names the limit and the flag that raises
// it, and exits 2, before anything of its size is allocated. With any
// -max-seconds, 200 per-segment kinds over 10,000,000 s (200,000,000
// nodes, about 3 GB in the graph alone) passed the size checks and the
// command died with "fatal error: out of memory" (here, within its 1 GiB
// bound). Raising one limit leaves the other at its default.
func TestSizeLimitsRefuseBeforeBuilding(t *testing.T) {
	wide := wideTemplate(t, 200)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"nodes, with -max-seconds", []string{"-duration", "10000000", "-max-seconds", "10000000", "-template", wide},
			"plan: graph: graph too large: 200000000 nodes exceed the limit of 20000000; Options.MaxNodes raises it, up to 2147483646 (here, -max-nodes)\n"},
		{"edges, with -max-nodes", []string{"-duration", "10000000", "-max-seconds", "10000000", "-max-nodes", "2147483646", "-template", wide},
			"plan: graph: graph too large: 199000000 edges exceed the limit of 50000000; Options.MaxEdges raises it, up to 2147483646 (here, -max-edges)\n"},
		{"nodes, over -max-nodes", []string{"-duration", "10000000", "-max-seconds", "10000000", "-max-nodes", "100000000", "-max-edges", "2147483646", "-template", wide},
			"plan: graph: graph too large: 200000000 nodes exceed the limit of 100000000; Options.MaxNodes raises it, up to 2147483646 (here, -max-nodes)\n"},
		{"the lecture, with -max-seconds", []string{"-duration", "70000000", "-max-seconds", "70000000"},
			"plan: graph: graph too large: 21000003 nodes exceed the limit of 20000000; Options.MaxNodes raises it, up to 2147483646 (here, -max-nodes)\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runBounded(t, tc.args...)
			assert.Equal(t, tc.want, errOut)
			assert.Equal(t, 2, code, "exit status")
			assert.Empty(t, out)
		})
	}
}

// -max-nodes and -max-edges raise the graph's limits, as
// graph.Options.MaxNodes and MaxEdges do; past them, the graph is refused
// with the flag named. The lecture of 100 s has 33 nodes and 62 edges.
func TestMaxNodesAndEdges(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // stderr; empty: accepted
	}{
		{[]string{"-duration", "100", "-max-nodes", "33", "-max-edges", "62"}, ""},
		{[]string{"-duration", "100", "-max-nodes", "0033"}, ""},
		{[]string{"-duration", "100", "-max-nodes", "32"}, "plan: graph: graph too large: 33 nodes exceed the limit of 32; Options.MaxNodes raises it, up to 2147483646 (here, -max-nodes)\n"},
		{[]string{"-duration", "100", "-max-edges", "61"}, "plan: graph: graph too large: 62 edges exceed the limit of 61; Options.MaxEdges raises it, up to 2147483646 (here, -max-edges)\n"},
	} {
		code, out, errOut := runCLI(tc.args...)
		assert.Equal(t, tc.want, errOut, "%v", tc.args)
		if tc.want == "" {
			assert.Equal(t, 0, code, "%v", tc.args)
			assert.True(t, strings.HasPrefix(out, "10 segments, 33 nodes, 33 dirty\n"), out)
		} else {
			assert.Equal(t, 2, code, "%v", tc.args)
			assert.Empty(t, out)
		}
	}
}

// TestTemplateTooLarge: a template file is read up to a limit, so that
// one without end (/dev/zero) is refused, on one line, rather than read
// until memory runs out. The limit is lowered here; a file of the limit
// is read.
func TestTemplateTooLarge(t *testing.T) {
	defer func(n int64) { maxTemplateBytes = n }(maxTemplateBytes)
	tmpl := `{"kinds": [{"name": "a", "perSegment": true}]}`
	maxTemplateBytes = int64(len(tmpl))
	code, out, errOut := runCLI("-duration", "10", "-template", writeFile(t, "t.json", tmpl))
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, "1 segment, 1 node, 1 dirty\nStage 0: Generating 1 a node\nWhy:\n  a:segment[0]: never generated\n", out)

	big := writeFile(t, "big.json", tmpl+" ")
	code, out, errOut = runCLI("-duration", "10", "-template", big)
	assert.Equal(t, 2, code)
	assert.Empty(t, out)
	assert.Equal(t, "plan: -template: "+big+" is larger than 46 bytes, the most a template takes\n", errOut)

	if _, err := os.Stat("/dev/zero"); err == nil {
		maxTemplateBytes = 1 << 20
		code, out, errOut = runCLI("-duration", "10", "-template", "/dev/zero")
		assert.Equal(t, 2, code)
		assert.Empty(t, out)
		assert.Equal(t, "plan: -template: /dev/zero is larger than 1 MiB, the most a template takes\n", errOut)
	}
}

// TestHelp: -h prints the synopsis, then every flag with a line that says
// what it does, on stdout, and exits 0. It printed the synopsis alone.
func TestHelp(t *testing.T) {
	code, out, errOut := runCLI("-h")
	assert.Equal(t, 0, code)
	assert.Empty(t, errOut)
	require.True(t, strings.HasPrefix(out, usage), "%q", out)
	for _, tt := range []struct{ flag, desc string }{
		{"-duration SECONDS", "a multiple of 10 (required)"},
		{"-edit NODEID", "whose parameters changed (repeatable)"},
		{"-force NODEID", "to regenerate even if unchanged (repeatable)"},
		{"-missing NODEID", "whose asset is missing (repeatable)"},
		{"-template FILE.json", "(default: the built-in lecture template)"},
		{"-format FORMAT", "text, json, dot or mermaid (default \"text\")"},
		{"-max-seconds SECONDS", "the longest duration accepted"},
		{"-max-nodes N", "the most nodes the graph may have"},
		{"-max-edges N", "the most dependency edges the graph may have"},
		{"-states FILE.json", "a JSON object of node ID to dirty.State; a node not in it is missing"},
		{"-causes", "list every root cause of each dirty node"},
	} {
		line := "\n  " + tt.flag + "\n    \t"
		i := strings.Index(out, line)
		if !assert.GreaterOrEqual(t, i, 0, "no line for %s in %q", tt.flag, out) {
			continue
		}
		desc, _, _ := strings.Cut(out[i+len(line):], "\n")
		assert.Contains(t, desc, tt.desc, tt.flag)
	}
}

// failWriter fails every write.
type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

// TestWriteError: output that cannot be written is not bad input: the
// command says so on one line and exits 1, whatever the format.
func TestWriteError(t *testing.T) {
	for _, format := range []string{"text", "json", "dot", "mermaid"} {
		var stderr bytes.Buffer
		code := run([]string{"-duration", "30", "-format", format}, failWriter{}, &stderr)
		assert.Equal(t, 1, code, format)
		assert.Equal(t, "plan: write: disk full\n", stderr.String(), format)
	}
}

// countingFailWriter fails every write, and notes how many explanations
// write had appended when it was first called.
type countingFailWriter struct {
	calls          int
	explainedAtErr int
	explained      *int
}

func (w *countingFailWriter) Write([]byte) (int, error) {
	w.calls++
	if w.calls == 1 {
		w.explainedAtErr = *w.explained
	}
	return 0, errors.New("disk full")
}

// TestWriteStopsAtTheFirstError: in the text and json formats, write
// ignored its buffer's and WriteStagesJSON's errors and went on explaining
// every dirty node (26,000 for a day) after its writer had failed. It now
// returns the writer's error at once: no node is explained after the
// write that failed.
func TestWriteStopsAtTheFirstError(t *testing.T) {
	explained := 0
	defer func(f func(*dirty.Set, []byte, graph.Node) []byte) { appendExplain = f }(appendExplain)
	appendExplain = func(s *dirty.Set, b []byte, n graph.Node) []byte {
		explained++
		return s.AppendExplain(b, n)
	}
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			explained = 0
			w := &countingFailWriter{explained: &explained}
			var stderr bytes.Buffer
			code := run([]string{"-duration", "86400", "-format", format}, w, &stderr)
			assert.Equal(t, 1, code)
			assert.Equal(t, "plan: write: disk full\n", stderr.String())
			assert.Equal(t, 1, w.calls, "writes after the first error")
			require.Positive(t, w.explainedAtErr, "the output fails within the explanations")
			assert.Equal(t, w.explainedAtErr, explained, "nodes explained after the writer failed")
		})
	}
}
