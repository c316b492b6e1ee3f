package main

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/internal/testenv"
)

// Past -max-runs, the start-up logged "run not resumed ... a later start
// resumes it" for every run left, even one that no start resumes: a run
// cancelled by a shutdown that a later run already resumed. It now says
// so only of the runs still to resume.
func TestRecoveryLogsOnlyTheRunsLeftToResume(t *testing.T) {
	pg, rd := testenv.NewPostgres(t), testenv.NewRedis(t)
	store, err := pgstore.New(pg.Pool, pgstore.Options{Schema: pg.Schema})
	require.NoError(t, err)
	require.NoError(t, store.Migrate(t.Context()))
	now := time.Now().Add(-time.Minute)
	for _, rec := range []executor.Record{
		// Lecture z's run, left running by a process that died: resumed
		// first, it takes the one run slot.
		{ID: "run-z", GraphKey: "z", Seconds: 10, Status: executor.RunRunning, StartedAt: now},
		// Lecture a's run, cancelled by a shutdown, then resumed by
		// run-a2, cancelled by a shutdown too: run-a2 is the one to resume.
		{ID: "run-a1", GraphKey: "a", Seconds: 10, Status: executor.RunCancelled, Error: errShutdown.Error(), CancelledBy: codeShutdown,
			StartedAt: now, EndedAt: now.Add(time.Second)},
		{ID: "run-a2", GraphKey: "a", Seconds: 10, Status: executor.RunCancelled, Error: errShutdown.Error(), CancelledBy: codeShutdown,
			Resumes: "run-a1", StartedAt: now.Add(2 * time.Second), EndedAt: now.Add(3 * time.Second)},
	} {
		require.NoError(t, store.PutRun(t.Context(), rec))
	}
	var logs testenv.LogBuffer
	c := config{addr: "127.0.0.1:0", postgresURL: testenv.PostgresURL(), redisURL: testenv.RedisURL(),
		schema: pg.Schema, prefix: rd.Prefix, token: token, latency: time.Hour, retain: time.Hour, pruneEvery: time.Hour, recoverEvery: time.Hour, maxRuns: 1}
	s, err := start(context.Background(), c, slog.New(slog.NewTextHandler(&logs, nil)))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	require.NoError(t, s.shutdown(ctx))
	t.Log(logs.String())

	var notResumed []string
	for line := range strings.Lines(logs.String()) {
		if strings.Contains(line, "run not resumed") {
			notResumed = append(notResumed, line)
		}
	}
	require.Len(t, notResumed, 1, "the runs logged as not resumed")
	assert.Contains(t, notResumed[0], "run=run-a2")
	assert.Contains(t, logs.String(), "run=run-z")
}
