package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/regengraph/regen/executor"
)

// queuedRun is a run that an edit queued after another, from the moment
// its ID is handed out until its record is written (it starts, or is
// recorded as not started): a row of the service's own, so that every
// process of the service knows the ID (GET /runs/{run} and its events),
// and so that a live process runs it after the process that queued it
// died (see recoverRuns).
type queuedRun struct {
	runID, key, after string
	// owner is the ID of the process that queued it, or took it over
	// (see service.id); "" in a row of an older version of the service.
	owner string
}

// queue saves run runID, queued on lecture key after run after, by
// p.owner.
func (p *paramStore) queue(ctx context.Context, runID, key, after string) error {
	_, err := p.pool.Exec(ctx, `INSERT INTO `+p.queued+` (run_id, graph_key, after_run, owner) VALUES ($1, $2, $3, NULLIF($4, ''))
ON CONFLICT (run_id) DO NOTHING`, runID, key, after, p.owner)
	if err != nil {
		return fmt.Errorf("save queued run %q: %w", runID, err)
	}
	return nil
}

// queuedRun returns run runID if it is saved as queued.
func (p *paramStore) queuedRun(ctx context.Context, runID string) (queuedRun, bool, error) {
	q := queuedRun{runID: runID}
	err := p.pool.QueryRow(ctx, `SELECT graph_key, after_run, COALESCE(owner, '') FROM `+p.queued+` WHERE run_id = $1`, runID).Scan(&q.key, &q.after, &q.owner)
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
	rows, err := p.pool.Query(ctx, `SELECT run_id, graph_key, after_run, COALESCE(owner, '') FROM `+p.queued+`
WHERE $1 = '' OR graph_key = $1 ORDER BY queued_at, run_id`, key)
	if err != nil {
		return nil, fmt.Errorf("list the queued runs: %w", err)
	}
	qs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (queuedRun, error) {
		var q queuedRun
		err := row.Scan(&q.runID, &q.key, &q.after, &q.owner)
		return q, err
	})
	if err != nil {
		return nil, fmt.Errorf("list the queued runs: %w", err)
	}
	return qs, nil
}

// claim makes process to the owner of run runID, saved as queued, if
// process from owns it ("": a row without an owner), and reports whether
// it did. It is called under the lecture's lock (see
// service.claimQueued). When fromLock is not nil, only while no session
// holds the lock of that key (process from's: see processLockKey), read
// in the same statement: a process that took its lock again since it
// was found dead keeps its run.
func (p *paramStore) claim(ctx context.Context, runID, from, to string, fromLock *int64) (bool, error) {
	var key int64
	if fromLock != nil {
		key = *fromLock
	}
	tag, err := p.pool.Exec(ctx, `UPDATE `+p.queued+` SET owner = NULLIF($3, '') WHERE run_id = $1 AND COALESCE(owner, '') = $2
	AND NOT ($4 AND `+lockHeld("$5")+`)`, runID, from, to, fromLock != nil, key)
	if err != nil {
		return false, fmt.Errorf("take queued run %q over: %w", runID, err)
	}
	return tag.RowsAffected() == 1, nil
}

// ownerOf returns the owner of run runID ("" for a row without one), if
// it is saved as queued. It reads the row FOR UPDATE: a takeover under
// way (see claim) is done first.
func (p *paramStore) ownerOf(ctx context.Context, runID string) (owner string, ok bool, err error) {
	err = p.pool.QueryRow(ctx, `SELECT COALESCE(owner, '') FROM `+p.queued+` WHERE run_id = $1 FOR UPDATE`, runID).Scan(&owner)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return "", false, nil
	case err != nil:
		return "", false, fmt.Errorf("read the owner of queued run %q: %w", runID, err)
	}
	return owner, true, nil
}

// lockHeld returns the SQL that tells whether a session holds the
// session advisory lock of the key that param (a placeholder) gives, in
// this database (see heldLocks).
func lockHeld(param string) string {
	return `EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1
	AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
	AND ((classid::bigint << 32) | objid::bigint) = ` + param + `)`
}

// heldLocks returns the keys of the session advisory locks that
// sessions hold in this database (GraphLocks': see
// pgstore.Store.GraphLockKey), in one read of pg_locks, never nil.
func (p *paramStore) heldLocks(ctx context.Context) (map[int64]bool, error) {
	if lockHook != nil {
		lockHook("read")
	}
	rows, err := p.pool.Query(ctx, `SELECT (classid::bigint << 32) | objid::bigint FROM pg_locks
WHERE locktype = 'advisory' AND granted AND objsubid = 1
	AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`)
	if err != nil {
		return nil, fmt.Errorf("read the locks held: %w", err)
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("read the locks held: %w", err)
	}
	held := make(map[int64]bool, len(keys))
	for _, k := range keys {
		held[k] = true
	}
	return held, nil
}

