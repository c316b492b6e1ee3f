package executor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/graph"
)

// Forget drops what the key keeps of the nodes that its graph no longer
// has: after a lecture was made shorter (a run of the shorter graph has
// started on the key), the states of its dropped segments' nodes stay in
// the store, and keep their assets from [MemoryStore.PruneAssets] and
// pgstore's PruneAssets for good. Forget records each such node as
// missing, without an output (its revision stays, so that a node that
// comes back, the lecture made longer again, keeps counting its edits),
// in one commit, and returns how many it dropped; their assets are then
// unreferenced, and a prune deletes them. It is not automatic, because a
// lecture made longer again regenerates what Forget dropped, where its
// kept states could have let early cutoff keep it.
//
// g must be the key's graph, the graph of its newest run (see
// [Fingerprint]): another, or a key without a run of this release's
// executor, is refused with [ErrInvalidRequest], and nothing changes,
// since Forget would otherwise drop nodes of the key's real graph. A
// version conflict (a run commits meanwhile) reloads and tries again, up
// to 64 times, after a short jittered pause as [Executor.Edit] does (a
// ctx that ends in it ends Forget at once, with an error that wraps
// ctx's cause); a store failure that may pass is retried with backoff,
// jittered as a run's is, within Options.StoreRetry (by default 5 calls,
// 1.5 s of waits at most: see [Executor.Start]). A closed executor returns [ErrClosed].
func (e *Executor) Forget(ctx context.Context, g *graph.Graph, graphKey string) (int, error) {
	if g == nil {
		return 0, fmt.Errorf("%w: forget: the graph is nil", ErrInvalidRequest)
	}
	if err := checkRequestField("forget: the graph key", graphKey); err != nil {
		return 0, err
	}
	if graphKey == "" {
		return 0, fmt.Errorf("%w: forget: the graph key is empty", ErrInvalidRequest)
	}
	if !e.enter() {
		return 0, fmt.Errorf("%w: it calls its stores no more: forget the dropped nodes of %s", ErrClosed, quote(graphKey))
	}
	defer e.runs.done()
	fp := Fingerprint(g)
	// The states sent by commits that failed, which may have gone
	// through (their reply was lost): a reload that finds one counts it
	// as dropped by this Forget.
	var sent map[string][]dirty.State
	rs := e.storeRetries()
	for try := 0; ; try++ {
		if err := ctx.Err(); err != nil {
			return 0, fmt.Errorf("forget %s: %w", quote(graphKey), err)
		}
		snap, err := e.opts.States.Load(ctx, graphKey)
		if err != nil {
			err = e.retryStore(ctx, "", graphKey, err, "forget: load the states of", graphKey, func() (err error) {
				snap, err = e.opts.States.Load(ctx, graphKey)
				return err
			})
		}
		if err != nil {
			return 0, fmt.Errorf("forget: load %s: %w", quote(graphKey), err)
		}
		gs, ok := snap.States[GraphStateID]
		if !ok {
			return 0, fmt.Errorf("%w: forget %s: the key has no graph yet (no run of it has started, or an executor older than GraphStateID kept its states): start a run of its graph first",
				ErrInvalidRequest, quote(graphKey))
		}
		if gs.InputHash != fp {
			return 0, fmt.Errorf("%w: forget %s: the graph given (fingerprint %s) is not the key's graph (%s, of its newest run): give the graph of the key's newest run (see Fingerprint and Record.Graph)",
				ErrInvalidRequest, quote(graphKey), short(fp), short(gs.InputHash))
		}
		now := time.Now()
		var changes []Change
		dropped := 0 // by a commit of this Forget whose reply was lost
		for _, id := range sortedKeys(snap.States) {
			st := snap.States[id]
			if id == GraphStateID {
				continue // the executor's own
			}
			if st == (dirty.State{Status: dirty.StatusMissing, Rev: st.Rev, UpdatedAt: st.UpdatedAt}) {
				if slices.ContainsFunc(sent[id], func(s dirty.State) bool { return sameState(st, s) }) {
					dropped++
				}
				continue // dropped already
			}
			if _, err := g.Lookup(id); err == nil {
				continue // a node of the key's graph
			}
			changes = append(changes, Change{ID: id, State: dirty.State{Status: dirty.StatusMissing, Rev: st.Rev, UpdatedAt: now}})
		}
		if len(changes) == 0 {
			return dropped, nil
		}
		_, err = e.opts.States.Commit(ctx, graphKey, snap.Version, changes)
		err = hostError(err, inStore)
		switch {
		case err == nil:
			return dropped + len(changes), nil
		case errors.Is(err, ErrConflict) && try < maxEditConflicts && ctx.Err() == nil:
			if sleep(ctx, conflictPause(try)) {
				continue
			}
		case !errors.Is(err, ErrConflict) && retryable(err) && ctx.Err() == nil:
			// A lost connection: the commit may have gone through; the
			// reload tells, and the same changes again do no harm.
			wait, ok := rs.next()
			if !ok {
				break
			}
			if sent == nil {
				sent = make(map[string][]dirty.State, len(changes))
			}
			for _, c := range changes {
				sent[c.ID] = append(sent[c.ID], c.State)
			}
			e.log.Warn("regen: commit of a forget failed, retrying", "graph", graphKey, "err", err)
			if sleep(ctx, wait) {
				continue
			}
		}
		if ctx.Err() != nil {
			err = stoppedBy(ctx, err) // ended in the backoff, or during the commit
		}
		return 0, fmt.Errorf("forget: commit %s: %w", quote(graphKey), err)
	}
}
