package executor

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/graph"
)

// A run counts its nodes of a limited batch key not settled in its round
// for the other runs' ETAs (see limit). The nodes that the machine
// skipped, because their upstream failed, settled too, but were still
// counted until the round's end: while the run went on with another
// branch, the other runs of the executor took them for work still to
// come under the limit, and their ETAs stayed too high for as long.
func TestLimitCountsNoSkippedNode(t *testing.T) {
	tm := graph.Template{Kinds: []graph.Kind{
		{Name: "brief"},
		{Name: "voice", PerSegment: true, Deps: []graph.Dep{{Kind: "brief", Scope: graph.ScopeGlobal}}, BatchKey: "tts", Concurrency: 4},
		{Name: "cover"},
	}}
	g, err := graph.Build(tm, 4*graph.SegmentSeconds)
	require.NoError(t, err)
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		gen := GeneratorFunc(func(ctx context.Context, req Request) (Asset, error) {
			switch req.ID.Kind {
			case "brief":
				return Asset{}, Permanent(errors.New("no brief"))
			case "cover":
				<-release // the run goes on with this branch
			}
			return Asset{Data: []byte(req.NodeID)}, nil
		})
		e, err := New(Options{Generators: Registry{"brief": gen, "voice": gen, "cover": gen},
			Limits: map[string]int{"tts": 1}, Default: KindOptions{Timeout: time.Hour}})
		require.NoError(t, err)
		r, err := e.Start(context.Background(), RunRequest{GraphKey: "a", Graph: g})
		require.NoError(t, err)
		synctest.Wait() // brief failed, its voices skipped; cover runs
		assert.Empty(t, e.limits["tts"].others(nil, nil), "the skipped voices still counted for the other runs' ETAs")
		close(release)
		_, err = r.Wait()
		require.Error(t, err)
		require.NoError(t, e.Close(context.Background()))
	})
}

// A drained run's nodes of a limited batch key that have not started
// never will, but they were still counted, for the other runs' ETAs,
// until the drain's calls under way had ended, which may take their
// timeout: the other runs took them for work to come under the limit.
// Once the run is halted, only its nodes under way count.
func TestLimitCountsNoNodeAfterADrain(t *testing.T) {
	tm := graph.Template{Kinds: []graph.Kind{
		{Name: "voice", PerSegment: true, BatchKey: "tts", Concurrency: 4},
		{Name: "dub", PerSegment: true, Deps: []graph.Dep{{Kind: "voice", Scope: graph.ScopeSameSegment}}, BatchKey: "tts", Concurrency: 4},
	}}
	g, err := graph.Build(tm, 4*graph.SegmentSeconds)
	require.NoError(t, err)
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		gen := GeneratorFunc(func(ctx context.Context, req Request) (Asset, error) {
			<-release
			return Asset{Data: []byte(req.NodeID)}, nil
		})
		e, err := New(Options{Generators: Registry{"voice": gen, "dub": gen},
			Limits: map[string]int{"tts": 1}, Default: KindOptions{Timeout: time.Hour}})
		require.NoError(t, err)
		r, err := e.Start(context.Background(), RunRequest{GraphKey: "a", Graph: g})
		require.NoError(t, err)
		synctest.Wait() // a voice in flight, three waiting for room, the dubs for the voices
		require.Equal(t, []int64{8}, e.limits["tts"].others(nil, nil))
		r.Drain(nil)
		synctest.Wait()
		assert.Equal(t, []int64{1}, e.limits["tts"].others(nil, nil), "the nodes that will never start counted for the other runs' ETAs")
		close(release)
		_, _ = r.Wait()
		require.NoError(t, e.Close(context.Background()))
	})
}
