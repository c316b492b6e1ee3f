package dirty

import (
	"fmt"

	"github.com/regengraph/regen/graph"
)

// StaleInputs returns a mark of [ReasonInputsChanged] for each clean node
// that was made from other inputs than it has now: its recorded
// InputHash is not [InputHash] of its Rev and its dependencies' output
// hashes, in [graph.Graph.Deps] order. Pass them to [Compute] with the
// other marks: Compute trusts a clean status, and without them a clean
// node whose dependency was regenerated (and saved) after it was made,
// say by a run that crashed before the node ran, or whose dependencies
// changed with the graph's shape (states carried over by node ID to a
// lecture made longer or shorter, or to another template), keeps a
// result made from old inputs. The executor calls it at the start of
// each run (and its Plan shows the marks); a host that drives the core
// with a runner of its own calls it so too (see the package doc).
//
// Only clean nodes whose dependencies are all clean are compared: a node
// with a dependency not clean (never generated, dirty, running, failed
// or cancelled) is regenerated through it anyway, and one not clean
// itself on its own account. A clean node with no InputHash recorded is
// marked, as no input hash is empty. Nil states, those of a new graph,
// give no mark. Marks come in node order, a topological order, with IDs
// as [graph.Graph.NodeID] writes them.
//
// A nil or zero graph is an error wrapping [ErrNoGraph], and states that
// do not have one entry per node one wrapping [ErrStatesMismatch], as
// for Compute. StaleInputs is pure and deterministic; it costs
// O(V + E), one hash of each clean node's inputs (about 0.2 ms for the
// 1,083 nodes of a 360-segment lecture), and it allocates only the marks
// and their IDs, beside a buffer.
func StaleInputs(g *graph.Graph, states *States) ([]Mark, error) {
	if err := checkGraph(g, "StaleInputs"); err != nil {
		return nil, err
	}
	if err := checkStates(g, states); err != nil {
		return nil, err
	}
	if states == nil || states.Count(StatusClean) == 0 {
		return nil, nil // a new graph
	}
	var (
		marks  []Mark
		hashes []string
		buf    []byte
	)
next:
	for n := range graph.Node(g.Len()) {
		if states.Status(n) != StatusClean {
			continue
		}
		hashes = hashes[:0]
		for _, d := range g.Deps(n) {
			if states.Status(d) != StatusClean {
				continue next
			}
			hashes = append(hashes, states.Get(d).OutputHash)
		}
		st := states.Get(n)
		buf = AppendInputHash(buf[:0], st.Rev, hashes)
		if string(buf) != st.InputHash {
			marks = append(marks, Mark{ID: g.NodeID(n), Reason: ReasonInputsChanged})
		}
	}
	return marks, nil
}

// checkStates returns an error wrapping ErrStatesMismatch when states,
// if any, do not have one entry per node of g.
func checkStates(g *graph.Graph, states *States) error {
	if v := g.Len(); states != nil && states.Len() != v {
		return fmt.Errorf("%w: %s for %s; make them with NewStates(g.Len()), one per node", ErrStatesMismatch, count(states.Len(), "state"), count(v, "node"))
	}
	return nil
}
