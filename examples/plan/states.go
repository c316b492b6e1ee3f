package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/graph"
)

// onceBool is a boolean flag that is given at most once, as a once is:
// -causes, or -causes=true or false.
type onceBool struct {
	value bool
	raw   string // the value as given
	set   bool
}

func (o *onceBool) String() string   { return strconv.FormatBool(o.value) }
func (o *onceBool) IsBoolFlag() bool { return true }

func (o *onceBool) Set(s string) error {
	if o.set {
		return fmt.Errorf("given twice, %q and %q: give it once", o.raw, s)
	}
	v, err := strconv.ParseBool(s)
	if err != nil {
		return errors.New("want true or false")
	}
	o.value, o.raw, o.set = v, s, true
	return nil
}

// maxStatesBytes and maxStateBytesANode bound the states file read: at
// most maxStatesBytes, and maxStateBytesANode more for each node of the
// graph, so that a file without end (a pipe that never closes, or one
// long string) is refused rather than read until memory runs out. A
// state as the executor saves it, with its hashes and asset reference,
// takes about 400 bytes; a failed node's takes its LastError too, of up
// to maxLastErrorBytes, whose JSON may escape each byte in six
// ("\u0001", "\u003c"): each node is allowed 1 KiB and six times
// maxLastErrorBytes, so that a store whose nodes all failed with long
// errors (a provider's error page, in an outage) is read.
var (
	maxStatesBytes     int64 = 256 << 20
	maxStateBytesANode int64 = 1<<10 + 6*maxLastErrorBytes
)

// maxLastErrorBytes is the longest LastError the executor stores:
// executor.MaxEventText, to which it cuts a failed node's error.
const maxLastErrorBytes = 32 << 10

// Errors of readStates, in a [*StatesError].
var (
	// errDuplicateState: the file gives a node's state twice.
	errDuplicateState = errors.New("given twice: give each node's state once")
	// errStatesTooLarge: the file is over the bound. Every
	// *statesSizeError is it.
	errStatesTooLarge error = &statesSizeError{}
)

// statesSizeError reports a states file over the bound of Limit bytes,
// for a graph of Nodes nodes.
type statesSizeError struct {
	Limit int64
	Nodes int
}

func (e *statesSizeError) Error() string {
	return fmt.Sprintf("larger than %d bytes, the most the states of %d nodes take (%s)",
		e.Limit, e.Nodes, statesBound(maxStatesBytes, maxStateBytesANode))
}

// Is reports whether target is a *statesSizeError, as errStatesTooLarge is.
func (e *statesSizeError) Is(target error) bool {
	_, ok := target.(*statesSizeError)
	return ok
}

// StatesError reports a -states file that the command refuses: where,
// what was wrong, and what is allowed. Its message starts with the
// file's path.
type StatesError struct {
	// Path is the file's path, as given.
	Path string
	// ID is the node ID of the entry refused, as written in the file
	// (unescaped), or "" when the fault is in no entry: the file's JSON
	// around the states, or its size.
	ID string
	// Offset is how far into the file, in bytes, the fault was found,
	// when ID is "".
	Offset int64
	// Err says what was wrong and what is allowed: a graph error wrapping
	// graph.ErrUnknownNode or graph.ErrMalformedID for an ID the graph
	// has not, a *dirty.JSONError for a state dirty.State refuses,
	// errDuplicateState, errStatesTooLarge, or a description.
	Err error
}

func (e *StatesError) Error() string {
	switch {
	case e.ID != "":
		return fmt.Sprintf("%s: node %q: %v", e.Path, e.ID, e.Err)
	case errors.Is(e.Err, errStatesTooLarge):
		return fmt.Sprintf("%s: %v", e.Path, e.Err)
	}
	return fmt.Sprintf("%s: at byte %d: %v", e.Path, e.Offset, e.Err)
}

// Unwrap returns Err.
func (e *StatesError) Unwrap() error { return e.Err }

