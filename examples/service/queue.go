package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// queuedRun is a run that an edit queued after another, from the moment
// its ID is handed out until its record is written (it starts, or is
// recorded as not started): a row of the service's own, so that every
// process of the service knows the ID (GET /runs/{run} and its events),
// and so that a start after the process that queued it died runs it.
type queuedRun struct {
	runID, key, after string
}

// queue saves run runID, queued on lecture key after run after.
func (p *paramStore) queue(ctx context.Context, runID, key, after string) error {
	_, err := p.pool.Exec(ctx, `INSERT INTO `+p.queued+` (run_id, graph_key, after_run) VALUES ($1, $2, $3)
ON CONFLICT (run_id) DO NOTHING`, runID, key, after)
	if err != nil {
		return fmt.Errorf("save queued run %q: %w", runID, err)
	}
	return nil
}

// queuedRun returns run runID if it is saved as queued.
func (p *paramStore) queuedRun(ctx context.Context, runID string) (queuedRun, bool, error) {
	q := queuedRun{runID: runID}
	err := p.pool.QueryRow(ctx, `SELECT graph_key, after_run FROM `+p.queued+` WHERE run_id = $1`, runID).Scan(&q.key, &q.after)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return queuedRun{}, false, nil
	case err != nil:
		return queuedRun{}, false, fmt.Errorf("read queued run %q: %w", runID, err)
	}
	return q, true, nil
}

// queuedRuns returns the runs saved as queued, oldest first: those of
// lecture key, or every one if key is "".
func (p *paramStore) queuedRuns(ctx context.Context, key string) ([]queuedRun, error) {
	rows, err := p.pool.Query(ctx, `SELECT run_id, graph_key, after_run FROM `+p.queued+`
WHERE $1 = '' OR graph_key = $1 ORDER BY queued_at, run_id`, key)
	if err != nil {
		return nil, fmt.Errorf("list the queued runs: %w", err)
	}
	qs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (queuedRun, error) {
		var q queuedRun
		err := row.Scan(&q.runID, &q.key, &q.after)
		return q, err
	})
	if err != nil {
		return nil, fmt.Errorf("list the queued runs: %w", err)
	}
	return qs, nil
}

// unqueue deletes the row of run runID, once its record is written.
func (p *paramStore) unqueue(ctx context.Context, runID string) error {
	if _, err := p.pool.Exec(ctx, `DELETE FROM `+p.queued+` WHERE run_id = $1`, runID); err != nil {
		return fmt.Errorf("delete queued run %q: %w", runID, err)
	}
	return nil
}

// pruneQueued deletes the rows older than age: left by a write that
// raced the run's start, say, whose record is older still.
func (p *paramStore) pruneQueued(ctx context.Context, age time.Duration) (int64, error) {
	tag, err := p.pool.Exec(ctx, `DELETE FROM `+p.queued+` WHERE queued_at < now() - make_interval(secs => $1)`, age.Seconds())
	if err != nil {
		return 0, fmt.Errorf("prune the queued runs: %w", err)
	}
	return tag.RowsAffected(), nil
}

// unqueued deletes the row of run runID, logging a failure: a row left
// over is harmless (its run's record is read first) and deleted at a
// later start, or by the retention.
func (s *service) unqueued(runID string) {
	ctx, cancel := context.WithTimeout(context.Background(), unlockTimeout)
	defer cancel()
	if err := s.params.unqueue(ctx, runID); err != nil {
		s.logger.Warn("the row of a queued run was not deleted", "run", runID, "err", err)
	}
}
