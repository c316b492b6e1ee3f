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
	swaps   uint64                                // swaps made
	last    map[string]uint64                     // graph key NUL node ID -> its last swap's number
}

func newParamStore() *paramStore {
	return &paramStore{m: map[string]map[string]json.RawMessage{}, seconds: map[string]int{}, last: map[string]uint64{}}
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

// saved is what swap replaced, for restore.
type saved struct {
	key, nodeID string
	seq         uint64 // the swap's number
	old         json.RawMessage
	had         bool
}

// swap saves a node's parameters and returns what it replaced.
func (p *paramStore) swap(key, nodeID string, params json.RawMessage) saved {
	p.mu.Lock()
	defer p.mu.Unlock()
	old, had := p.m[key][nodeID]
	if p.m[key] == nil {
		p.m[key] = map[string]json.RawMessage{}
	}
	p.m[key][nodeID] = params
	p.swaps++
	p.last[key+"\x00"+nodeID] = p.swaps
	return saved{key: key, nodeID: nodeID, seq: p.swaps, old: old, had: had}
}

// restore puts back the parameters that a swap replaced, unless another
// swap of the node came after it.
func (p *paramStore) restore(sv saved) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.last[sv.key+"\x00"+sv.nodeID] != sv.seq {
		return
	}
	if sv.had {
		p.m[sv.key][sv.nodeID] = sv.old
	} else {
		delete(p.m[sv.key], sv.nodeID)
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
