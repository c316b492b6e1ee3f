package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/graph"
)

// FuzzRun runs the command with a duration, marks, a format, a
// -max-seconds, a template file, a states file and -causes from the
// fuzzer's input. -max-seconds is always set, from 1 to 400, so that no
// input builds a lecture longer than 40 segments. Whatever the input, the
// command exits with 0 and writes its output on stdout alone, or exits
// with 2 and writes one line on stderr alone; a template that
// graph.ParseTemplate refuses is refused, and so is a states file that is
// not one JSON object; the JSON form is JSON, and with -causes its
// "causes" name every dirty node, each with causes that are dirty for a
// reason of their own, itself among them when it has one; and the same
// input gives byte-identical output.
func FuzzRun(f *testing.F) {
	lecture, err := json.Marshal(graph.Lecture())
	if err != nil {
		f.Fatal(err)
	}
	clean, err := cleanStatesJSON(graph.Lecture(), 30)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []struct {
		duration, edit, force, missing string
		tmpl                           string
		format                         uint8
		maxSecs                        uint16
		states                         string
		causes                         bool
	}{
		{"30", "", "", "", "", 0, 300, "", false},
		{"60", "asset:narration:segment[3]", "", "", "", 1, 120, "", false},
		{"120", "asset:image:segment[7]", "asset:music", "", "", 1, 200, "", false},
		{"40", "scene:segment[2]", "", "", sceneTemplate, 0, 400, "", false},
		{"20", "", "", "cut", sceneTemplate, 2, 100, "", false},
		{"20", "asset:music", "", "", sceneTemplate, 3, 100, "", false},
		{"30", "", "script", "timeline", string(lecture), 3, 30, "", false},
		{"130", "", "", "", "", 0, 120, "", false},
		{"-10", "", "", "", "", 0, 300, "", false},
		{"35", "", "", "", "", 0, 300, "", false},
		{"99999999999999999999", "", "", "", "", 0, 300, "", false},
		{"30", "script\ntimeline", "", "", "", 0, 300, "", false},
		{"30", "", "asset:image:segment[x]", "", "", 0, 300, "", false},
		{"30", "", "", "", `{"kinds": [{"name": "a", "deps": [{"kind": "b", "scope": "global"}]}, {"name": "b", "deps": [{"kind": "a", "scope": "global"}]}]}`, 0, 300, "", false},
		{"30", "", "", "", `{"kinds": [{"name": "a", "colour": "red"}]}`, 0, 300, "", false},
		{"30", "", "", "", `not json`, 0, 300, "", false},
		{"30", "", "", "", "", 0, 300, string(clean), false},
		{"30", "asset:image:segment[1]", "", "", "", 1, 300, string(clean), true},
		{"50", "voice:segment[3]", "", "", podcastTemplate, 0, 300, "", true},
		{"50", "voice:segment[0]", "voice:segment[3]", "", podcastTemplate, 1, 300, `{"mix": {"status": "failed"}}`, true},
		{"30", "", "", "", "", 2, 300, `{"timeline": {"status": "failed", "lastError": "x"}}`, true},
		{"30", "", "", "", "", 1, 300, `{"script": {"status": "clean", "rev": 1, "inputHash": "x", "outputHash": "y"}}`, true},
		{"30", "", "", "", "", 0, 300, `{"asset:sound": {}}`, false},
		{"30", "", "", "", "", 0, 300, `{"script": {}, "script": {}}`, false},
		{"30", "", "", "", "", 0, 300, `{"script": null}`, false},
		{"30", "", "", "", "", 0, 300, `[]`, false},
		{"30", "", "", "", "", 0, 300, `{"script": {"status": "done"}}`, false},
		{"30", "", "", "", "", 0, 300, `{"script": {}} {}`, false},
	} {
		f.Add(s.duration, s.edit, s.force, s.missing, []byte(s.tmpl), s.format, s.maxSecs, []byte(s.states), s.causes)
	}
	formats := []string{"text", "json", "dot", "mermaid", "yaml"}
	f.Fuzz(func(t *testing.T, duration, edit, force, missing string, tmpl []byte, format uint8, maxSecs uint16, states []byte, causes bool) {
		max := 1 + int(maxSecs)%400
		args := []string{"-duration", duration, "-max-seconds", strconv.Itoa(max), "-format", formats[int(format)%len(formats)]}
		for _, m := range []struct{ flag, id string }{{"-edit", edit}, {"-force", force}, {"-missing", missing}} {
			if m.id != "" {
				args = append(args, m.flag, m.id)
			}
		}
		var tmplErr error
		if len(tmpl) > 0 {
			path := filepath.Join(t.TempDir(), "t.json")
			if err := os.WriteFile(path, tmpl, 0o644); err != nil {
				t.Fatal(err)
			}
			args = append(args, "-template", path)
			_, tmplErr = graph.ParseTemplate(tmpl)
		}
		if len(states) > 0 {
			path := filepath.Join(t.TempDir(), "s.json")
			if err := os.WriteFile(path, states, 0o644); err != nil {
				t.Fatal(err)
			}
			args = append(args, "-states", path)
		}
		if causes {
			args = append(args, "-causes")
		}
		code, out, errOut := runCLI(args...)
		switch code {
		case 0:
			if errOut != "" || out == "" {
				t.Fatalf("%q: status 0 with stdout %q and stderr %q", args, out, errOut)
			}
			if tmplErr != nil {
				t.Fatalf("%q: accepted a template that ParseTemplate refuses: %v", args, tmplErr)
			}
			var object map[string]json.RawMessage
			if len(states) > 0 && json.Unmarshal(states, &object) != nil {
				t.Fatalf("%q: accepted states that are not one JSON object: %q", args, states)
			}
			if formats[int(format)%len(formats)] == "json" && !json.Valid([]byte(out)) {
				t.Fatalf("%q: -format json wrote %q", args, out)
			}
			if formats[int(format)%len(formats)] == "json" && causes {
				checkCauses(t, args, out)
			}
		case 2:
			if out != "" || !strings.HasPrefix(errOut, "plan: ") || !strings.HasSuffix(errOut, "\n") || strings.Count(errOut, "\n") != 1 {
				t.Fatalf("%q: status 2 with stdout %q and stderr %q: want one line on stderr alone", args, out, errOut)
			}
		default:
			t.Fatalf("%q: status %d, stdout %q, stderr %q", args, code, out, errOut)
		}
		code2, out2, errOut2 := runCLI(args...)
		if code2 != code || out2 != out || errOut2 != errOut {
			t.Fatalf("%q: a second run differs: status %d then %d\nstdout %q\nthen %q\nstderr %q\nthen %q", args, code, code2, out, out2, errOut, errOut2)
		}
	})
}

