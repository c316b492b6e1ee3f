package pgstore

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/internal/pgschema"
)

// markJSON is a dirty.Mark in the runs table's marks column:
// {"id": "asset:narration:segment[3]", "reason": "edited"}, the reason in
// the words of its text form, which do not depend on the order of
// dirty's constants.
type markJSON struct {
	ID     string       `json:"id"`
	Reason dirty.Reason `json:"reason"`
}

// storedMark is a mark as scanRun reads it: its reason as text, which may
// be one that this release does not know (see scanRun).
type storedMark struct {
	ID     string `json:"id"`
	Reason string `json:"reason"`
}

// knownReasons are the words of every dirty.Reason that this release
// knows, for putRun's $16: the stored marks with another reason are kept
// when a record is replaced.
var knownReasons = func() []string {
	var out []string
	for r := dirty.Reason(1); ; r++ {
		b, err := r.MarshalText()
		if err != nil {
			return out
		}
		out = append(out, string(b))
	}
}()

// PutRun creates or replaces the record with r.ID, in one upsert. Marks
// (in order) and Counts are stored as jsonb, Failed as text[]; a zero
// StartedAt or EndedAt as NULL. PutRun does not keep r's slices. An ID
// longer than [MaxRunIDBytes], or a graph key longer than
// [MaxGraphKeyBytes], or either not valid UTF-8 without NUL, gives an
// error wrapping a [*KeyError] (in executor.Permanent), before any SQL,
// as does a Resumes (the ID of a run, which the store would refuse as a
// record's ID) longer than MaxRunIDBytes or not valid UTF-8 without NUL,
// the KeyError's Field then "resumed run ID"; another text of r (Graph,
// TriggeredBy, Reason, Status, Error, CancelledBy, a Failed ID, a mark's
// ID) that is not, a [*TextError] so wrapped. It returns ctx.Err(), with no
// effect, if ctx is done.
//
// A record replaced keeps, after r's marks, those of its stored marks
// whose reason this release does not know: a newer release's (in a
// rolling deploy), which GetRun, ListRuns and RunsByStatus leave out of
// the record they read, so that this release's read, change and put of
// such a record (an executor recording it as interrupted, say) loses
// none of them; it keeps only such marks (objects whose id and reason
// are text), and drops any other element of the stored array. A record
// whose stored marks this release reads whole, or whose stored marks are
// not a JSON array (null, an object), is replaced whole.
func (s *Store) PutRun(ctx context.Context, r executor.Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkKey(fieldRunID, r.ID, MaxRunIDBytes); err != nil {
		return err
	}
	if err := checkKey(fieldGraphKey, r.GraphKey, MaxGraphKeyBytes); err != nil {
		return fmt.Errorf("put run %s: %w", quote(r.ID), err)
	}
	if err := checkRecord(r); err != nil {
		return fmt.Errorf("put run %s: %w", quote(r.ID), err)
	}
	marks := make([]markJSON, len(r.Marks))
	for i, m := range r.Marks {
		marks[i] = markJSON{ID: m.ID, Reason: m.Reason}
	}
	// A marshalling error (a mark's reason without a name) is the same
	// at every call: permanent.
	marksJSON, err := json.Marshal(marks)
	if err != nil {
		return executor.Permanent(fmt.Errorf("pgstore: put run %s: marks: %w", quote(r.ID), err))
	}
	countsJSON, err := json.Marshal(r.Counts)
	if err != nil {
		return executor.Permanent(fmt.Errorf("pgstore: put run %s: counts: %w", quote(r.ID), err))
	}
	failed := r.Failed
	if failed == nil {
		failed = []string{} // the column is NOT NULL
	}
	if err := s.exec(ctx, s.q.putRun, r.ID, r.GraphKey, int64(r.Seconds), r.TriggeredBy, r.Reason,
		string(marksJSON), string(r.Status), toTimestamptz(r.StartedAt), toTimestamptz(r.EndedAt),
		string(countsJSON), failed, r.Error, r.Graph, r.Resumes, r.CancelledBy, knownReasons); err != nil {
		return s.wrapErr(ctx, err, "put run %s", quote(r.ID))
	}
	return nil
}

