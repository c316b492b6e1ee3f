// Command plan prints the regeneration plan of a lecture: which nodes a
// set of changes makes dirty, why, and in which stages they run.
//
//	go run ./examples/plan -duration SECONDS [-states FILE.json]
//	    [-edit NODEID]... [-force NODEID]... [-missing NODEID]... [-causes]
//	    [-template FILE.json] [-format text|json|dot|mermaid]
//	    [-max-seconds SECONDS] [-max-nodes N] [-max-edges N]
//
// Without -states, -edit, -force or -missing the lecture is new: every
// node is missing, so every node is dirty. With any of -edit, -force and
// -missing alone, every other node is taken as clean. Bad input (a flag
// other than -edit, -force and -missing given twice among it) prints one
// line on stderr and exits with 2; output that cannot be written prints
// one line on stderr and exits with 1; -h prints the usage, with a line
// on each flag, on stdout and exits 0.
//
// # Stored states
//
// -states FILE.json reads the nodes' recorded states, as a host's store
// keeps them: a JSON object of node ID to state, each in the strict JSON
// form of dirty.State ({"script": {"status": "clean", "rev": 1,
// "inputHash": "...", "outputHash": "..."}, ...}), the form that
// dirty.States' MarshalJSON asks for. A node not in the file is missing
// (never generated), as a node that a store never saved is: a node is
// taken as clean only when the file says so. The file is read as
// strictly as a template: an ID that names no node of the graph (a
// segment past -duration, a kind the template has not), an ID given
// twice, a state that dirty.State refuses, anything but one object of
// states, and a file over 256 MiB and 193 KiB a node of the graph (a
// failed node's error, as the executor keeps it, is up to 32 KiB, whose
// JSON escapes may take six times as much) are refused, as bad input,
// with a *StatesError that names the file and the ID. The marks of
// dirty.StaleInputs are added to those of -edit, -force and -missing,
// as the executor adds them at a run's start: a clean node whose
// recorded inputHash is not that of its rev and its dependencies'
// outputHash now is marked inputs changed, so that a crash between a
// dependency's new output and its dependent's run shows. This answers
// "what would run for this episode now?" from a store's states.
//
// # Causes
//
// A dirty node's reason names one root cause: with voice:segment[0] and
// voice:segment[3] edited, the mix is "upstream voice:segment[0] edited".
// -causes lists them all (dirty.Set.Causes), in node order: in the text
// format, under each node, one line a cause, "    cause <ID>: <its
// reason>" (a node with a reason of its own is among its causes); in the
// json format, a "causes" object after "why", of each dirty node's ID to
// the IDs of its causes. The dot and mermaid formats draw none, and
// refuse -causes. Each node's causes cost a walk over the dirty nodes
// upstream of it, and each is written: where many dirty nodes, each its
// own cause, are upstream of many others, the output grows as their
// square (a new graph of a kind that depends on its previous segment:
// 2,000 segments wrote 92 MB; the lecture of a day, 6 MB). Ask for the
// causes of a few changes.
//
// # Limits
//
// -max-seconds raises the longest duration accepted (86,400 s by
// default), as graph.Options.MaxSeconds does, and nothing else: a graph of
// more than 20,000,000 nodes or 50,000,000 edges (the defaults of
// graph.Options.MaxNodes and MaxEdges) is refused, as bad input, before
// it is built, unless -max-nodes or -max-edges raise those limits, up to
// 2,147,483,646. Memory grows with the graph: the command writes its
// output as it goes, and holds about 45 to 55 bytes a node (the
// lecture's 19,999,998 nodes, at the default limits, took about 870 MB
// printed as text, 1.05 GB as JSON with a change): raise them only as
// far as the machine holds. A states file adds what its states hold,
// about 110 bytes a node and their strings.
//
// # Formats
//
// -format json prints one line, one JSON object: {"segments": S,
// "nodes": N, "dirty": D, "why": {"<node ID>": "<why, in words>", ...},
// "stages": [...]}, with "why" in node order, in the words of
// dirty.Set.Explain, and "stages" in the form of planner.Plan.MarshalJSON;
// with -causes, "causes": {"<node ID>": ["<cause ID>", ...], ...} comes
// after "why". -format dot and -format mermaid print the graph, the dirty
// nodes highlighted.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/planner"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type idList []string