// unqueue deletes the row of run runID, once its record is written.
func (p *paramStore) unqueue(ctx context.Context, runID string) error {
	if _, err := p.pool.Exec(ctx, `DELETE FROM `+p.queued+` WHERE run_id = $1`, runID); err != nil {
		return fmt.Errorf("delete queued run %q: %w", runID, err)
	}
	return nil
}

// pruneQueued deletes the rows whose runs have a record, whatever their
// age: rows left over, by a write that raced the run's start, say, or an
// unqueue that failed. A row whose run has no record is never deleted,
// however old: its run is still queued, after a run that lasted longer
// than -retain, or left by a process that died, for a recovery to run
// (see recoverRuns). The retention calls it before PruneRuns, so that no
// row outlives the record that tells it left over: a row's age says
// nothing of its record's (a row may be written after its run has
// ended), and PruneRuns reads the time again, later. Its cost is a read
// of the record of each run queued, as a pass of the recovery's.
func (s *service) pruneQueued(ctx context.Context) (int64, error) {
	qs, err := s.params.queuedRuns(ctx, "")
	if err != nil {
		return 0, fmt.Errorf("prune the queued runs: %w", err)
	}
	var n int64
	for _, q := range qs {
		switch _, err := s.store.GetRun(ctx, q.runID); {
		case errors.Is(err, executor.ErrNotFound):
			continue // still queued
		case err != nil:
			return n, fmt.Errorf("prune the queued runs: %w", err)
		}
		if err := s.params.unqueue(ctx, q.runID); err != nil {
			return n, fmt.Errorf("prune the queued runs: %w", err)
		}
		n++
	}
	return n, nil
}

// unqueued deletes the row of run runID, logging a failure: a row left
// over is harmless (its run's record is read first) and deleted at a
// later recovery, or by the retention.
func (s *service) unqueued(runID string) {
	ctx, cancel := context.WithTimeout(context.Background(), unlockTimeout)
	defer cancel()
	if err := s.params.unqueue(ctx, runID); err != nil {
		s.logger.Warn("the row of a queued run was not deleted", "run", runID, "err", err)
	}
}

// requestCancel saves a cancel of run runID, for the process that runs
// it, or has it queued (see service.pollCancels).
func (p *paramStore) requestCancel(ctx context.Context, runID string) error {
	_, err := p.pool.Exec(ctx, `INSERT INTO `+p.cancels+` (run_id) VALUES ($1) ON CONFLICT (run_id) DO NOTHING`, runID)
	if err != nil {
		return fmt.Errorf("save the cancel of run %q: %w", runID, err)
	}
	return nil
}

// cancelsOf returns those of runIDs whose cancel is saved.
func (p *paramStore) cancelsOf(ctx context.Context, runIDs []string) ([]string, error) {
	rows, err := p.pool.Query(ctx, `SELECT run_id FROM `+p.cancels+` WHERE run_id = ANY($1) ORDER BY run_id`, runIDs)
	if err != nil {
		return nil, fmt.Errorf("read the cancels: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read the cancels: %w", err)
	}
	return ids, nil
}

// clearCancel deletes the saved cancel of run runID, once carried out.
func (p *paramStore) clearCancel(ctx context.Context, runID string) error {
	if _, err := p.pool.Exec(ctx, `DELETE FROM `+p.cancels+` WHERE run_id = $1`, runID); err != nil {
		return fmt.Errorf("delete the cancel of run %q: %w", runID, err)
	}
	return nil
}

// pruneCancels deletes the cancels older than age: of runs that ended
// before their process read them.
func (p *paramStore) pruneCancels(ctx context.Context, age time.Duration) (int64, error) {
	tag, err := p.pool.Exec(ctx, `DELETE FROM `+p.cancels+` WHERE requested_at < now() - make_interval(secs => $1)`, age.Seconds())
	if err != nil {
		return 0, fmt.Errorf("prune the cancels: %w", err)
	}
	return tag.RowsAffected(), nil
}

// cancelPoll is how often a process reads the cancels saved for its runs
// by other processes; a variable for the tests.
var cancelPoll = 500 * time.Millisecond

