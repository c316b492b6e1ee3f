package executor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/graph"
)

// NodeOutput is one node's output, as [Executor.Outputs] yields it.
type NodeOutput struct {
	// NodeID is the node's ID.
	NodeID string
	// Asset is the node's stored asset. Its Data and Meta are the
	// caller's, as [Executor.Output]'s.
	Asset Asset
}

// Output returns the stored asset of node nodeID of graph key graphKey,
// a node whose state is clean: the output that a run committed for it.
// Clean is the state as recorded: a node whose inputs changed since
// without a run (a dependency's output made again by another path, which
// [dirty.StaleInputs] finds at a run's start) still reads as clean here,
// since Output does not take the graph; a host that must know runs
// dirty.StaleInputs on the key's states first. It reads the key's states (one Load) and the
// node's asset (one Get), and retries a store failure that may pass as a
// run does, within Options.StoreRetry. The asset's Data and Meta are the
// caller's, who may modify them: Output copies the Data that an asset
// store may share (an O(len(Data)) copy). It is safe for concurrent use,
// also while runs of the key commit: it answers as of its Load.
//
// Its errors: an empty graph key or one not valid UTF-8 without NUL, a
// malformed node ID (a [*graph.IDError] wrapping [graph.ErrMalformedID],
// which the error wraps too) or [GraphStateID], the executor's own state
// and no node's, are refused with [ErrInvalidRequest]; a node of which
// the key has no output (never made, no node of the key's graph, or
// recorded missing by [Executor.Forget]), or whose asset is gone (a prune
// or a deletion of the store), is an error wrapping [ErrNotFound]; a node
// that is dirty, running, failed or cancelled an error wrapping
// [ErrNotClean] that names its status. Output does not take the key's
// graph, so it cannot tell a well-formed ID of no node of it from one
// never made: both are not found. A closed executor returns [ErrClosed];
// a store's error, or ctx's, is returned wrapped.
func (e *Executor) Output(ctx context.Context, graphKey, nodeID string) (Asset, error) {
	if err := checkOutputRequest(graphKey); err != nil {
		return Asset{}, err
	}
	if nodeID == GraphStateID {
		return Asset{}, fmt.Errorf("%w: output %s of %s: it is the executor's own state, no node's: give a node ID, such as %q",
			ErrInvalidRequest, quote(nodeID), quote(graphKey), "script")
	}
	if _, err := graph.ParseID(nodeID); err != nil {
		return Asset{}, wrap(ErrInvalidRequest, "output of "+quote(graphKey), err, "")
	}
	if !e.enter() {
		return Asset{}, fmt.Errorf("%w: it calls its stores no more: read output %s of %s", ErrClosed, quote(nodeID), quote(graphKey))
	}
	defer e.runs.done()
	snap, err := e.load(ctx, "", graphKey)
	if err != nil {
		return Asset{}, fmt.Errorf("output %s: %w", quote(nodeID), err)
	}
	st, ok := snap.States[nodeID]
	switch {
	case !ok:
		return Asset{}, fmt.Errorf("%w: output %s of %s: the key has no state of it: no run of the key made it, or it is no node of the key's graph",
			ErrNotFound, quote(nodeID), quote(graphKey))
	case st.Status == dirty.StatusMissing:
		return Asset{}, fmt.Errorf("%w: output %s of %s: its status is missing: never made, or dropped by Forget",
			ErrNotFound, quote(nodeID), quote(graphKey))
	case st.Status != dirty.StatusClean:
		return Asset{}, fmt.Errorf("%w: output %s of %s: its status is %s: a run must make it again before it has an output of its current inputs",
			ErrNotClean, quote(nodeID), quote(graphKey), st.Status)
	}
	return e.getOutput(ctx, graphKey, nodeID, st.AssetRef)
}

// Outputs iterates over the stored assets of graph key graphKey's clean
// nodes, in node-ID order (byte order of the IDs, so the same states give
// the same sequence), skipping [GraphStateID] and every node that is not
// clean. It reads the key's states once, when the loop starts, and then
// each asset as the loop reaches it (one Get each), with the retries and
// the errors of [Executor.Output], whose Data and Meta ownership its
// assets share. A key never run yields nothing.
//
// An error is yielded once, with the node's ID if it is a node's (its
// asset gone since the Load, as a prune deletes an asset that a newer
// run replaced; ctx ended; the executor closed), and ends the loop; the
// pairs before it stand. Close does not wait for the loop's body, only
// for a store call under way.
func (e *Executor) Outputs(ctx context.Context, graphKey string) iter.Seq2[NodeOutput, error] {
	return func(yield func(NodeOutput, error) bool) {
		if err := checkOutputRequest(graphKey); err != nil {
			yield(NodeOutput{}, err)
			return
		}
		if !e.enter() {
			yield(NodeOutput{}, fmt.Errorf("%w: it calls its stores no more: read the outputs of %s", ErrClosed, quote(graphKey)))
			return
		}
		snap, err := e.load(ctx, "", graphKey)
		e.runs.done()
		if err != nil {
			yield(NodeOutput{}, fmt.Errorf("outputs: %w", err))
			return
		}
		for _, id := range sortedKeys(snap.States) {
			st := snap.States[id]
			if id == GraphStateID || st.Status != dirty.StatusClean {
				continue
			}
			a, err := e.readOutput(ctx, graphKey, id, st.AssetRef)
			if err != nil {
				yield(NodeOutput{NodeID: id}, err)
				return
			}
			if !yield(NodeOutput{NodeID: id, Asset: a}, nil) {
				return
			}
		}
	}
}

// checkOutputRequest refuses the graph key of an Output or Outputs that
// no store can hold.
func checkOutputRequest(graphKey string) error {
	if graphKey == "" {
		return fmt.Errorf("%w: output: the graph key is empty", ErrInvalidRequest)
	}
	return checkRequestField("output: the graph key", graphKey)
}

// readOutput is getOutput for Outputs, which holds no call open for Close
// between its reads.
func (e *Executor) readOutput(ctx context.Context, graphKey, nodeID, ref string) (Asset, error) {
	if err := ctx.Err(); err != nil {
		return Asset{}, fmt.Errorf("output %s of %s: %w", quote(nodeID), quote(graphKey), err)
	}
	if !e.enter() {
		return Asset{}, fmt.Errorf("%w: it calls its stores no more: read output %s of %s", ErrClosed, quote(nodeID), quote(graphKey))
	}
	defer e.runs.done()
	return e.getOutput(ctx, graphKey, nodeID, ref)
}

// getOutput reads the asset ref of node nodeID of graphKey, with retries,
// and returns it with Data of its own.
func (e *Executor) getOutput(ctx context.Context, graphKey, nodeID, ref string) (Asset, error) {
	a, err := e.opts.Assets.Get(ctx, ref)
	if err != nil {
		err = e.retryStore(ctx, "", graphKey, err, "output: get the asset of", nodeID, func() (err error) {
			a, err = e.opts.Assets.Get(ctx, ref)
			return err
		})
	}
	switch {
	case errors.Is(err, ErrNotFound):
		return Asset{}, fmt.Errorf("output %s of %s: its asset %s is gone (pruned, or deleted from the store): %w",
			quote(nodeID), quote(graphKey), quote(ref), err)
	case err != nil:
		return Asset{}, fmt.Errorf("output %s of %s: get its asset: %w", quote(nodeID), quote(graphKey), err)
	}
	a.Data = bytes.Clone(a.Data)
	return a, nil
}