func (l *idList) String() string     { return strings.Join(*l, ",") }
func (l *idList) Set(s string) error { *l = append(*l, s); return nil }

// once is a flag that takes one value: given twice, it is refused, rather
// than have the last value win silently.
type once struct {
	value string
	set   bool
}

func (o *once) String() string { return o.value }

func (o *once) Set(s string) error {
	if o.set {
		return fmt.Errorf("given twice, %q and %q: give it once", o.value, s)
	}
	o.value, o.set = s, true
	return nil
}

// usage is the synopsis -h prints before the flags.
const usage = `usage: plan -duration SECONDS [-states FILE.json] [-edit NODEID]... [-force NODEID]... [-missing NODEID]... [-causes] [-template FILE.json] [-format text|json|dot|mermaid] [-max-seconds SECONDS] [-max-nodes N] [-max-edges N]

Prints which nodes of a lecture a set of changes makes dirty, why, and in
which stages they run. Without -states, the lecture is new and every node
is dirty, unless -edit, -force or -missing is given: then every other node
is clean.

-states reads the nodes' recorded states from a file: a JSON object of node
ID to state, each in dirty.State's JSON form, as a store keeps them:

  {"script": {"status": "clean", "rev": 1, "inputHash": "...", "outputHash": "..."},
   "asset:music": {"status": "failed", "lastError": "..."}, ...}

A node not in the file is missing (never generated), as in a store that
never saved it: list every node whose state is stored. An ID the graph has
not (a segment past -duration), an ID given twice, and a file over 256 MiB
and 193 KiB a node are refused. A clean node whose inputHash is not that of
its rev and its dependencies' outputHash now (a crash between a
dependency's new output and its own run) is marked inputs changed, as the
executor does at a run's start; -edit, -force and -missing mark nodes on top.

-causes lists every root cause of each dirty node (the reason shown names
one); in the text format, under each node, one line a cause with its own
reason.

A graph over the node or edge limit is refused before it is built;
-max-nodes and -max-edges raise them (-max-seconds does not). Bad input
prints one line on stderr and exits 2.

Flags:
`