// cancelPollTimeout bounds each poll of the cancels (see applyCancels):
// a query that the server stalls (a lock held on the table, a network
// that TCP has not given up on) fails the poll, which the next one tries
// again, rather than stall the polls for good; a variable for the tests.
var cancelPollTimeout = 10 * time.Second

// pollCancels carries out, every cancelPoll until ctx ends, the cancels
// that other processes saved for the runs of this one (see applyCancels).
func (s *service) pollCancels(ctx context.Context) { tick(ctx, cancelPoll, s.applyCancels) }

// applyCancels carries out the cancels saved (see requestCancel) for the
// runs of this process, and for the runs that those resume (see
// recoverRun): a cancel of a run resumed cancels its resume. It deletes
// each cancel carried out; one of a run that is starting is left for the
// next poll. The poll's queries are bounded by cancelPollTimeout.
func (s *service) applyCancels(parent context.Context) {
	s.mu.Lock()
	var ids []string
	resumes := map[string]string{} // the runs resumed here, by the run each resumes
	for _, l := range s.lectures {
		ids = append(ids, l.runID)
		if l.next != "" {
			ids = append(ids, l.next)
		}
		if l.resumes != "" {
			ids = append(ids, l.resumes)
			resumes[l.resumes] = l.runID
		}
	}
	s.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(parent, cancelPollTimeout)
	defer cancel()
	cancels, err := s.params.cancelsOf(ctx, ids)
	if err != nil {
		if parent.Err() == nil {
			s.logger.Warn("cancels not read", "err", err)
		}
		return
	}
	for _, id := range cancels {
		runID := id
		if r, ok := resumes[id]; ok {
			runID = r
		}
		if _, err := s.cancel(runID); errors.Is(err, errStarting) {
			continue // the next poll cancels it
		}
		if runID != id {
			s.logger.Info("run cancelled by a request to another process, of the run it resumes", "run", runID, "resumes", id)
		} else {
			s.logger.Info("run cancelled by a request to another process", "run", id)
		}
		if err := s.params.clearCancel(ctx, id); err != nil && parent.Err() == nil {
			s.logger.Warn("cancel not deleted", "run", id, "err", err)
		}
	}
}

// markCut saves the keys of the lectures whose runs the shutdown of this
// process cut (see service.shutdown), or whose run a lost lock cut (see
// service.ended), for the passes of the live processes to look at (see
// service.watched): a run that started after their last pass was seen
// going on by none of them.
func (p *paramStore) markCut(ctx context.Context, keys []string) error {
	_, err := p.pool.Exec(ctx, `INSERT INTO `+p.cut+` (graph_key) SELECT unnest($1::text[])
ON CONFLICT (graph_key) DO UPDATE SET cut_at = now()`, keys)
	if err != nil {
		return fmt.Errorf("save the lectures whose runs were cut: %w", err)
	}
	return nil
}

// cutLectures returns the keys that markCut saved, with the time each
// was saved at.
func (p *paramStore) cutLectures(ctx context.Context) (map[string]time.Time, error) {
	rows, err := p.pool.Query(ctx, `SELECT graph_key, cut_at FROM `+p.cut)
	if err != nil {
		return nil, fmt.Errorf("read the lectures whose runs were cut: %w", err)
	}
	cut := map[string]time.Time{}
	var key string
	var at time.Time
	if _, err := pgx.ForEachRow(rows, []any{&key, &at}, func() error {
		cut[key] = at
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read the lectures whose runs were cut: %w", err)
	}
	return cut, nil
}

// unmarkCut deletes lecture key from those that markCut saved, once a
// pass found its newest run resumed, or not to resume, unless it was
// saved again since it was read as saved at at.
func (p *paramStore) unmarkCut(ctx context.Context, key string, at time.Time) error {
	if _, err := p.pool.Exec(ctx, `DELETE FROM `+p.cut+` WHERE graph_key = $1 AND cut_at = $2`, key, at); err != nil {
		return fmt.Errorf("delete the lecture %q whose runs were cut: %w", key, err)
	}
	return nil
}

// pruneCut deletes the lectures that markCut saved more than age ago:
// whose runs no pass could resume meanwhile.
func (p *paramStore) pruneCut(ctx context.Context, age time.Duration) (int64, error) {
	tag, err := p.pool.Exec(ctx, `DELETE FROM `+p.cut+` WHERE cut_at < now() - make_interval(secs => $1)`, age.Seconds())
	if err != nil {
		return 0, fmt.Errorf("prune the lectures whose runs were cut: %w", err)
	}
	return tag.RowsAffected(), nil
}
