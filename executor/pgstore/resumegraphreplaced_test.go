package pgstore_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/internal/testenv"
)

// A cancelled run whose key's graph was replaced with no record of the
// key left to supersede it (states a tool committed, here) came back
// NotResumed, with ErrGraphReplaced, at every call, as if a later call
// could resume it: Abandon leaves an ended run as it is, so the host had
// nothing to do about it. It is now SkippedGraphReplaced, with no error,
// at each call alike, and graphOf is not called for it when the key's
// graph state names another graph; a record older than Record.Graph is
// told by Resume's refusal. A run of the key then supersedes it.
func TestResumeCancelledSkipsARunWhoseGraphWasReplaced(t *testing.T) {
	t.Parallel() // its own schema
	s, _ := newStore(t)
	ctx := testenv.Context(t, 60*time.Second)
	g, longer := build(t, 30), build(t, 60)
	name := testenv.UniqueName(t)
	shutdown := executor.CancelCode("shutdown", errors.New("service stopping"))
	slow := newProvider()
	started := holdVideos(slow)
	first := newExecutor(t, s, slow.registry())
	x := cancelledBy(t, first, g, name+"-x", started, shutdown)

	// The key's graph becomes another, by no run.
	replace := func(key string) {
		snap, err := s.Load(ctx, key)
		require.NoError(t, err)
		_, err = s.Commit(ctx, key, snap.Version, []executor.Change{{ID: executor.GraphStateID,
			State: dirty.State{Status: dirty.StatusClean, InputHash: executor.Fingerprint(longer), OutputHash: "mtool", UpdatedAt: time.Now()}}})
		require.NoError(t, err)
	}
	replace(name + "-x")
	// A record older than Record.Graph, of a key whose graph is another.
	old := name + "-old"
	at := time.Now().Add(-time.Minute)
	require.NoError(t, s.PutRun(ctx, executor.Record{ID: old, GraphKey: old, Seconds: 30, Status: executor.RunCancelled,
		CancelledBy: "shutdown", StartedAt: at, EndedAt: at.Add(time.Second)}))
	replace(old)

	var mu sync.Mutex
	built := map[string]int{}
	graphOf := func(rec executor.Record) (*graph.Graph, error) {
		mu.Lock()
		built[rec.ID]++
		mu.Unlock()
		return lectureOf(rec)
	}
	next := newExecutor(t, s, newProvider().registry())
	want := []outcome{{old, pgstore.SkippedGraphReplaced}, {x, pgstore.SkippedGraphReplaced}}
	for call := range 2 {
		recs, err := s.ResumeCancelled(ctx, next, graphOf, executor.ResumeOptions{}, "shutdown")
		require.NoError(t, err)
		if d := cmp.Diff(want, outcomes(recs)); d != "" {
			t.Fatalf("call %d (-want +got):\n%s", call, d)
		}
		for _, rc := range recs {
			assert.NoError(t, rc.Err, "%s", rc.Record.ID)
			assert.Nil(t, rc.Run)
			rep, err := rc.Wait()
			assert.Nil(t, rep)
			assert.NoError(t, err)
			assert.Equal(t, executor.RunCancelled, rc.Record.Status, "the record is left as it is")
		}
	}
	assert.Equal(t, map[string]int{old: 2}, built, "graphOf is called only for the record without Graph")
	assert.Equal(t, "skipped (graph replaced)", pgstore.SkippedGraphReplaced.String())

	// A run of the key's graph supersedes it.
	_, err := next.Run(ctx, executor.RunRequest{GraphKey: name + "-x", Graph: longer})
	require.NoError(t, err)
	recs, err := s.ResumeCancelled(ctx, next, graphOf, executor.ResumeOptions{}, "shutdown")
	require.NoError(t, err)
	if d := cmp.Diff([]outcome{{old, pgstore.SkippedGraphReplaced}}, outcomes(recs)); d != "" {
		t.Fatalf("after a run of x's key (-want +got):\n%s", d)
	}
}