// run is the command; it returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("plan", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var duration, tmplFile, format, maxSecsFlag, maxNodesFlag, maxEdgesFlag once
	fs.Var(&duration, "duration", "the lecture's length in `SECONDS`, a multiple of 10 (required)")
	var edits, forces, missing idList
	fs.Var(&edits, "edit", "a `NODEID` whose parameters changed (repeatable)")
	fs.Var(&forces, "force", "a `NODEID` to regenerate even if unchanged (repeatable)")
	fs.Var(&missing, "missing", "a `NODEID` whose asset is missing (repeatable)")
	fs.Var(&tmplFile, "template", "a template `FILE.json`, in graph.Template's JSON form (default: the built-in lecture template)")
	fs.Var(&format, "format", "the output `FORMAT`: text, json, dot or mermaid (default \"text\")")
	var statesPath once
	fs.Var(&statesPath, "states", "a `FILE.json` of the nodes' recorded states, a JSON object of node ID to dirty.State; a node not in it is missing (default: none, see above)")
	var causes onceBool
	fs.Var(&causes, "causes", "list every root cause of each dirty node, with its own reason (text and json formats only)")
	fs.Var(&maxSecsFlag, "max-seconds", "the longest duration accepted, in `SECONDS` (0: the default, 86400); it raises no other limit")
	fs.Var(&maxNodesFlag, "max-nodes", fmt.Sprintf("the most nodes the graph may have, `N` from 1 to %d (0: the default, %d); memory grows with them", maxSize, graph.DefaultMaxNodes))
	fs.Var(&maxEdgesFlag, "max-edges", fmt.Sprintf("the most dependency edges the graph may have, `N` from 1 to %d (0: the default, %d); memory grows with them", maxSize, graph.DefaultMaxEdges))
	fail := func(format string, args ...any) int {
		// One line, whatever the input: a file name or an ID may hold a
		// newline.
		msg := strings.ReplaceAll(fmt.Sprintf(format, args...), "\n", `\n`)
		fmt.Fprintf(stderr, "plan: %s\n", msg)
		return 2
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return 0
		}
		if strings.HasPrefix(err.Error(), "flag provided but not defined") {
			// Say what is allowed: the flags, in the order -h lists them.
			var names []string
			fs.VisitAll(func(f *flag.Flag) { names = append(names, "-"+f.Name) })
			last := len(names) - 1
			return fail("%v: the flags are %s and %s (-h prints the usage)", err, strings.Join(names[:last], ", "), names[last])
		}
		return fail("%v", err)
	}
	if fs.NArg() > 0 {
		return fail("unexpected argument %q: every input is a flag", fs.Arg(0))
	}
	if duration.value == "" {
		return fail("-duration is required: a lecture length in seconds, a multiple of 10")
	}
	secs, err := strconv.Atoi(duration.value)
	switch {
	case errors.Is(err, strconv.ErrRange) && secs < 0:
		// A whole number, but past what an int holds: say why it is refused.
		return fail("-duration %s: a duration is a positive number of seconds, a multiple of %d", duration.value, graph.SegmentSeconds)
	case errors.Is(err, strconv.ErrRange):
		return fail("-duration %s exceeds the largest limit: %d s (%d segments), whatever -max-seconds says",
			duration.value, graph.MaxSecondsLimit, graph.MaxSecondsLimit/graph.SegmentSeconds)
	case err != nil:
		return fail("-duration %q is not a whole number of seconds", duration.value)
	}
	// -max-seconds is decimal, as -duration is: flag.Int would read 0100
	// as octal 64 and take 0x100 and 1_000.
	var maxSecs int
	var maxErr error
	if maxSecsFlag.set {
		maxSecs, maxErr = strconv.Atoi(maxSecsFlag.value)
	}
	switch {
	case errors.Is(maxErr, strconv.ErrRange):
		return fail("-max-seconds %s: allowed are %d to %d (1 to %d segments), or 0 for the default (%d)",
			maxSecsFlag.value, graph.SegmentSeconds, graph.MaxSecondsLimit, graph.MaxSecondsLimit/graph.SegmentSeconds, graph.DefaultMaxSeconds)
	case maxErr != nil:
		return fail("-max-seconds %q is not a whole number of seconds: allowed are %d to %d, or 0 for the default (%d)",
			maxSecsFlag.value, graph.SegmentSeconds, graph.MaxSecondsLimit, graph.DefaultMaxSeconds)
	}
	maxNodes, msg := parseSize("-max-nodes", maxNodesFlag, graph.DefaultMaxNodes)
	if msg != "" {
		return fail("%s", msg)
	}
	maxEdges, msg := parseSize("-max-edges", maxEdgesFlag, graph.DefaultMaxEdges)
	if msg != "" {
		return fail("%s", msg)
	}
	if !format.set {
		format.value = "text"
	}
	switch format.value {
	case "text", "json", "dot", "mermaid":
	default:
		return fail("-format %q: want text, json, dot or mermaid", format.value)
	}
	if tmplFile.set && tmplFile.value == "" {
		return fail("-template needs a FILE.json: a template in graph.Template's JSON form")
	}
	if statesPath.set && statesPath.value == "" {
		return fail("-states needs a FILE.json: a JSON object of node ID to state")
	}
	if causes.value && (format.value == "dot" || format.value == "mermaid") {
		return fail("-causes: the text and json formats list causes; %s draws none", format.value)
	}
	tmpl := graph.Lecture()
	if tmplFile.value != "" {
		data, err := readTemplate(tmplFile.value)
		if err != nil {
			return fail("-template: %v", err)
		}
		if tmpl, err = graph.ParseTemplate(data); err != nil {
			return fail("-template %s: %v", tmplFile.value, err)
		}
	}
	limit := maxSecs
	if limit == 0 {
		limit = graph.DefaultMaxSeconds
	}
	g, err := buildOptions(maxSecs, maxNodes, maxEdges).Build(tmpl, secs)
	var de *graph.DurationError
	var se *graph.SizeError
	switch {
	case errors.As(err, &se) && se.Limit < maxSize:
		// Refused before anything of its size was allocated; a flag
		// raises the limit.
		return fail("%v (here, -max-%s)", err, se.What)
	case errors.As(err, &de) && de.Option == "MaxSeconds":
		return fail("-max-seconds: %v", err)
	case errors.As(err, &de) && secs > limit && secs%graph.SegmentSeconds == 0 && secs <= graph.MaxSecondsLimit:
		// Over the limit, refused for that alone, and a -max-seconds
		// allowed would take it.
		return fail("%v (here, -max-seconds)", err)
	case err != nil:
		return fail("%v", err)
	}
	in := dirty.Input{}
	for _, m := range []struct {
		ids idList
		r   dirty.Reason
	}{{edits, dirty.ReasonEdited}, {forces, dirty.ReasonForced}, {missing, dirty.ReasonAssetMissing}} {
		for _, id := range m.ids {
			in.Marks = append(in.Marks, dirty.Mark{ID: id, Reason: m.r})
		}
	}
	switch {
	case statesPath.set:
		if in.States, err = readStates(statesPath.value, g); err != nil {
			var se *StatesError
			if errors.As(err, &se) {
				return fail("-states %v", err)
			}
			return fail("-states: %v", err)
		}
		// As the executor does at a run's start: a clean node made from
		// other inputs than its dependencies' outputs now (a crash
		// between a dependency's new output and its own run) is stale.
		stale, err := dirty.StaleInputs(g, in.States)
		if err != nil {
			return fail("%v", err)
		}
		in.Marks = append(in.Marks, stale...)
	case len(in.Marks) > 0:
		in.States = dirty.NewStates(g.Len())
		for n := range g.Len() {
			in.States.Set(graph.Node(n), dirty.State{Status: dirty.StatusClean})
		}
	}
	set, err := dirty.Compute(g, in)
	if err != nil {
		return fail("%v", err)
	}
	p := planner.New(set)
	if err := write(stdout, format.value, g, set, p, causes.value); err != nil {
		fmt.Fprintf(stderr, "plan: write: %v\n", err)
		return 1
	}
	return 0
}