// GetRun returns the record with that ID, or an error wrapping
// [executor.ErrNotFound]. The record's slices are the caller's; its
// times are in UTC. It returns ctx.Err() if ctx is done.
//
// A stored mark whose reason is none that this release knows (a newer
// release wrote it, in a rolling deploy) is left out of Record.Marks,
// the rest of the record read as stored, rather than fail the read: the
// marks say what started the run, which an older release need not know
// to list, resume or abandon it; PutRun keeps such marks (see
// [Store.PutRun]). So do ListRuns and RunsByStatus. The marks are
// checked strictly where a host gives them (executor.RunRequest,
// dirty.Mark's UnmarshalJSON), never here.
func (s *Store) GetRun(ctx context.Context, id string) (executor.Record, error) {
	if err := ctx.Err(); err != nil {
		return executor.Record{}, err
	}
	if !fits(id, MaxRunIDBytes) {
		return executor.Record{}, fmt.Errorf("get run %s: %w", quote(id), executor.ErrNotFound)
	}
	rows, err := s.pool.Query(ctx, s.q.getRun, id)
	if err != nil {
		return executor.Record{}, s.wrapErr(ctx, err, "get run %s", quote(id))
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return executor.Record{}, s.wrapErr(ctx, err, "get run %s", quote(id))
		}
		return executor.Record{}, fmt.Errorf("get run %s: %w", quote(id), executor.ErrNotFound)
	}
	r, err := scanRun(rows)
	if err != nil {
		return executor.Record{}, s.wrapErr(ctx, err, "get run %s", quote(id))
	}
	return r, nil
}

// ListRuns returns the graph's records, oldest first: by StartedAt, then
// by ID, byte by byte. A graph without records gives an empty slice and
// no error. It uses the runs_graph_started index, and reads every record
// of the graph at once: a host that serves a graph's records to clients
// reads them a page at a time with [Store.ListRunsPage]. It returns
// ctx.Err() if ctx is done. A mark whose reason this release does not
// know is left out of its record's Marks, as GetRun does.
func (s *Store) ListRuns(ctx context.Context, graphKey string) ([]executor.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := []executor.Record{}
	if !fits(graphKey, MaxGraphKeyBytes) {
		return out, nil
	}
	rows, err := s.pool.Query(ctx, s.q.listRuns, graphKey)
	if err != nil {
		return nil, s.wrapErr(ctx, err, "list runs of graph %s", quote(graphKey))
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, s.wrapErr(ctx, err, "list runs of graph %s", quote(graphKey))
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrapErr(ctx, err, "list runs of graph %s", quote(graphKey))
	}
	return out, nil
}

// MaxRunsPage is the most records that a page of [Store.ListRunsPage]
// holds.
const MaxRunsPage = 1000

// ErrInvalidPage is wrapped by the [*PageError] of a page that
// [Store.ListRunsPage] refused.
var ErrInvalidPage = errors.New("pgstore: invalid page")

// PageError reports a limit or a cursor that [Store.ListRunsPage]
// refused, before any SQL. It wraps [ErrInvalidPage] and
// executor.ErrInvalidRequest: the same page is refused again.
type PageError struct {
	// Field is what was refused: "limit" or "cursor".
	Field string
	// Limit is the limit given, for Field "limit".
	Limit int
	// Cursor is the cursor given, for Field "cursor".
	Cursor string
}

func (e *PageError) Error() string {
	if e.Field == "limit" {
		return fmt.Sprintf("%v: limit %d: want 1 to %d", ErrInvalidPage, e.Limit, MaxRunsPage)
	}
	return fmt.Sprintf(`%v: cursor %.80q: want "" or the next cursor of a page`, ErrInvalidPage, e.Cursor)
}

