package executor_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
)

// A Start, Plan, Resume or RerunFailed whose context ends while it waits
// to call a failing store again returns the context's error (with the
// store's), as it did when the store returned it, and not only the store's
// error: a caller that checks errors.Is(err, context.DeadlineExceeded)
// must not take its own deadline for a store that is down.
func TestStartRetryStoppedByContextSaysSo(t *testing.T) {
	reset := errors.New("connection reset by peer")
	for _, via := range []string{"Start", "Start with a run ID", "Plan", "Resume", "RerunFailed"} {
		t.Run(via, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, 30)
				ms := executor.NewMemoryStore()
				shaky := &startOutage{MemoryStore: ms, err: reset, fails: map[string]int{}, calls: map[string]int{}}
				e, err := executor.New(executor.Options{Generators: l.registry(l), States: shaky, Assets: shaky, Runs: shaky})
				require.NoError(t, err)
				defer func() { require.NoError(t, e.Close(context.Background())) }()
				rep, err := e.Run(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g})
				require.NoError(t, err)

				shaky.mu.Lock()
				shaky.fails["Load"], shaky.fails["GetRun"] = 1000, 1000
				shaky.mu.Unlock()
				// The first backoff is 50 to 100 ms (jittered): the
				// deadline ends it.
				ctx, cancel := context.WithTimeout(context.Background(), 40*time.Millisecond)
				defer cancel()
				req := executor.RunRequest{GraphKey: "lecture", Graph: l.g}
				switch via {
				case "Start":
					_, err = e.Start(ctx, req)
				case "Start with a run ID":
					req.RunID = "given"
					_, err = e.Start(ctx, req)
				case "Plan":
					_, _, err = e.Plan(ctx, req)
				case "Resume":
					_, err = e.Resume(ctx, l.g, rep.Record.ID)
				case "RerunFailed":
					_, err = e.RerunFailed(ctx, l.g, rep.Record.ID)
				}
				require.Error(t, err)
				if via != "Plan" { // a preview is no run
					assert.ErrorIs(t, err, executor.ErrCancelled, "a run cancelled before it started")
				}
				assert.ErrorIs(t, err, context.DeadlineExceeded)
				assert.ErrorIs(t, err, reset, "the store's error is kept")
			})
		})
	}
}
