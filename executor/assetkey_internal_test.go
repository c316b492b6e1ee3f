package executor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
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

// scriptRefusal is a state store that refuses, for good, every commit
// that records the script clean once refuse is set.
type scriptRefusal struct {
	StateStore
	refuse atomic.Bool
}

func (s *scriptRefusal) Commit(ctx context.Context, key string, expect int64, changes []Change) (int64, error) {
	for _, c := range changes {
		if s.refuse.Load() && c.ID == "script" && c.State.Status == dirty.StatusClean {
			return 0, Permanent(errors.New("refused"))
		}
	}
	return s.StateStore.Commit(ctx, key, expect, changes)
}

// The in-memory stores get an asset's key as bytes (see memAssetsOf): the
// references are those of their Put, and a MemoryStore still dates each
// asset at its Put, so that a prune keeps an asset put more recently than
// its cutoff, here one whose commit was refused.
func TestMemoryAssetKeys(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, err := graph.Build(graph.Lecture(), 30)
		require.NoError(t, err)
		var take atomic.Int64
		gen := GeneratorFunc(func(_ context.Context, req Request) (Asset, error) {
			return Asset{Data: fmt.Appendf(nil, "%s take %d", req.NodeID, take.Load()), Length: graph.SegmentLength}, nil
		})
		reg := Registry{}
		for i := range g.Kinds() {
			reg[g.KindName(i)] = gen
		}
		for _, c := range []struct {
			name   string
			assets AssetStore
		}{{"MemoryAssets", NewMemoryAssets()}, {"MemoryStore", NewMemoryStore()}} {
			states := NewMemoryStates()
			e, err := New(Options{Generators: reg, States: states, Assets: c.assets})
			require.NoError(t, err)
			_, err = e.Run(t.Context(), RunRequest{GraphKey: c.name, Graph: g})
			require.NoError(t, err)
			snap, err := states.Load(t.Context(), c.name)
			require.NoError(t, err)
			for n := range graph.Node(g.Len()) {
				st := snap.States[g.NodeID(n)]
				assert.Equal(t, memRefPrefix+c.name+"/"+g.NodeID(n)+"/"+st.OutputHash, st.AssetRef, c.name)
				a, err := c.assets.Get(t.Context(), st.AssetRef)
				require.NoError(t, err)
				assert.Equal(t, st.OutputHash, contentHash(a), c.name)
			}
		}

		s := NewMemoryStore()
		states := &scriptRefusal{StateStore: s}
		e, err := New(Options{Generators: reg, States: states, Assets: s, Logger: slog.New(slog.DiscardHandler)})
		require.NoError(t, err)
		_, err = e.Run(t.Context(), RunRequest{GraphKey: "k", Graph: g})
		require.NoError(t, err)
		edit := RunRequest{GraphKey: "k", Graph: g, Marks: []dirty.Mark{{ID: "script", Reason: dirty.ReasonEdited}}}
		take.Add(1)
		_, err = e.Run(t.Context(), edit) // dates the assets it replaces
		require.NoError(t, err)
		time.Sleep(2 * time.Hour)
		take.Add(1)
		states.refuse.Store(true)
		_, err = e.Run(t.Context(), edit)
		require.Error(t, err) // the script's new take is put, and never recorded
		unrecorded := memRefPrefix + "k/script/" + contentHash(Asset{Data: []byte("script take 2")})
		ok, err := s.Exists(t.Context(), unrecorded)
		require.NoError(t, err)
		require.True(t, ok)
		_, err = s.PruneAssets(t.Context(), time.Hour)
		require.NoError(t, err)
		ok, err = s.Exists(t.Context(), unrecorded)
		require.NoError(t, err)
		assert.True(t, ok, "the asset put an hour after the cutoff was pruned")
		_, err = s.PruneAssets(t.Context(), 0)
		require.NoError(t, err)
		ok, err = s.Exists(t.Context(), unrecorded)
		require.NoError(t, err)
		assert.False(t, ok, "the unrecorded take was kept")
	})
}
