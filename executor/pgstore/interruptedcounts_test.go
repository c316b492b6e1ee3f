package pgstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/internal/testenv"
)

// The record of a run found interrupted kept the zero counts of its start
// (executor's TestInterruptedRecordCountsWhatTheRunDid): on Postgres too,
// whose times keep microseconds, it now counts the nodes that the key's
// states show it committed, and lists the failed ones.
func TestInterruptedRecordCounts(t *testing.T) {
	t.Parallel() // its own schema
	s, _ := newStore(t)
	ctx := testenv.Context(t, 60*time.Second)
	key := testenv.UniqueName(t)
	g := build(t, 30)
	p := newProvider()
	const failing = "asset:narration:segment[1]"
	p.mu.Lock()
	p.hook = func(_ context.Context, req executor.Request) error {
		if req.NodeID == failing {
			return executor.Permanent(errors.New("tts: voice not found"))
		}
		return nil
	}
	p.mu.Unlock()
	e := newExecutor(t, s, p.registry())
	rep, err := e.Run(ctx, executor.RunRequest{GraphKey: key, Graph: g})
	require.ErrorIs(t, err, executor.ErrRunFailed)
	full := rep.Record
	require.NotZero(t, full.Counts.Generated)
	require.Equal(t, []string{failing}, full.Failed)
	// Its process died before it recorded its outcome.
	crashed := full
	crashed.Status, crashed.EndedAt, crashed.Error = executor.RunRunning, time.Time{}, ""
	crashed.Counts, crashed.Failed = executor.Counts{}, nil
	require.NoError(t, s.PutRun(ctx, crashed))

	p.mu.Lock()
	p.hook = nil
	p.mu.Unlock()
	r, err := e.Resume(ctx, g, full.ID)
	require.NoError(t, err)
	_, err = r.Wait()
	require.NoError(t, err)
	got, err := s.GetRun(ctx, full.ID)
	require.NoError(t, err)
	require.Equal(t, executor.RunInterrupted, got.Status)
	// Planned is the nodes counted, as the executor has no Sink that
	// says the run's last event: the run planned those.
	want := executor.Counts{Planned: full.Counts.Generated + full.Counts.Failed,
		Generated: full.Counts.Generated, Failed: full.Counts.Failed}
	assert.Empty(t, cmp.Diff(want, got.Counts), "the interrupted run's counts (-want +got)")
	assert.Equal(t, full.Failed, got.Failed)
}