// Unwrap returns [ErrInvalidPage] and executor.ErrInvalidRequest.
func (e *PageError) Unwrap() []error { return []error{ErrInvalidPage, executor.ErrInvalidRequest} }

// pageCursorVersion starts a cursor of ListRunsPage: "r1.<start>.<ID>",
// the start the record's StartedAt in Unix microseconds (as the column
// holds it), or "-" for none, and the ID in unpadded base64url.
const pageCursorVersion = "r1"

// minTimestampMicros is Postgres's first timestamptz (4714-11-24 00:00
// UTC, BC) in Unix microseconds: the least start of a cursor. Its last
// is past the greatest int64.
const minTimestampMicros = -210866803200000000

// pageCursor returns the cursor of the page after r.
func pageCursor(r executor.Record) string {
	start := "-"
	if !r.StartedAt.IsZero() {
		start = strconv.FormatInt(r.StartedAt.UnixMicro(), 10)
	}
	return pageCursorVersion + "." + start + "." + base64.RawURLEncoding.EncodeToString([]byte(r.ID))
}

// parsePageCursor reads a cursor of pageCursor: the start (zero for
// none) and the ID of the record after which the page starts.
func parsePageCursor(cursor string) (start time.Time, id string, ok bool) {
	parts := strings.Split(cursor, ".")
	if len(parts) != 3 || parts[0] != pageCursorVersion {
		return time.Time{}, "", false
	}
	if parts[1] != "-" {
		// As pageCursor spells it, and a time that the column can hold,
		// not Go's zero time, which a cursor spells "-": a start out of
		// Postgres's range would fail the query (or overflow the
		// driver's encoding) instead of being refused.
		micros, err := strconv.ParseInt(parts[1], 10, 64)
		if err != nil || strconv.FormatInt(micros, 10) != parts[1] || micros < minTimestampMicros {
			return time.Time{}, "", false
		}
		start = time.UnixMicro(micros).UTC()
		if start.IsZero() {
			return time.Time{}, "", false
		}
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(b) == 0 || len(b) > MaxRunIDBytes || !pgschema.Storable(string(b)) {
		return time.Time{}, "", false
	}
	return start, string(b), true
}

// ListRunsPage returns a page of the graph's records, in ListRuns's
// order (oldest first: by StartedAt, a zero one first, then by ID, byte
// by byte): at most limit records (1 to [MaxRunsPage]) from the one
// after cursor on ("" for the first page), and the cursor of the next
// page, "" after the last. The pages, each read with the cursor of the
// one before, are ListRuns's list, each record once, whatever records
// are put meanwhile before the cursor; a record put after it (a new run)
// is on a later page. A cursor is a string that ListRunsPage made, of
// any graph; another limit, or a cursor it did not make, is refused
// with a [*PageError] before any SQL. A graph without records, or a
// graph key that the store would refuse, gives an empty page and "".
// It reads the runs_graph_started index from the cursor on, and stops
// after the page (plus the one record that tells whether another page
// follows): a page costs what it returns, however many records the
// graph has, where ListRuns reads them all; past records without a
// StartedAt, which the executor never writes, it reads those before
// the cursor too. It returns ctx.Err() if ctx is done. A mark whose
// reason this release does not know is left out of its record's Marks,
// as GetRun does.
func (s *Store) ListRunsPage(ctx context.Context, graphKey, cursor string, limit int) ([]executor.Record, string, error) {
	return s.pageOfRuns(ctx, "list runs of graph %s", graphKey, cursor, limit,
		s.q.listRunsFirst, s.q.listRunsAfter, s.q.listRunsAfterUnstarted)
}

// pageOfRuns reads a page of ListRunsPage or LatestRuns: it refuses a
// bad limit or cursor with a [*PageError] before any SQL, picks the
// statement that the cursor calls for (first without a cursor; started
// after, or before, a cursor of a record with a StartedAt, on graph
// key, start, ID and LIMIT; unstarted for one without, on graph key,
// ID and LIMIT), and reads the page with runsPage. what, with the
// graph key, prefixes its errors. It returns ctx.Err() if ctx is done.
func (s *Store) pageOfRuns(ctx context.Context, what, graphKey, cursor string, limit int, first, started, unstarted string) ([]executor.Record, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	if limit < 1 || limit > MaxRunsPage {
		return nil, "", &PageError{Field: "limit", Limit: limit}
	}
	sql, args := first, []any{graphKey, limit + 1}
	if cursor != "" {
		start, id, ok := parsePageCursor(cursor)
		switch {
		case !ok:
			return nil, "", &PageError{Field: "cursor", Cursor: cursor}
		case start.IsZero():
			sql, args = unstarted, []any{graphKey, id, limit + 1}
		default:
			sql, args = started, []any{graphKey, start, id, limit + 1}
		}
	}
	return s.runsPage(ctx, what, graphKey, limit, sql, args)
}

// runsPage reads a page of ListRunsPage or LatestRuns with statement
// sql and its args, whose LIMIT is limit plus one, and returns at most
// limit records and the cursor of the next page, "" after the last.
// what, with the graph key, prefixes its errors.
func (s *Store) runsPage(ctx context.Context, what, graphKey string, limit int, sql string, args []any) ([]executor.Record, string, error) {
	out := []executor.Record{}
	if !fits(graphKey, MaxGraphKeyBytes) {
		return out, "", nil
	}
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, "", s.wrapErr(ctx, err, what, quote(graphKey))
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, "", s.wrapErr(ctx, err, what, quote(graphKey))
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, "", s.wrapErr(ctx, err, what, quote(graphKey))
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = pageCursor(out[limit-1])
	}
	return out, next, nil
}