// cleanStatesJSON returns, in the -states form, the states of a graph of
// tmpl over secs seconds with every node clean and made from its
// dependencies' outputs.
func cleanStatesJSON(tmpl graph.Template, secs int) ([]byte, error) {
	g, err := graph.Build(tmpl, secs)
	if err != nil {
		return nil, err
	}
	states := make(map[string]dirty.State, g.Len())
	for n := range g.Len() {
		var deps []string
		for _, d := range g.Deps(graph.Node(n)) {
			deps = append(deps, states[g.NodeID(d)].OutputHash)
		}
		id := g.NodeID(graph.Node(n))
		states[id] = dirty.State{Status: dirty.StatusClean, Rev: 1, InputHash: dirty.InputHash(1, deps), OutputHash: "out " + id}
	}
	return json.Marshal(states)
}

// checkCauses checks the "causes" of the json format out: one entry for
// each dirty node, each a non-empty list of dirty nodes with a reason of
// their own, in which the node is when it has one.
func checkCauses(t *testing.T, args []string, out string) {
	t.Helper()
	var o struct {
		Why    map[string]string   `json:"why"`
		Causes map[string][]string `json:"causes"`
	}
	if err := json.Unmarshal([]byte(out), &o); err != nil {
		t.Fatalf("%q: %v", args, err)
	}
	if len(o.Causes) != len(o.Why) {
		t.Fatalf("%q: %d causes for %d dirty nodes: %s", args, len(o.Causes), len(o.Why), out)
	}
	for id, causes := range o.Causes {
		why, ok := o.Why[id]
		if !ok || len(causes) == 0 {
			t.Fatalf("%q: causes of %s: %q, why %q", args, id, causes, why)
		}
		own := !strings.HasPrefix(why, "upstream ")
		self := false
		for _, c := range causes {
			self = self || c == id
			if w := o.Why[c]; w == "" || strings.HasPrefix(w, "upstream ") {
				t.Fatalf("%q: %s has cause %s, which is %q", args, id, c, w)
			}
		}
		if self != own {
			t.Fatalf("%q: %s (%q) among its causes %q: %v", args, id, why, causes, self)
		}
	}
}
