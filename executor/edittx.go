package executor

import (
	"fmt"
	"slices"
	"time"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/graph"
)

// EditChanges returns the changes that [Executor.Edit] commits to record
// that the parameters of the nodes ids of g changed, when snap is what
// the store holds for graphKey: each node's state in snap with the next
// revision, dirty, updated at now (a node without a state gets revision
// 1), one change per node, in node order. It is for a store that lets a
// host record an edit in a transaction of its own, with the host's save
// of the new parameters, so that the two commit or roll back together
// (pgstore's EditTx): the store locks the graph's version, loads snap
// under that lock, and commits the changes at snap.Version, moving it on
// by one, as Edit does; a run in flight then conflicts, reloads and
// supersedes the nodes, as after Edit.
//
// It refuses what Edit refuses (and more, see below), with an error wrapping
// [ErrInvalidRequest], and returns no change: a nil g, an empty graph key
// or one that is not valid UTF-8 without NUL, no ID, a malformed or
// unknown ID (with the [*graph.IDError] that says why), and a g that is
// not the key's graph, per the fingerprint that snap's [GraphStateID]
// state keeps, with a [*GraphMismatchError]. Unlike Edit, it does not
// look for the key's graph (snap may hold only some states, and it has
// no run records), so it refuses a g of another length of the key's
// template too, its Missing nil: the host builds the key's graph (the
// error's Current; see Edit) and retries with it. snap needs only the
// states of the nodes named and of GraphStateID; with none (an empty
// Snapshot) the request alone is checked, as a store does before it
// touches its tables. It does not
// modify snap. It is safe for concurrent use and costs O(len(ids) log
// len(ids)).
func EditChanges(g *graph.Graph, graphKey string, snap Snapshot, now time.Time, ids ...string) ([]Change, error) {
	nodes, err := editNodes(g, graphKey, ids)
	if err != nil {
		return nil, err
	}
	if err := editable(snap, graphKey, Fingerprint(g)); err != nil {
		return nil, err
	}
	return editChanges(g, nodes, snap, now), nil
}

// editNodes checks an edit's request, as Edit and EditChanges take it,
// and returns its nodes, sorted, each once.
func editNodes(g *graph.Graph, graphKey string, ids []string) ([]graph.Node, error) {
	if g == nil {
		return nil, fmt.Errorf("%w: edit: the graph is nil", ErrInvalidRequest)
	}
	if graphKey == "" {
		return nil, fmt.Errorf("%w: edit: the graph key is empty", ErrInvalidRequest)
	}
	if err := checkRequestField("edit: the graph key", graphKey); err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("%w: edit %s: no node ID given: name the nodes whose parameters changed, such as %q",
			ErrInvalidRequest, quote(graphKey), g.NodeID(0))
	}
	nodes := make([]graph.Node, len(ids))
	for i, id := range ids {
		n, err := g.Lookup(id)
		if err != nil {
			// A *graph.IDError, wrapping graph.ErrMalformedID or
			// graph.ErrUnknownNode.
			return nil, wrap(ErrInvalidRequest, "edit "+quote(graphKey), err, "")
		}
		nodes[i] = n
	}
	slices.Sort(nodes)
	return slices.Compact(nodes), nil
}

// editChanges returns an edit's changes of nodes (sorted, each once) on
// snap: each node's state with the next revision, dirty, updated at now.
func editChanges(g *graph.Graph, nodes []graph.Node, snap Snapshot, now time.Time) []Change {
	changes := make([]Change, 0, len(nodes))
	for _, n := range nodes {
		id := g.NodeID(n)
		st := snap.States[id]
		st.Rev++
		st.Status = dirty.StatusDirty
		st.UpdatedAt = now
		changes = append(changes, Change{ID: id, State: st})
	}
	return changes
}
