package main

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzParse parses a command line from the fuzzer's input, its
// arguments separated by NUL bytes. Whatever the input, parse returns a
// config or an error, never a panic, and gives the same answer twice; a
// config holds what its flags say: a lecture of -duration seconds, a
// latency of 0 or more, a flaky rate from 0 to 1, and edits and failing
// nodes that are nodes of the lecture, each edit once.
func FuzzParse(f *testing.F) {
	for _, args := range [][]string{
		{}, {"-duration", "30"}, {"-json", "-duration", "2m"}, {"-duration", "125"}, {"-duration", "0"},
		{"-duration", "86410"}, {"-duration", "99999999999999999990"}, {"-duration", "-99999999999999999990"},
		{"-latency", "fast"}, {"-latency", "-1s"}, {"-latency", "0"}, {"-seed", "-1"}, {"-seed", "18446744073709551615"},
		{"-flaky", "1.5"}, {"-flaky", "NaN"}, {"-flaky", "0.3"}, {"-mode", "staged"}, {"-mode", "fast"},
		{"-edit", "asset:voice:segment[3]"}, {"-duration", "30", "-edit", "asset:narration:segment[3]"},
		{"-edit", "asset:narration:segment[03]"}, {"-edit", "script", "-edit", "none"}, {"-edit", "none"},
		{"-edit", "script", "-edit", "script", "-edit", "timeline"}, {"-fail", "nothing"},
		{"-fail", "asset:image:segment[x]", "-fail", "asset:image:segment[2]"}, {"-speed", "2"}, {"now"}, {"-h"},
	} {
		f.Add(strings.Join(args, "\x00"))
	}
	f.Fuzz(func(t *testing.T, line string) {
		var args []string
		if line != "" {
			args = strings.Split(line, "\x00")
		}
		c, err := parse(args)
		c2, err2 := parse(args)
		if (err == nil) != (err2 == nil) || (err != nil && err.Error() != err2.Error()) {
			t.Fatalf("%q: parse gave %v, then %v", args, err, err2)
		}
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("%q: an empty error", args)
			}
			return
		}
		fs, raw := newFlagSet()
		if err := fs.Parse(args); err != nil {
			t.Fatalf("%q: parse took flags the flag set refuses: %v", args, err)
		}
		if secs, _ := strconv.Atoi(*raw.duration); c.g.Segments()*10 != secs {
			t.Fatalf("%q: %d segments for -duration %s", args, c.g.Segments(), *raw.duration)
		}
		if c.latency < 0 || !(c.flaky >= 0 && c.flaky <= 1) {
			t.Fatalf("%q: latency %v, flaky %v", args, c.latency, c.flaky)
		}
		if d, _ := time.ParseDuration(*raw.latency); d != c.latency {
			t.Fatalf("%q: latency %v for -latency %s", args, c.latency, *raw.latency)
		}
		switch {
		case slices.Contains(raw.edits, "none"):
			if c.edits != nil {
				t.Fatalf("%q: -edit none gave edits %q", args, c.edits)
			}
		case len(c.edits) == 0 || len(c.edits) > max(1, len(raw.edits)):
			t.Fatalf("%q: edits %q", args, c.edits)
		}
		for i, id := range c.edits {
			if n, err := c.g.Lookup(id); err != nil || c.g.NodeID(n) != id || slices.Index(c.edits, id) != i {
				t.Fatalf("%q: edit %q is not a node of the lecture, or is there twice (%v)", args, id, err)
			}
		}
		for id := range c.fail {
			if n, err := c.g.Lookup(id); err != nil || c.g.NodeID(n) != id {
				t.Fatalf("%q: -fail %q is not a node of the lecture (%v)", args, id, err)
			}
		}
		if len(c.fail) > len(raw.fails) || !slices.Equal(c.edits, c2.edits) || c.seed != c2.seed {
			t.Fatalf("%q: %d failing nodes for %d -fail; edits %q then %q", args, len(c.fail), len(raw.fails), c.edits, c2.edits)
		}
	})
}
