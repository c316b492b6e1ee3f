package executor

import (
	"cmp"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/graph"
)

// GraphStateID is the ID of the one state that the executor keeps for a
// graph key beside its nodes' states: its InputHash is the fingerprint
// ([Fingerprint]) of the graph of the key's newest run (its number of
// segments, and its kinds with their dependencies), and its Status is
// clean. No node has
// this ID: a kind name cannot hold "~". A host that lists a snapshot's
// states may skip it.
//
// A run records its graph's fingerprint there when it starts, in the
// commit that marks its plan dirty. Any commit of another run conflicts
// with that one, and the other run reloads: if it finds another
// fingerprint, the key's graph is now another (the user made the lecture
// longer or shorter, say), so it stops, as cancelled with
// [ErrGraphReplaced], and commits nothing more, rather than write results
// of the old graph over the new one's. If it finds no such state, the
// graph was deleted ([MemoryStore.DeleteGraph], pgstore's DeleteGraph):
// it stops with [ErrGraphDeleted], and does not make the graph again.
// Runs of the same graph share the key as before. [Executor.Resume] and
// [Executor.RerunFailed] of a run whose graph is no longer the key's are
// refused with the same errors, so that recovering an old run never
// makes its graph the key's again.
//
// The state's OutputHash tells one making of the key's graph from the
// next: a run that writes the state (the key's graph was another, or was
// deleted) records there a random token, which no other making of the
// key has. (It does not rescue a store that counts a re-created graph's
// versions from 0 again, outside the StateStore contract: an older run
// whose loaded version the new graph has reached commits without a
// conflict, so without the reload that would check it.) A run that finds
// its fingerprint under another OutputHash than when it started stops
// too, with ErrGraphReplaced: newer runs made the key's graph again
// meanwhile (it was deleted and run again, as a host that resets a
// lecture does, or another graph was run on the key, then this one
// again), and the run's results, made from the parameters and outputs of
// before, must not be committed into theirs.
const GraphStateID = "~graph"

// Fingerprint returns the fingerprint of g's nodes and edges, as the
// executor records it in [Record].Graph and under [GraphStateID]: 64
// lowercase hex digits, a SHA-256 of g's number of segments and of its
// kinds, in name order, each with whether it is per segment and its
// dependencies (kind and scope) in order. Batch keys, concurrency and the
// order of the template's kinds do not count, as they change the plan,
// not the graph. A host compares it with Record.Graph before it calls
// [Executor.Resume] or [Executor.RerunFailed] (which refuse a graph with
// another one), to find the template and length a run was made with.
//
// The same layout (segments, kinds, dependencies) has the same
// fingerprint in every release and every process: the executor compares
// it with fingerprints recorded by earlier releases, so a change of its
// encoding would be a breaking change. It returns "" for a nil graph,
// which no record holds (an empty Record.Graph is a record written
// before the field existed). It is safe for concurrent use and costs
// O(kinds + dependencies).
func Fingerprint(g *graph.Graph) string {
	if g == nil {
		return ""
	}
	return fingerprintAt(g.Segments(), fingerprintKinds(g.Template()))
}

// fingerprintKinds returns the part of the fingerprint of a graph of
// template t that its number of segments does not change: its kinds, in
// name order, each with whether it is per segment and its dependencies.
// It does not modify t.
func fingerprintKinds(t graph.Template) []byte {
	kinds := slices.Clone(t.Kinds)
	slices.SortFunc(kinds, func(a, b graph.Kind) int { return cmp.Compare(a.Name, b.Name) })
	b := make([]byte, 0, 256)
	for _, k := range kinds {
		b = append(b, "kind "...)
		b = strconv.AppendQuote(b, k.Name)
		b = strconv.AppendBool(append(b, ' '), k.PerSegment)
		for _, d := range k.Deps {
			b = append(b, " dep "...)
			b = strconv.AppendQuote(b, d.Kind)
			b = strconv.AppendQuote(append(b, ' '), string(d.Scope))
		}
		b = append(b, '\n')
	}
	return b
}

