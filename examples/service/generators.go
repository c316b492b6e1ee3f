package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
)

// paramStore keeps the nodes' parameters, where the generators read them,
// and each lecture's length, from which an edit builds its graph. The
// executor keeps only the parameters' revision: a host saves new
// parameters here before it calls Executor.Edit, never after. A real host
// keeps both in its database; this one keeps them in memory, and loses
// them on restart. It is safe for concurrent use.
type paramStore struct {
	mu      sync.Mutex
	m       map[string]map[string]json.RawMessage // graph key -> node ID -> parameters
	seconds map[string]int                        // graph key -> the lecture's length
	pending map[string]*pending                   // graph key NUL node ID -> its edits being recorded
}

// pending is what a node's parameters were before the oldest of its edits
// whose recording has not settled, and its edits since, oldest first.
type pending struct {
	base  json.RawMessage
	had   bool // the node had parameters: base
	edits []*saved
}

func newParamStore() *paramStore {
	return &paramStore{m: map[string]map[string]json.RawMessage{}, seconds: map[string]int{}, pending: map[string]*pending{}}
}

// setSeconds saves a lecture's length, once a run of it has started.
func (p *paramStore) setSeconds(key string, seconds int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seconds[key] = seconds
}

// lectureSeconds returns a lecture's length, if saved.
func (p *paramStore) lectureSeconds(key string) (int, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n, ok := p.seconds[key]
	return n, ok
}

// saved is an edit's parameters, saved by swap, until keep or restore
// settles it.
type saved struct {
	key, nodeID string
	params      json.RawMessage
	settled     bool
	failed      bool // restored: its edit was not recorded
}

// swap saves a node's parameters, for an edit about to be recorded. Call
// keep once the edit is recorded, or restore if it failed.
func (p *paramStore) swap(key, nodeID string, params json.RawMessage) *saved {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := key + "\x00" + nodeID
	pd := p.pending[k]
	if pd == nil {
		pd = &pending{}
		pd.base, pd.had = p.m[key][nodeID]
		p.pending[k] = pd
	}
	sv := &saved{key: key, nodeID: nodeID, params: params}
	pd.edits = append(pd.edits, sv)
	if p.m[key] == nil {
		p.m[key] = map[string]json.RawMessage{}
	}
	p.m[key][nodeID] = params
	return sv
}

// keep settles a swap whose edit was recorded.
func (p *paramStore) keep(sv *saved) { p.settle(sv, false) }

// restore settles a swap whose edit failed: the node's parameters become
// those of its newest edit that has not failed (recorded or still being
// recorded), or else those from before its edits.
func (p *paramStore) restore(sv *saved) { p.settle(sv, true) }

func (p *paramStore) settle(sv *saved, failed bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := sv.key + "\x00" + sv.nodeID
	pd := p.pending[k]
	if pd == nil || sv.settled {
		return
	}
	sv.settled, sv.failed = true, failed
	params, had := pd.base, pd.had
	for _, e := range pd.edits {
		if !e.failed {
			params, had = e.params, true
		}
	}
	if had {
		p.m[sv.key][sv.nodeID] = params
	} else {
		delete(p.m[sv.key], sv.nodeID)
	}
	// The settled edits before the oldest unsettled one are past.
	for len(pd.edits) > 0 && pd.edits[0].settled {
		if e := pd.edits[0]; !e.failed {
			pd.base, pd.had = e.params, true
		}
		pd.edits = pd.edits[1:]
	}
	if len(pd.edits) == 0 {
		delete(p.pending, k)
	}
}

// get returns a node's parameters, or {} when none were saved.
func (p *paramStore) get(key, nodeID string) json.RawMessage {
	p.mu.Lock()
	defer p.mu.Unlock()
	if params, ok := p.m[key][nodeID]; ok {
		return params
	}
	return json.RawMessage("{}")
}

// generator is a fake generator for every kind of the lecture template:
// it waits its latency, as a call to a provider would (honouring ctx), and
// makes the node's output from its parameters and its dependencies'
// outputs, so that the same inputs give the same output and early cutoff
// works. A real host calls its providers here, passing
// Request.IdempotencyKey to those that deduplicate.
type generator struct {
	params  *paramStore
	latency time.Duration
}

// lectureGenerators returns a registry with a fake generator for each kind
// of the lecture template.
func lectureGenerators(params *paramStore, latency time.Duration) executor.Registry {
	gen := &generator{params: params, latency: latency}
	reg := executor.Registry{}
	for _, k := range graph.Lecture().Kinds {
		reg[k.Name] = gen
	}
	return reg
}

// Generate implements executor.Generator.
func (g *generator) Generate(ctx context.Context, req executor.Request) (executor.Asset, error) {
	t := time.NewTimer(g.latency)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return executor.Asset{}, ctx.Err()
	}
	params := g.params.get(req.GraphKey, req.NodeID)
	data := fmt.Appendf(nil, "%s from %s", req.NodeID, params)
	for _, d := range req.Deps {
		data = fmt.Appendf(data, " <%s>", d.Asset.Hash)
	}
	// Hash is left empty: the executor hashes Data.
	a := executor.Asset{Data: data}
	if req.ID.Kind == graph.KindNarration {
		a.Length = graph.SegmentLength // a narration must fit its segment
	}
	return a, nil
}
