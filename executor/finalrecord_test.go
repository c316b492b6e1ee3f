package executor_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
)

// downRuns is a run store that refuses every call for outage once it
// sees the run's final record (a record that no longer says running), as
// a Postgres behind a proxy cut for a while.
type downRuns struct {
	executor.RunStore
	outage time.Duration
	mu     sync.Mutex
	since  time.Time
	calls  int
}

func (d *downRuns) down(rec *executor.Record) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.since.IsZero() && (rec == nil || rec.Status == executor.RunRunning) {
		return nil
	}
	if d.since.IsZero() {
		d.since = time.Now()
	}
	d.calls++
	if time.Since(d.since) < d.outage {
		return errors.New("runs table: connection refused")
	}
	return nil
}

func (d *downRuns) PutRun(ctx context.Context, rec executor.Record) error {
	if err := d.down(&rec); err != nil {
		return err
	}
	return d.RunStore.PutRun(ctx, rec)
}

func (d *downRuns) GetRun(ctx context.Context, id string) (executor.Record, error) {
	if err := d.down(nil); err != nil {
		return executor.Record{}, err
	}
	return d.RunStore.GetRun(ctx, id)
}

// A run whose run store refused its final record for 2 s, as a Postgres
// restart does, returned succeeded with the stored record saying running
// for good (only a log line said so), though Report.Record is documented
// as the record as stored and Options.StoreTimeout (30 s) as the final
// record's bound: its retries gave up after 5 calls, about 1.5 s. The
// final record is now retried until StoreTimeout ends; one that still
// fails is named by Report.RecordErr, Wait's error still the run's
// status.
func TestFinalRecordRidesOutAnOutage(t *testing.T) {
	for _, tc := range []struct {
		name    string
		outage  time.Duration
		timeout time.Duration
		stored  bool
	}{
		{name: "outage of 2s", outage: 2 * time.Second, stored: true},
		{name: "outage of 20s", outage: 20 * time.Second, stored: true},
		{name: "outage past StoreTimeout", outage: time.Hour, timeout: 5 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				g, err := graph.Build(graph.Template{Kinds: []graph.Kind{{Name: "x"}}}, graph.SegmentSeconds)
				require.NoError(t, err)
				runs := &downRuns{RunStore: executor.NewMemoryRuns(), outage: tc.outage}
				gen := executor.GeneratorFunc(func(_ context.Context, req executor.Request) (executor.Asset, error) {
					return executor.Asset{Data: []byte(req.NodeID)}, nil
				})
				e, err := executor.New(executor.Options{Generators: registryFor(g, gen), Runs: runs,
					StoreTimeout: tc.timeout, Logger: slog.New(slog.DiscardHandler)})
				require.NoError(t, err)
				defer func() { require.NoError(t, e.Close(ctx)) }()
				start := time.Now()
				rep, err := e.Run(ctx, executor.RunRequest{GraphKey: "key", Graph: g, RunID: "r1"})
				require.NoError(t, err, "Wait's error is the run's status: it succeeded")
				assert.Equal(t, executor.RunSucceeded, rep.Record.Status)
				rec, gerr := runs.RunStore.GetRun(ctx, "r1")
				require.NoError(t, gerr)
				if tc.stored {
					assert.NoError(t, rep.RecordErr)
					assert.Equal(t, executor.RunSucceeded, rec.Status, "the stored record")
					return
				}
				require.Error(t, rep.RecordErr, "the Report says the record was not stored")
				assert.ErrorContains(t, rep.RecordErr, "connection refused")
				assert.Equal(t, executor.RunRunning, rec.Status, "the stored record, as the Report says")
				assert.GreaterOrEqual(t, time.Since(start), tc.timeout, "retried for StoreTimeout")
				assert.Less(t, time.Since(start), tc.timeout+5*time.Second, "within StoreTimeout (and a Grace)")
			})
		})
	}
}