// LatestRuns returns a page of the graph's records, newest first: in the
// reverse of ListRuns's order (by StartedAt, then by ID, byte by byte,
// the records without a StartedAt last). It holds at most limit records
// (1 to [MaxRunsPage]) from the one before cursor back ("" for the
// newest), and returns the cursor of the next page, "" after the last
// (the oldest record). The cursors are those of [Store.ListRunsPage]: a
// cursor that either made names a record, and the page before it holds
// the records that ListRuns lists before that one, the record itself on
// neither side. A host that needs a graph's newest records (its last
// run's status or length) reads them so, where ListRuns reads every
// record of the graph; [Store.LatestRun] reads the newest alone. A bad
// limit or cursor is refused with a [*PageError] before any SQL. A
// graph without records, or a graph key that the store would refuse,
// gives an empty page and "". It reads the runs_graph_started index
// backwards from the cursor, and stops after the page (plus one record):
// a page costs what it returns, however many records the graph has. It
// returns ctx.Err() if ctx is done. A mark whose reason this release
// does not know is left out of its record's Marks, as GetRun does.
func (s *Store) LatestRuns(ctx context.Context, graphKey, cursor string, limit int) (records []executor.Record, next string, err error) {
	return s.pageOfRuns(ctx, "list the latest runs of graph %s", graphKey, cursor, limit,
		s.q.latestRuns, s.q.latestRunsBefore, s.q.latestRunsBeforeUnstarted)
}

// LatestRun returns the graph's newest record: the last of ListRuns's
// list (see [Store.LatestRuns]), the one row it reads from the
// runs_graph_started index, whatever the number of the graph's records. A graph without
// records gives an error wrapping executor.ErrNotFound. It returns
// ctx.Err() if ctx is done.
func (s *Store) LatestRun(ctx context.Context, graphKey string) (executor.Record, error) {
	if err := ctx.Err(); err != nil {
		return executor.Record{}, err
	}
	// LIMIT 1: the newest record alone, without the one after it that
	// tells a page whether another follows.
	page, _, err := s.runsPage(ctx, "latest run of graph %s", graphKey, 1, s.q.latestRuns, []any{graphKey, 1})
	switch {
	case err != nil:
		return executor.Record{}, err
	case len(page) == 0:
		return executor.Record{}, fmt.Errorf("latest run of graph %s: %w", quote(graphKey), executor.ErrNotFound)
	}
	return page[0], nil
}

