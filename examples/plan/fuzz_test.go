package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/regengraph/regen/graph"
)

// FuzzRun runs the command with a duration, marks, a format, a
// -max-seconds and a template file from the fuzzer's input. -max-seconds
// is always set, from 1 to 400, so that no input builds a lecture longer
// than 40 segments. Whatever the input, the command exits with 0 and
// writes its output on stdout alone, or exits with 2 and writes one line
// on stderr alone; a template that graph.ParseTemplate refuses is refused;
// the JSON form is JSON; and the same input gives byte-identical output.
func FuzzRun(f *testing.F) {
	lecture, err := json.Marshal(graph.Lecture())
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []struct {
		duration, edit, force, missing string
		tmpl                           string
		format                         uint8
		maxSecs                        uint16
	}{
		{"30", "", "", "", "", 0, 300},
		{"60", "asset:narration:segment[3]", "", "", "", 1, 120},
		{"120", "asset:image:segment[7]", "asset:music", "", "", 1, 200},
		{"40", "scene:segment[2]", "", "", sceneTemplate, 0, 400},
		{"20", "", "", "cut", sceneTemplate, 2, 100},
		{"20", "asset:music", "", "", sceneTemplate, 3, 100},
		{"30", "", "script", "timeline", string(lecture), 3, 30},
		{"130", "", "", "", "", 0, 120},
		{"-10", "", "", "", "", 0, 300},
		{"35", "", "", "", "", 0, 300},
		{"99999999999999999999", "", "", "", "", 0, 300},
		{"30", "script\ntimeline", "", "", "", 0, 300},
		{"30", "", "asset:image:segment[x]", "", "", 0, 300},
		{"30", "", "", "", `{"kinds": [{"name": "a", "deps": [{"kind": "b", "scope": "global"}]}, {"name": "b", "deps": [{"kind": "a", "scope": "global"}]}]}`, 0, 300},
		{"30", "", "", "", `{"kinds": [{"name": "a", "colour": "red"}]}`, 0, 300},
		{"30", "", "", "", `not json`, 0, 300},
	} {
		f.Add(s.duration, s.edit, s.force, s.missing, []byte(s.tmpl), s.format, s.maxSecs)
	}
	formats := []string{"text", "json", "dot", "mermaid", "yaml"}
	f.Fuzz(func(t *testing.T, duration, edit, force, missing string, tmpl []byte, format uint8, maxSecs uint16) {
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
		code, out, errOut := runCLI(args...)
		switch code {
		case 0:
			if errOut != "" || out == "" {
				t.Fatalf("%q: status 0 with stdout %q and stderr %q", args, out, errOut)
			}
			if tmplErr != nil {
				t.Fatalf("%q: accepted a template that ParseTemplate refuses: %v", args, tmplErr)
			}
			if formats[int(format)%len(formats)] == "json" && !json.Valid([]byte(out)) {
				t.Fatalf("%q: -format json wrote %q", args, out)
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