// fingerprintAt returns [Fingerprint] of a graph of segments segments
// whose template's kinds give kinds (fingerprintKinds).
func fingerprintAt(segments int, kinds []byte) string {
	h := sha256.New()
	b := make([]byte, 0, 64)
	b = append(b, "regen graph v1\nsegments "...)
	b = strconv.AppendInt(b, int64(segments), 10)
	b = append(b, '\n')
	h.Write(b)
	h.Write(kinds)
	return hex.EncodeToString(h.Sum(nil))
}

// graphGone returns the error that stops a run of the graph with
// fingerprint fp, made as made (see GraphStateID), when snap is what the
// store now holds: nil while its graph state records both.
func graphGone(snap Snapshot, fp, made string) error {
	st, ok := snap.States[GraphStateID]
	switch {
	case !ok:
		return ErrGraphDeleted
	case st.InputHash != fp:
		return fmt.Errorf("%w: the key's graph is now %s, not this run's %s", ErrGraphReplaced, short(st.InputHash), short(fp))
	case st.OutputHash != made:
		return fmt.Errorf("%w: the key's graph was made again since this run started (deleted or replaced, then run again)",
			ErrGraphReplaced)
	}
	return nil
}

// resumable returns the error that refuses a Resume or RerunFailed of a
// run of the graph with fingerprint fp when snap is what the store holds:
// nil unless the key's graph is another or was deleted (no graph state at
// a version past 0, and no result of a run: no states, or only those of
// edits since). A key with results but no graph state, as one kept by an
// executor older than GraphStateID, counts as the run's.
func resumable(snap Snapshot, fp string) error {
	st, ok := snap.States[GraphStateID]
	switch {
	case ok && st.InputHash != fp:
		return wrap(ErrInvalidRequest, "", ErrGraphReplaced, fmt.Sprintf("the key's graph is now %s, not the run's %s: the run cannot be resumed, and a record of it left running is recorded as interrupted; nothing is left to do for it (only a new run of its graph, started on purpose, would make that graph the key's again, over the newer one)",
			short(st.InputHash), short(fp)))
	case !ok && snap.Version > 0 && !hasResults(snap):
		return wrap(ErrInvalidRequest, "", ErrGraphDeleted, "the run cannot be resumed, and a record of it left running is recorded as interrupted (a new run of its graph would make the graph again)")
	}
	return nil
}

// hasResults reports whether some node state of snap holds a run's
// result (an output hash): an Edit of a key that has none, as after a
// DeleteGraph, writes states with none.
func hasResults(snap Snapshot) bool {
	for id, st := range snap.States {
		if st.OutputHash != "" && id != GraphStateID {
			return true
		}
	}
	return false
}

// editable returns the error that refuses an Edit of graphKey with the
// graph of fingerprint fp when snap is what the store holds: nil unless
// the key's graph is another, a *GraphMismatchError then (Missing
// unknown). A key without a graph state (no states, or states kept by an
// executor older than GraphStateID) takes any graph.
func editable(snap Snapshot, graphKey, fp string) *GraphMismatchError {
	if st, ok := snap.States[GraphStateID]; ok && st.InputHash != fp {
		return &GraphMismatchError{GraphKey: graphKey, Given: fp, Current: st.InputHash}
	}
	return nil
}

// graphState is the state that records fingerprint fp, for a new making
// of the key's graph: its OutputHash is random (128 bits or more), so
// that a run of an earlier making of the same graph (deleted, or
// replaced, and then run again) finds another token on its reload.
func graphState(fp string) dirty.State {
	return dirty.State{Status: dirty.StatusClean, InputHash: fp, OutputHash: "m" + rand.Text()}
}

// short abbreviates a fingerprint for messages.
func short(fp string) string {
	if len(fp) > 12 {
		return fp[:12]
	}
	return fp
}