// RunsByStatus returns the records whose status is exactly status, of
// every graph, oldest first: by StartedAt (a zero one first), then by ID,
// byte by byte; see executor.RunStatusLister. For executor.RunRunning,
// what a host asks at start-up to find the runs that a process which
// stopped left running, it reads the partial index runs_running (layout
// version 5), which holds the running records only: it costs what it
// returns, however many records the table keeps. For
// executor.RunCancelled, what [Store.ResumeCancelled] lists, it reads the
// partial index runs_cancelled likewise, where the schema has it (see
// [Store.Migrate]; else a scan). Another status is read with a scan of
// the table: it costs every record kept. A status that is
// not valid UTF-8 without NUL, which no record can have, gives an empty
// slice without asking the server. None gives an empty slice and no
// error. It returns ctx.Err() if ctx is done. A mark whose reason this
// release does not know is left out of its record's Marks, as GetRun
// does.
func (s *Store) RunsByStatus(ctx context.Context, status executor.RunStatus) ([]executor.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := []executor.Record{}
	if !pgschema.Storable(string(status)) {
		return out, nil
	}
	sql, args := s.q.runsByStatus, []any{string(status)}
	switch status {
	case executor.RunRunning:
		sql, args = s.q.runsRunning, nil
	case executor.RunCancelled:
		sql, args = s.q.runsCancelled, nil
	}
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, s.wrapErr(ctx, err, "list runs of status %s", quote(string(status)))
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, s.wrapErr(ctx, err, "list runs of status %s", quote(string(status)))
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrapErr(ctx, err, "list runs of status %s", quote(string(status)))
	}
	return out, nil
}

// scanRun reads one row of runColumns. A mark whose reason this release
// does not know is left out of the record's Marks (see Store.GetRun); a
// marks column that is not an array of {"id", "reason"} objects with
// text values fails the read.
func scanRun(row pgx.Row) (executor.Record, error) {
	var (
		r                   executor.Record
		seconds             int64
		marksJSON, counts   string
		status              string
		startedAt, endedAt  pgtype.Timestamptz
		marks               []storedMark
		errMarks, errCounts error
	)
	if err := row.Scan(&r.ID, &r.GraphKey, &seconds, &r.TriggeredBy, &r.Reason, &marksJSON, &status,
		&startedAt, &endedAt, &counts, &r.Failed, &r.Error, &r.Graph, &r.Resumes, &r.CancelledBy); err != nil {
		return executor.Record{}, err
	}
	r.Seconds = int(seconds)
	r.Status = executor.RunStatus(status)
	r.StartedAt, r.EndedAt = fromTimestamptz(startedAt), fromTimestamptz(endedAt)
	if errMarks = json.Unmarshal([]byte(marksJSON), &marks); errMarks == nil && len(marks) > 0 {
		r.Marks = make([]dirty.Mark, 0, len(marks))
		for _, m := range marks {
			var reason dirty.Reason
			if reason.UnmarshalText([]byte(m.Reason)) != nil {
				continue // a newer release's reason: left out, and kept by PutRun
			}
			r.Marks = append(r.Marks, dirty.Mark{ID: m.ID, Reason: reason})
		}
		if len(r.Marks) == 0 {
			r.Marks = nil
		}
	}
	errCounts = json.Unmarshal([]byte(counts), &r.Counts)
	if err := errors.Join(errMarks, errCounts); err != nil {
		return executor.Record{}, fmt.Errorf("run %s: bad marks or counts column: %w", quote(r.ID), err)
	}
	if len(r.Failed) == 0 {
		r.Failed = nil
	}
	return r, nil
}