// appendExplain is (*dirty.Set).AppendExplain; a test counts its calls.
var appendExplain = (*dirty.Set).AppendExplain

// write prints the plan in format to w. It writes as it goes, through a
// buffer of its own, so that its memory does not grow with the graph: a
// graph at the default limits has 20,000,000 nodes, and their output is
// gigabytes of text. It returns the writer's first error as soon as it
// comes, without formatting the rest.
//
// With causes, the text format lists under each explained node every
// root cause of it (dirty.Set.Causes), one line each with its own
// explanation, and the json format has a "causes" object after "why".
func write(w io.Writer, format string, g *graph.Graph, set *dirty.Set, p *planner.Plan, causes bool) error {
	switch format {
	case "dot":
		return g.WriteDOT(w, set.Has)
	case "mermaid":
		return g.WriteMermaid(w, set.Has)
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	var b []byte // one line or entry at a time
	if format == "json" {
		b = fmt.Appendf(b, `{"segments":%d,"nodes":%d,"dirty":%d,"why":{`, g.Segments(), g.Len(), set.Len())
		for i, n := range set.Nodes() {
			if i > 0 {
				b = append(b, ',')
			}
			// IDs and explanations are of A-Z a-z 0-9 _ . : / - [ ] ,
			// and spaces (graph's rules for names): nothing to escape.
			b = append(b, '"')
			b = g.AppendID(b, n)
			b = append(b, '"', ':', '"')
			b = appendExplain(set, b, n)
			b = append(b, '"')
			if _, err := bw.Write(b); err != nil {
				return err
			}
			b = b[:0]
		}
		// b holds the header still when no node is dirty.
		if _, err := bw.Write(append(b, '}')); err != nil {
			return err
		}
		if causes {
			if err := writeCausesJSON(bw, g, set); err != nil {
				return err
			}
		}
		if _, err := bw.WriteString(`,"stages":`); err != nil {
			return err
		}
		if err := p.WriteStagesJSON(bw); err != nil {
			return err
		}
		if _, err := bw.WriteString("}\n"); err != nil {
			return err
		}
		return bw.Flush()
	}
	b = fmt.Appendf(b, "%s, %s, %d dirty\n", count(g.Segments(), "segment"), count(g.Len(), "node"), set.Len())
	for i := range p.Stages {
		b = append(b, p.Summary(i)...)
		b = append(b, '\n')
		if _, err := bw.Write(b); err != nil {
			return err
		}
		b = b[:0]
	}
	if set.Len() > 0 {
		b = append(b, "Why:\n"...)
		var buf []graph.Node // the causes of one node at a time
		for _, n := range set.Nodes() {
			b = append(b, "  "...)
			b = g.AppendID(b, n)
			b = append(b, ": "...)
			b = appendExplain(set, b, n)
			b = append(b, '\n')
			if _, err := bw.Write(b); err != nil {
				return err
			}
			b = b[:0]
			if !causes {
				continue
			}
			buf = set.AppendCauses(buf[:0], n)
			for _, c := range buf {
				b = append(b, "    cause "...)
				b = g.AppendID(b, c)
				b = append(b, ": "...)
				b = appendExplain(set, b, c)
				b = append(b, '\n')
				if _, err := bw.Write(b); err != nil {
					return err
				}
				b = b[:0]
			}
		}
	}
	if _, err := bw.Write(b); err != nil {
		return err
	}
	return bw.Flush()
}

// writeCausesJSON writes the "causes" member of the json format: a comma,
// then "causes" and an object of each dirty node's ID to the IDs of its
// root causes (dirty.Set.Causes), both in node order.
func writeCausesJSON(bw *bufio.Writer, g *graph.Graph, set *dirty.Set) error {
	b := []byte(`,"causes":{`)
	var buf []graph.Node
	for i, n := range set.Nodes() {
		if i > 0 {
			b = append(b, ',')
		}
		// IDs are of graph's name characters: nothing to escape.
		b = append(b, '"')
		b = g.AppendID(b, n)
		b = append(b, '"', ':', '[')
		buf = set.AppendCauses(buf[:0], n)
		for j, c := range buf {
			if j > 0 {
				b = append(b, ',')
			}
			b = append(b, '"')
			b = g.AppendID(b, c)
			b = append(b, '"')
			if len(b) >= 4<<10 {
				if _, err := bw.Write(b); err != nil {
					return err
				}
				b = b[:0]
			}
		}
		b = append(b, ']')
		if _, err := bw.Write(b); err != nil {
			return err
		}
		b = b[:0]
	}
	_, err := bw.Write(append(b, '}'))
	return err
}

// maxTemplateBytes is the largest template file read: far more than a
// template of graph.MaxKinds kinds, each depending on every other, takes.
var maxTemplateBytes int64 = 256 << 20

// readTemplate reads a template file of at most maxTemplateBytes, so
// that a file without end (-template /dev/zero, or a pipe that never
// closes its data) is refused rather than read until memory runs out.
func readTemplate(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxTemplateBytes+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > maxTemplateBytes {
		size := fmt.Sprintf("%d bytes", maxTemplateBytes)
		if maxTemplateBytes%(1<<20) == 0 {
			size = fmt.Sprintf("%d MiB", maxTemplateBytes>>20)
		}
		return nil, fmt.Errorf("%s is larger than %s, the most a template takes", path, size)
	}
	return data, nil
}

// count writes n and a noun, plural unless n is 1.
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// maxSize is the most nodes or edges a graph holds: graph.Options caps
// MaxNodes and MaxEdges there.
const maxSize = math.MaxInt32 - 1

// parseSize reads the value of flag name, -max-nodes or -max-edges: a
// decimal number from 1 to maxSize, or 0 (or the flag not given) for
// graph.Options' default def, which the message names. It returns the
// value, or the message of a value refused.
func parseSize(name string, f once, def int) (int, string) {
	if !f.set {
		return 0, ""
	}
	allowed := fmt.Sprintf("allowed are 1 to %d, or 0 for the default (%d)", maxSize, def)
	// Decimal, as -duration is: strconv.Atoi, not flag.Int, which would
	// read 0100 as octal and take 0x100 and 1_000.
	n, err := strconv.Atoi(f.value)
	switch {
	case errors.Is(err, strconv.ErrRange):
		return 0, fmt.Sprintf("%s %s: %s", name, f.value, allowed)
	case err != nil:
		return 0, fmt.Sprintf("%s %q is not a whole number: %s", name, f.value, allowed)
	case n < 0 || n > maxSize:
		return 0, fmt.Sprintf("%s %d: %s", name, n, allowed)
	}
	return n, ""
}

// buildOptions returns the graph's options for -max-seconds maxSecs,
// -max-nodes maxNodes and -max-edges maxEdges, 0 for each default. Each
// flag raises its own limit alone: -max-seconds lifted the node and edge
// limits to their caps, so that a wide template on a long duration passed
// every size check and the command died out of memory building it.
func buildOptions(maxSecs, maxNodes, maxEdges int) graph.Options {
	return graph.Options{MaxSeconds: maxSecs, MaxNodes: maxNodes, MaxEdges: maxEdges}
}
