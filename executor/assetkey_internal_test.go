package executor

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/graph"
)

// putRecorder is an asset store that records the keys of its Puts, and
// fails the first fails[key] of them.
type putRecorder struct {
	*MemoryAssets
	mu    sync.Mutex
	keys  []string
	fails map[string]int
}

func (p *putRecorder) Put(ctx context.Context, key string, a Asset) (string, error) {
	p.mu.Lock()
	p.keys = append(p.keys, key)
	fail := p.fails[key] > 0
	if fail {
		p.fails[key]--
	}
	p.mu.Unlock()
	if fail {
		return "", errors.New("connection lost")
	}
	return p.MemoryAssets.Put(ctx, key, a)
}

// An asset's key is written in the room left after its node's
// idempotency key (see job.assetKey): whatever the length of the output
// hash (shorter or longer than the last one, past maxKeyRoom, the
// default content hash), and on a Put tried again or made by a later
// attempt, the key is the graph key, the node ID and the hash, and the
// idempotency key the generator was given never changes.
func TestAssetKeysBesideIdempotencyKeys(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, err := graph.Build(graph.Lecture(), 60)
		require.NoError(t, err)
		lengths := []int{1, 64, 0, maxKeyRoom + 2, 7, maxKeyRoom, 3}
		hashOf := func(n graph.Node) string { return strings.Repeat("h", lengths[int(n)%len(lengths)]) }
		var mu sync.Mutex
		given := map[string]string{} // node ID -> the idempotency key given
		copies := map[string]string{}
		gen := GeneratorFunc(func(_ context.Context, req Request) (Asset, error) {
			mu.Lock()
			given[req.NodeID], copies[req.NodeID] = req.IdempotencyKey, strings.Clone(req.IdempotencyKey)
			mu.Unlock()
			return Asset{Data: []byte(req.NodeID), Hash: hashOf(req.Node), Length: graph.SegmentLength}, nil
		})
		reg := Registry{}
		for i := range g.Kinds() {
			reg[g.KindName(i)] = gen
		}
		const key = "keys"
		assets := &putRecorder{MemoryAssets: NewMemoryAssets(), fails: map[string]int{}}
		failed := 0
		for n := range graph.Node(g.Len()) {
			fails := 0
			switch n % 5 {
			case 1: // one Put fails: the store's retry puts it again
				fails = 1
			case 3: // every Put of the first attempt fails: the second puts it
				fails = maxCommitFailures
			}
			if h := hashOf(n); fails > 0 && h != "" {
				assets.fails[key+"/"+g.NodeID(n)+"/"+h] = fails
				failed += fails
			}
		}
		require.NotZero(t, failed)
		// A state store that is not MemoryStates as such: the keys leave
		// room (see roomFor).
		states := struct{ StateStore }{NewMemoryStates()}
		require.True(t, roomFor(states))
		e, err := New(Options{Generators: reg, States: states, Assets: assets, Logger: slog.New(slog.DiscardHandler)})
		require.NoError(t, err)
		rep, err := e.Run(t.Context(), RunRequest{GraphKey: key, Graph: g})
		require.NoError(t, err)
		require.Len(t, rep.Generated, g.Len())

		byID := map[string]graph.Node{}
		for n := range graph.Node(g.Len()) {
			byID[g.NodeID(n)] = n
		}
		for _, k := range assets.keys {
			rest, ok := strings.CutPrefix(k, key+"/")
			require.True(t, ok, k)
			id, hash, ok := strings.Cut(rest, "/")
			require.True(t, ok, k)
			n, ok := byID[id]
			require.True(t, ok, k)
			want := hashOf(n)
			if want == "" {
				want = contentHash(Asset{Data: []byte(id)})
			}
			assert.Equal(t, want, hash, "the key of %s", id)
		}
		assert.Len(t, assets.keys, g.Len()+failed, "a Put for each node, and one for each failure")
		for id, idem := range given {
			assert.Equal(t, copies[id], idem, "the idempotency key of %s changed", id)
			assert.True(t, strings.HasPrefix(idem, key+"/"+id+"/"), idem)
		}
	})
}