// statesForm is the form of a states file, for messages.
const statesForm = `a JSON object of node ID to state, {"script": {"status": "clean", ...}, ...}`

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// readStates reads a -states file of the nodes of g: a JSON object of
// node ID to dirty.State, in State's strict JSON form. A node not in the
// file is missing. An ID that names no node of g, or one given twice, a
// state that dirty.State refuses, JSON that is not one object of states,
// and a file over the bound of maxStatesBytes and maxStateBytesANode a
// node are refused with a *StatesError. The file is read as it is
// decoded: beside the states, memory holds one entry at a time.
func readStates(path string, g *graph.Graph) (*dirty.States, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	limit := maxStatesBytes + maxStateBytesANode*int64(g.Len())
	cr := &countingReader{r: io.LimitReader(f, limit+1)}
	dec := json.NewDecoder(cr)
	states := dirty.NewStates(g.Len())
	seen := make([]uint64, (g.Len()+63)/64)
	fault := func(id string, err error) error {
		if cr.n > limit {
			// Whatever the decoder made of the file cut at the bound.
			err, id = &statesSizeError{Limit: limit, Nodes: g.Len()}, ""
		} else if errors.Is(err, io.EOF) {
			err = fmt.Errorf("the file ends within the object: want %s", statesForm)
		}
		return &StatesError{Path: path, ID: id, Offset: dec.InputOffset(), Err: err}
	}
	tok, err := dec.Token()
	switch {
	case err == io.EOF:
		return nil, fault("", fmt.Errorf("want %s: found nothing", statesForm))
	case err != nil:
		return nil, fault("", fmt.Errorf("want %s: %w", statesForm, err))
	case tok != json.Delim('{'):
		return nil, fault("", fmt.Errorf("want %s: found %s", statesForm, tokenString(tok)))
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fault("", err)
		}
		id := tok.(string) // an object's key: the decoder says so
		n, err := g.Lookup(id)
		if err != nil {
			return nil, fault(id, err)
		}
		if seen[n/64]&(1<<(uint(n)%64)) != 0 {
			return nil, fault(id, errDuplicateState)
		}
		seen[n/64] |= 1 << (uint(n) % 64)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fault("", err)
		}
		if raw[0] != '{' {
			// dirty.State reads null as nothing; here it is a mistake.
			return nil, fault(id, fmt.Errorf(`a state is a JSON object, {"status": "clean", "rev": 1, ...}: found %s`, cut(raw)))
		}
		var st dirty.State
		if err := st.UnmarshalJSON(raw); err != nil {
			return nil, fault(id, err)
		}
		states.Set(n, st)
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, fault("", err)
	}
	switch _, err := dec.Token(); {
	case err == io.EOF:
	case err != nil:
		return nil, fault("", err)
	default:
		return nil, fault("", fmt.Errorf("trailing data after the object: want %s alone", statesForm))
	}
	if cr.n > limit {
		return nil, fault("", nil)
	}
	return states, nil
}

// tokenString writes a JSON token that does not open an object, for a
// message.
func tokenString(tok json.Token) string {
	switch v := tok.(type) {
	case nil:
		return "null"
	case json.Delim:
		return string(v)
	case string:
		return cut(strconv.AppendQuote(nil, v))
	}
	return cut(fmt.Append(nil, tok))
}

// cut returns b as a string, cut to 40 bytes.
func cut(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "..."
	}
	return string(b)
}

// statesBound says the bound of maxStatesBytes base and each a node in
// words: "256 MiB, and 193 KiB a node".
func statesBound(base, each int64) string {
	size := func(n int64) string {
		switch {
		case n > 0 && n%(1<<20) == 0:
			return fmt.Sprintf("%d MiB", n>>20)
		case n > 0 && n%(1<<10) == 0:
			return fmt.Sprintf("%d KiB", n>>10)
		}
		return fmt.Sprintf("%d bytes", n)
	}
	per := size(each)
	if each < 1<<10 || each%(1<<10) != 0 {
		per = strconv.FormatInt(each, 10)
	}
	return fmt.Sprintf("%s, and %s a node", size(base), per)
}
