package storetest

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
)

// RunStore checks a RunStore against the contract, in one subtest per
// property, each on a store from newStore.
func RunStore(t *testing.T, newStore func(t *testing.T) executor.RunStore) {
	t.Helper()
	runChecks(t, newStore, []check[executor.RunStore]{
		{"RoundTrip", testRunRoundTrip},
		{"RunningRecord", testRunRunning},
		{"ZeroTimes", testRunZeroTimes},
		{"SubMicrosecondTimes", testRunSubMicrosecond},
		{"Text", testRunText},
		{"Replace", testRunReplace},
		{"ReplaceIsAtomic", testRunReplaceAtomic},
		{"NotFound", testRunNotFound},
		{"IDsAreExact", testRunIDsAreExact},
		{"LongKeys", testRunLongKeys},
		{"ListOrder", testRunListOrder},
		{"ListFiltersByGraph", testRunListFilters},
		{"ListUnknownGraph", testRunListUnknown},
		{"Copies", testRunCopies},
		{"Concurrent", testRunConcurrent},
		{"CancelledContext", testRunCancelled},
		{"RunsByStatus", testRunsByStatus},
		{"CancelledBy", testRunCancelledBy},
	})
}

// graphFingerprint and otherFingerprint stand for the fingerprints of two
// graphs, as the executor records them in Record.Graph.
const (
	graphFingerprint = "9b2f0c7d41e8a3b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2"
	otherFingerprint = "0e1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6a7f8e9d0c1b2a3f4e5d6c7b8a9f0e1d"
)

// resumedRun stands for the ID of the run that a record's run finishes,
// as the executor records it in Record.Resumes.
const resumedRun = "run-2026-11-26T09:14:03Z-7f3a"

// record returns a finished run's record with every field set.
func record(id, graphKey string, started time.Time) executor.Record {
	return executor.Record{
		ID:          id,
		GraphKey:    graphKey,
		Seconds:     120,
		Graph:       graphFingerprint,
		TriggeredBy: "user:ada@example.com",
		Reason:      "edit of segment 3's narration — “shorter”\nsecond line",
		Resumes:     resumedRun,
		Marks: []dirty.Mark{
			{ID: "asset:narration:segment[3]", Reason: dirty.ReasonEdited},
			{ID: "script", Reason: dirty.ReasonForced},
			{ID: "asset:image:segment[7]", Reason: dirty.ReasonAssetMissing},
		},
		Status:    executor.RunFailed,
		StartedAt: started,
		EndedAt:   started.Add(93*time.Second + 417*time.Microsecond),
		// Each count another number, so that a store that swaps two
		// (a column list and its values that disagree) is caught.
		Counts: executor.Counts{
			Planned: 1449, Generated: 1400, Unchanged: 30, Failed: 3,
			Skipped: 12, Superseded: 2, Cancelled: 1, Attempts: 1460,
		},
		// In the order of the Report (by kind, then segment number), which
		// is not the order of the text.
		Failed: []string{"asset:image:segment[5]", "asset:image:segment[12]", "asset:video:segment[3]"},
		Error: "executor: 3 nodes failed:\nasset:image:segment[5]: provider: 503\nasset:image:segment[12]: provider: 503\n" +
			"asset:video:segment[3]: timeout",
	}
}

// putRun stores r and fails the test on error.
func putRun(t *testing.T, s executor.RunStore, r executor.Record) {
	t.Helper()
	require.NoError(t, s.PutRun(t.Context(), r), "PutRun(%s)", short(r.ID))
}

// requireRun fails the test unless the record with want.ID is want.
func requireRun(t *testing.T, s executor.RunStore, want executor.Record) {
	t.Helper()
	got, err := s.GetRun(t.Context(), want.ID)
	require.NoError(t, err, "GetRun(%s)", short(want.ID))
	if d := diff(want, got); d != "" {
		t.Fatalf("GetRun(%s) (-want +got):\n%s", short(want.ID), d)
	}
}

// listRuns lists the graph's runs and fails the test on error.
func listRuns(t *testing.T, s executor.RunStore, graphKey string) []executor.Record {
	t.Helper()
	rs, err := s.ListRuns(t.Context(), graphKey)
	require.NoError(t, err, "ListRuns(%s)", short(graphKey))
	return rs
}

// listOrderRule is the order of ListRuns, which the checks of it cite.
const listOrderRule = "ListRuns returns a graph's records oldest first: by StartedAt, compared as instants, " +
	"a zero StartedAt first (as SQL's NULLS FIRST), then by ID compared byte by byte, as Go compares strings " +
	"(not by a locale's collation, which ignores case and punctuation)"

// requireIDs fails the test unless got lists the records of the IDs want,
// in that order; call says what listed them, and why how want is made.
func requireIDs(t *testing.T, call string, want []string, got []executor.Record, why string) {
	t.Helper()
	if g := ids(got); !slices.Equal(want, g) {
		t.Fatalf("%s: want the records %s, got %s: %s", call, shortList(want), shortList(g), why)
	}
}

// ids returns the records' IDs.
func ids(rs []executor.Record) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}

func testRunRoundTrip(t *testing.T, s executor.RunStore) {
	r := record(Unique(t, "run"), Unique(t, "graph"), baseTime)
	putRun(t, s, r)
	requireRun(t, s, r)

	// Every status.
	for i, st := range []executor.RunStatus{executor.RunRunning, executor.RunSucceeded, executor.RunFailed,
		executor.RunCancelled, executor.RunInterrupted} {
		r := record(Unique(t, fmt.Sprint("status-", i)), r.GraphKey, baseTime.Add(time.Duration(i+1)*time.Second))
		r.Status = st
		putRun(t, s, r)
		requireRun(t, s, r)
	}

	// Every mark reason, in an order that is not theirs.
	all := record(Unique(t, "reasons"), r.GraphKey, baseTime.Add(time.Minute))
	all.Marks = nil
	for reason := dirty.ReasonUpstream; reason >= dirty.ReasonEdited; reason-- {
		all.Marks = append(all.Marks, dirty.Mark{ID: fmt.Sprintf("node-%d", reason), Reason: reason})
	}
	putRun(t, s, all)
	requireRun(t, s, all)
}

func testRunRunning(t *testing.T, s executor.RunStore) {
	// A run just started (by a Resume): zero EndedAt and Counts, no
	// marks, no failures.
	r := executor.Record{
		ID:        Unique(t, "run"),
		GraphKey:  Unique(t, "graph"),
		Seconds:   30,
		Graph:     graphFingerprint,
		Resumes:   resumedRun,
		Status:    executor.RunRunning,
		StartedAt: baseTime,
	}
	putRun(t, s, r)
	requireRun(t, s, r)
	got, err := s.GetRun(t.Context(), r.ID)
	require.NoError(t, err)
	assert.True(t, got.EndedAt.IsZero(), "EndedAt of a running run: got %v, want the zero time", got.EndedAt)
}

func testRunZeroTimes(t *testing.T, s executor.RunStore) {
	// A record without a start nor an end (a host's import, say) keeps
	// both zero, not the Unix epoch nor any other stand-in; and the zero
	// start is the oldest of all.
	key := Unique(t, "graph")
	zero := record(Unique(t, "zero"), key, time.Time{})
	zero.EndedAt = time.Time{}
	ended := record(Unique(t, "ended"), key, time.Time{}) // ended, start unknown
	ended.EndedAt = baseTime
	started := record(Unique(t, "started"), key, time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC))
	for _, r := range []executor.Record{started, zero, ended} {
		putRun(t, s, r)
		requireRun(t, s, r)
	}
	got, err := s.GetRun(t.Context(), zero.ID)
	require.NoError(t, err)
	assert.True(t, got.StartedAt.IsZero(), "StartedAt of a record put with the zero time: got %v", got.StartedAt)
	assert.True(t, got.EndedAt.IsZero(), "EndedAt of a record put with the zero time: got %v", got.EndedAt)

	want := []executor.Record{ended, zero, started}
	if ended.ID > zero.ID {
		want[0], want[1] = zero, ended
	}
	rs := listRuns(t, s, key)
	requireIDs(t, fmt.Sprintf("ListRuns(%q) of records started at the zero time and after it", key), ids(want), rs, listOrderRule)
	if d := diff(want, rs); d != "" {
		t.Fatalf("ListRuns(%q) (-want +got):\n%s", key, d)
	}
}

func testRunSubMicrosecond(t *testing.T, s executor.RunStore) {
	key := Unique(t, "graph")
	for i, tm := range subMicrosecondTimes {
		r := record(Unique(t, fmt.Sprint("run-", i)), key, tm)
		r.EndedAt = subMicrosecondTimes[(i+1)%len(subMicrosecondTimes)]
		putRun(t, s, r)
		got, err := s.GetRun(t.Context(), r.ID)
		require.NoError(t, err, "GetRun(%q)", r.ID)
		for _, f := range []struct {
			name      string
			want, got time.Time
		}{{"StartedAt", r.StartedAt, got.StartedAt}, {"EndedAt", r.EndedAt, got.EndedAt}} {
			assert.True(t, keptTime(f.want, f.got),
				"record %s: %s %v came back as %v; want it, or it truncated to the microsecond (%v), never rounded",
				r.ID, f.name, f.want, f.got, f.want.Truncate(time.Microsecond))
		}
		got.StartedAt, got.EndedAt = r.StartedAt, r.EndedAt
		if d := diff(r, got); d != "" {
			t.Errorf("GetRun(%q): the fields other than the times (-want +got):\n%s", r.ID, d)
		}
	}
}

// testRunText puts a record with text of every kind, and an Error as
// long as the executor records ([executor.MaxEventText] bytes): it comes
// back byte for byte, not cut, trimmed nor cleaned.
func testRunText(t *testing.T, s executor.RunStore) {
	r := record(Unique(t, "run"), Unique(t, "graph"), baseTime)
	r.Error, r.Reason, r.TriggeredBy = text(executor.MaxEventText), text(4096), "user:🎬 \t\r\n "
	r.Resumes = "🎬 run\t\x01 "
	r.Marks = append(r.Marks, dirty.Mark{ID: "🎬 node\t\x01 ", Reason: dirty.ReasonEdited})
	r.Failed = append(r.Failed, "🎬 node\t\x01 ")
	putRun(t, s, r)
	requireRun(t, s, r)
}

func testRunReplace(t *testing.T, s executor.RunStore) {
	key := Unique(t, "graph")
	r := record(Unique(t, "run"), key, baseTime)
	r.Status, r.EndedAt, r.Counts, r.Failed, r.Error = executor.RunRunning, time.Time{}, executor.Counts{Planned: 10}, nil, ""
	putRun(t, s, r)

	// The run ends: more fields, and fewer marks.
	done := record(r.ID, key, baseTime)
	done.Marks = done.Marks[:1]
	putRun(t, s, done)
	requireRun(t, s, done)

	// Replaced again with shorter lists and empty fields: each empty, not
	// the old record's (as an upsert that keeps the old value of a column
	// where the new one is empty would leave it), Graph as in a record
	// written before that field existed.
	again := done
	again.Marks, again.Failed, again.Error, again.Reason, again.Resumes = nil, []string{"script"}, "", "", ""
	again.Graph, again.TriggeredBy, again.Seconds = "", "", 60
	putRun(t, s, again)
	requireRun(t, s, again)

	rs := listRuns(t, s, key)
	assert.Equal(t, []string{r.ID}, ids(rs), "ListRuns after replacing a record twice")

	// Replaced by a record of another graph, under the same ID: it moves
	// to that graph's list, and leaves the first one's, with the other
	// graph's fingerprint, finishing another run.
	other := Unique(t, "other-graph")
	moved := again
	moved.GraphKey, moved.Graph, moved.Resumes = other, otherFingerprint, resumedRun+"-other"
	putRun(t, s, moved)
	requireRun(t, s, moved)
	assert.Empty(t, ids(listRuns(t, s, key)), "ListRuns(%q) after its record was replaced by one of graph %q", key, other)
	assert.Equal(t, []string{r.ID}, ids(listRuns(t, s, other)), "ListRuns(%q) after a record moved to it", other)
}

// testRunReplaceAtomic replaces a record again and again, the running
// record by the ended one and back, while readers get and list it: each
// read finds the old record or the new one, whole. A PutRun that
// deletes the record and then inserts it apart, or writes it in place,
// has a reader meanwhile find no record, or one it cannot decode; a
// host's status page, or a Resume, then takes the run for gone.
func testRunReplaceAtomic(t *testing.T, s executor.RunStore) {
	const (
		rounds = 300             // PutRuns
		limit  = 2 * time.Second // or fewer, if they take longer
	)
	key := Unique(t, "graph")
	ended := record(Unique(t, "run"), key, baseTime)
	running := ended
	running.Status, running.EndedAt, running.Counts, running.Failed, running.Error =
		executor.RunRunning, time.Time{}, executor.Counts{}, nil, ""
	putRun(t, s, running)
	// check returns what is wrong with a record read while PutRun
	// replaced it, or "".
	check := func(got executor.Record) string {
		if diff(running, got) == "" || diff(ended, got) == "" {
			return ""
		}
		return fmt.Sprintf("a record that PutRun never put (-running +got):\n%s", diff(running, got))
	}
	var (
		wg    sync.WaitGroup
		ready sync.WaitGroup
		done  = make(chan struct{})
	)
	stop := sync.OnceFunc(func() { close(done); wg.Wait() })
	defer stop()
	// read reads the record in a loop with get, which returns it, or
	// what is wrong instead.
	read := func(call string, get func() (executor.Record, string)) {
		ready.Add(1)
		wg.Go(func() {
			started := sync.OnceFunc(ready.Done)
			defer started()
			for reads := 0; ; reads++ {
				got, what := get()
				if what == "" {
					what = check(got)
				}
				if what != "" {
					t.Errorf("%s, read %d while PutRun replaced the record, found %s; "+
						"a PutRun that replaces a record does it in one step (one upsert or transaction; a new file renamed over the old)",
						call, reads, what)
					return
				}
				started()
				select {
				case <-done:
					return
				default:
				}
			}
		})
	}
	read(fmt.Sprintf("GetRun(%q)", running.ID), func() (executor.Record, string) {
		r, err := s.GetRun(t.Context(), running.ID)
		if err != nil {
			return r, "the error " + err.Error()
		}
		return r, ""
	})
	read(fmt.Sprintf("ListRuns(%q)", key), func() (executor.Record, string) {
		rs, err := s.ListRuns(t.Context(), key)
		switch {
		case err != nil:
			return executor.Record{}, "the error " + err.Error()
		case len(rs) != 1:
			return executor.Record{}, fmt.Sprintf("%d records, %q, where one was put", len(rs), ids(rs))
		}
		return rs[0], ""
	})
	ready.Wait()
	start := time.Now()
	last := running
	for i := range rounds {
		last = [2]executor.Record{ended, running}[i%2]
		putRun(t, s, last)
		if time.Since(start) > limit {
			break
		}
		runtime.Gosched() // let the readers in between puts too
	}
	stop()
	requireRun(t, s, last)
}

func testRunNotFound(t *testing.T, s executor.RunStore) {
	putRun(t, s, record(Unique(t, "run"), Unique(t, "graph"), baseTime)) // the store is not empty
	for _, id := range []string{Unique(t, "never-put"), ""} {
		_, err := s.GetRun(t.Context(), id)
		assert.ErrorIs(t, err, executor.ErrNotFound, "GetRun(%q) of an unknown ID", id)
	}
}

// testRunIDsAreExact puts records under IDs that a case-insensitive or
// space-padding collation, or a Unicode normalisation, would take for one:
// each is a record of its own, and an ID never put is not found.
func testRunIDsAreExact(t *testing.T, s executor.RunStore) {
	base := Unique(t, "")
	key := Unique(t, "graph")
	names := []string{base + "-run", base + "-Run", base + "-RUN", base + "-run ", base + "-run  ", base + "- run",
		base + "-cafe\u0301", base + "-caf\u00e9"}
	want := make([]executor.Record, len(names))
	for i, id := range names {
		r := record(id, key, baseTime.Add(time.Duration(i)*time.Second))
		r.Seconds, r.Reason = 10+i, fmt.Sprintf("record %d of %d", i, len(names))
		putRun(t, s, r)
		want[i] = r
	}
	for _, r := range want {
		requireRun(t, s, r)
	}
	assert.Equal(t, names, ids(listRuns(t, s, key)), "ListRuns(%q) of records whose IDs differ by case, spaces or normalisation", key)
	for _, id := range []string{base + "-rUn", base + "-run   ", base + "-ruN "} {
		got, err := s.GetRun(t.Context(), id)
		assert.ErrorIs(t, err, executor.ErrNotFound, "GetRun(%q), an ID never put, like others put: got %+v", id, got)
	}
}

// testRunLongKeys puts records with long IDs, and of graphs with long
// keys: a store keeps each exactly, or refuses the PutRun with a permanent
// error, and then GetRun and ListRuns of the refused ID or key find
// nothing, without an error.
func testRunLongKeys(t *testing.T, s executor.RunStore) {
	for _, n := range longKeyLengths {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			key := Unique(t, "graph")
			ia, ib := longKeys(Unique(t, "run-"), n)
			ra, rb := record(ia, key, baseTime), record(ib, key, baseTime)
			rb.Status, rb.Reason = executor.RunSucceeded, "the other record"
			if err := s.PutRun(t.Context(), ra); err != nil {
				assertPermanent(t, err, fmt.Sprintf("PutRun of a %d-byte ID", n))
				_, err := s.GetRun(t.Context(), ia)
				assert.ErrorIs(t, err, executor.ErrNotFound, "GetRun of a %d-byte ID, which the store refuses", n)
				assert.Empty(t, ids(listRuns(t, s, key)), "ListRuns after PutRun of a %d-byte ID failed", n)
			} else {
				putRun(t, s, rb)
				requireRun(t, s, ra)
				requireRun(t, s, rb)
				requireIDs(t, fmt.Sprintf("ListRuns of two records with %d-byte IDs, started together", n), []string{ia, ib}, listRuns(t, s, key),
					"their IDs differ in the last byte only, and both are kept (a store that cuts IDs to a length takes them for one), in the order of their IDs: "+listOrderRule)
			}

			// Resumes is an ID too, of the run that the record's finishes.
			sa, sb := longKeys(Unique(t, "resumed-"), n)
			r3, r4 := record(Unique(t, "resumes-a"), key, baseTime), record(Unique(t, "resumes-b"), key, baseTime)
			r3.Resumes, r4.Resumes = sa, sb
			if err := s.PutRun(t.Context(), r3); err != nil {
				assertPermanent(t, err, fmt.Sprintf("PutRun of a record whose Resumes has %d bytes", n))
				_, err := s.GetRun(t.Context(), r3.ID)
				assert.ErrorIs(t, err, executor.ErrNotFound, "GetRun of a record PutRun refused for its %d-byte Resumes", n)
			} else {
				putRun(t, s, r4)
				requireRun(t, s, r3)
				requireRun(t, s, r4)
			}

			ga, gb := longKeys(Unique(t, "graph-"), n)
			r1, r2 := record(Unique(t, "a"), ga, baseTime), record(Unique(t, "b"), gb, baseTime)
			if err := s.PutRun(t.Context(), r1); err != nil {
				assertPermanent(t, err, fmt.Sprintf("PutRun of a %d-byte graph key", n))
				_, err := s.GetRun(t.Context(), r1.ID)
				assert.ErrorIs(t, err, executor.ErrNotFound, "GetRun of a record PutRun refused")
				assert.Empty(t, listRuns(t, s, ga), "ListRuns of a %d-byte graph key, which the store refuses", n)
				return
			}
			putRun(t, s, r2)
			requireRun(t, s, r1)
			assert.Equal(t, []string{r1.ID}, ids(listRuns(t, s, ga)), "ListRuns of a %d-byte graph key", n)
			assert.Equal(t, []string{r2.ID}, ids(listRuns(t, s, gb)), "ListRuns of a %d-byte graph key", n)
		})
	}
}

func testRunListOrder(t *testing.T, s executor.RunStore) {
	key := Unique(t, "graph")
	prefix := Unique(t, "run")
	id := func(name string) string { return prefix + "-" + name }
	utc := baseTime.UTC()
	west := time.FixedZone("UTC-08", -8*3600)
	// Oldest first, by instant: "early" is 09:00Z written in UTC+05:30
	// (14:30 local), "late" is 10:00Z written in UTC-08 (02:00 local), so
	// ordering by local wall-clock text gets them backwards. "tie-a" and
	// "tie-b" start at the same instant and go by ID; "micro" starts one
	// microsecond after them.
	early := time.Date(2025, 3, 14, 9, 0, 0, 0, time.UTC).In(baseTime.Location())
	late := time.Date(2025, 3, 14, 10, 0, 0, 0, time.UTC).In(west)
	want := []executor.Record{
		record(id("1-early"), key, early),
		record(id("2-late"), key, late),
		record(id("3-tie-a"), key, utc.Add(time.Hour)),
		record(id("3-tie-b"), key, utc.Add(time.Hour).In(west)),
		record(id("4-micro"), key, utc.Add(time.Hour+time.Microsecond)),
		// Ties broken byte by byte, as Go compares strings ('B' < 'C' <
		// 'a', '-' < '_'), not by a locale's collation, which ignores
		// case and punctuation: "6-tie_0" first, then "a", "B", "C".
		record(id("6-tie-B"), key, utc.Add(2*time.Hour)),
		record(id("6-tie-C"), key, utc.Add(2*time.Hour).In(west)),
		record(id("6-tie-a"), key, utc.Add(2*time.Hour)),
		record(id("6-tie_0"), key, utc.Add(2*time.Hour)),
		record(id("5-latest"), key, utc.Add(24*time.Hour)),
	}
	for _, i := range []int{4, 1, 9, 7, 3, 5, 0, 8, 2, 6} {
		putRun(t, s, want[i])
	}
	got := listRuns(t, s, key)
	requireIDs(t, fmt.Sprintf("ListRuns(%q)", key), ids(want), got, listOrderRule)
	if d := diff(want, got); d != "" {
		t.Fatalf("ListRuns(%q) (-want +got):\n%s", key, d)
	}

	// A record replaced with another start moves to its new place: the
	// oldest becomes the newest, and the newest goes first.
	moved, first := want[0], want[len(want)-1]
	moved.StartedAt, moved.EndedAt = utc.Add(48*time.Hour), utc.Add(49*time.Hour)
	first.StartedAt = early.Add(-time.Hour)
	putRun(t, s, moved)
	putRun(t, s, first)
	want = append(append([]executor.Record{first}, want[1:len(want)-1]...), moved)
	got = listRuns(t, s, key)
	requireIDs(t, fmt.Sprintf("ListRuns(%q) after two records were replaced with other starts", key), ids(want), got,
		"a replaced record takes the place of its new StartedAt: "+listOrderRule)
	if d := diff(want, got); d != "" {
		t.Fatalf("ListRuns(%q) after two records were replaced with other starts (-want +got):\n%s", key, d)
	}
}

func testRunListFilters(t *testing.T, s executor.RunStore) {
	key := Unique(t, "graph")
	// Keys a prefix scan, a LIKE or a case-insensitive comparison would
	// mix up with key.
	others := []string{key + "2", key + "/sub", key + "%", strings.ToUpper(key), key + " "}
	want := []executor.Record{
		record(Unique(t, "a"), key, baseTime),
		record(Unique(t, "b"), key, baseTime.Add(time.Second)),
	}
	for _, r := range want {
		putRun(t, s, r)
	}
	for i, k := range others {
		putRun(t, s, record(Unique(t, fmt.Sprint("other-", i)), k, baseTime.Add(time.Duration(i)*time.Millisecond)))
	}
	got := listRuns(t, s, key)
	assert.Equal(t, ids(want), ids(got), "ListRuns(%q) among graphs with similar keys", key)
	for _, k := range others {
		assert.Len(t, listRuns(t, s, k), 1, "ListRuns(%q)", k)
	}

	// Keys that a Unicode normalisation would mix up: "café" with a
	// combining accent (NFD) and precomposed (NFC). Each lists its own
	// record, under its key as put.
	for i, k := range []string{key + "-cafe\u0301", key + "-caf\u00e9"} {
		r := record(Unique(t, fmt.Sprint("cafe-", i)), k, baseTime)
		putRun(t, s, r)
		rs := listRuns(t, s, k)
		require.Equal(t, []string{r.ID}, ids(rs), "ListRuns(%q) among graphs whose keys differ by Unicode normalisation only", k)
		assert.Equal(t, k, rs[0].GraphKey, "ListRuns(%q): GraphKey", k)
	}
}

func testRunListUnknown(t *testing.T, s executor.RunStore) {
	putRun(t, s, record(Unique(t, "run"), Unique(t, "graph"), baseTime)) // the store is not empty
	rs, err := s.ListRuns(t.Context(), Unique(t, "unknown"))
	require.NoError(t, err, "ListRuns of a graph without runs")
	assert.Empty(t, rs, "ListRuns of a graph without runs")
}

func testRunCopies(t *testing.T, s executor.RunStore) {
	key := Unique(t, "graph")
	want := record(Unique(t, "run"), key, baseTime)

	// requireCopies fails the test unless GetRun and ListRuns return
	// want, after the caller changed the slices named by what.
	requireCopies := func(what, wrong string) {
		t.Helper()
		got, err := s.GetRun(t.Context(), want.ID)
		require.NoError(t, err, "GetRun(%s)", short(want.ID))
		if d := diff(want, got); d != "" {
			t.Fatalf("GetRun(%s) after the caller changed %s: %s (-want +got):\n%s", short(want.ID), what, wrong, d)
		}
		if d := diff([]executor.Record{want}, listRuns(t, s, key)); d != "" {
			t.Fatalf("ListRuns(%s) after the caller changed %s: %s (-want +got):\n%s", short(key), what, wrong, d)
		}
	}

	// The caller may reuse its record's slices after PutRun.
	r := record(want.ID, key, baseTime)
	putRun(t, s, r)
	r.Marks[0].ID, r.Failed[0] = "changed", "changed"
	requireCopies("the Marks and Failed of the record it had put",
		"the store kept the caller's slices, which the caller may reuse after PutRun; PutRun copies them")

	// And may change what GetRun and ListRuns return.
	got, err := s.GetRun(t.Context(), want.ID)
	require.NoError(t, err)
	got.Marks[0].ID, got.Failed[0] = "changed", "changed"
	rs := listRuns(t, s, key)
	require.Len(t, rs, 1)
	rs[0].Marks[0].ID, rs[0].Failed[0] = "changed", "changed"
	requireCopies("the Marks and Failed of records that GetRun and ListRuns returned",
		"the store handed out its own slices, which are the caller's to change; GetRun and ListRuns return copies")
}

func testRunConcurrent(t *testing.T, s executor.RunStore) {
	const workers, each = 8, 10
	key := Unique(t, "graph")
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				r := record(Unique(t, fmt.Sprintf("w%d-%d", w, i)), key, baseTime.Add(time.Duration(w*each+i)*time.Second))
				if !assert.NoError(t, s.PutRun(t.Context(), r), "PutRun(%q) while others put", r.ID) {
					return
				}
				r.Status = executor.RunSucceeded
				if !assert.NoError(t, s.PutRun(t.Context(), r), "PutRun(%q) again while others put", r.ID) {
					return
				}
				if _, err := s.ListRuns(t.Context(), key); !assert.NoError(t, err, "ListRuns while others put") {
					return
				}
			}
		})
	}
	wg.Wait()
	rs := listRuns(t, s, key)
	require.Len(t, rs, workers*each, "ListRuns after concurrent puts")
	for i, r := range rs {
		assert.Equal(t, executor.RunSucceeded, r.Status, "record %d (%s)", i, r.ID)
		assert.True(t, r.StartedAt.Equal(baseTime.Add(time.Duration(i)*time.Second)), "record %d (%s) out of order", i, r.ID)
	}
}

func testRunCancelled(t *testing.T, s executor.RunStore) {
	key := Unique(t, "graph")
	r := record(Unique(t, "run"), key, baseTime)
	putRun(t, s, r)
	ctx := cancelled(t)

	changed := r
	changed.Status = executor.RunCancelled
	assert.ErrorIs(t, s.PutRun(ctx, changed), context.Canceled, "PutRun with a cancelled context")
	fresh := record(Unique(t, "fresh"), key, baseTime.Add(time.Second))
	assert.ErrorIs(t, s.PutRun(ctx, fresh), context.Canceled, "PutRun with a cancelled context")
	_, err := s.GetRun(ctx, r.ID)
	assert.ErrorIs(t, err, context.Canceled, "GetRun with a cancelled context")
	_, err = s.ListRuns(ctx, key)
	assert.ErrorIs(t, err, context.Canceled, "ListRuns with a cancelled context")

	requireRun(t, s, r)
	_, err = s.GetRun(t.Context(), fresh.ID)
	assert.ErrorIs(t, err, executor.ErrNotFound, "GetRun of a record put with a cancelled context")
	assert.Equal(t, []string{r.ID}, ids(listRuns(t, s, key)), "ListRuns after PutRun with a cancelled context")
}

// testRunsByStatus checks the optional RunStatusLister: the records of a
// status (exactly that one: not by case, spaces or prefix), across graph
// keys (a record moved to another key listed once, under its new one),
// oldest first by StartedAt then ID, with
// their status as last put, every field, and the caller's own. The kit
// shares the store with others, so it looks only at its own records.
func testRunsByStatus(t *testing.T, s executor.RunStore) {
	l, ok := s.(executor.RunStatusLister)
	if !ok {
		t.Log("the store is not an executor.RunStatusLister: ListRuns alone serves")
		return
	}
	prefix := Unique(t, "run")
	keys := []string{Unique(t, "graph-a"), Unique(t, "graph-b"), Unique(t, "graph-c")}
	west := time.FixedZone("UTC-08", -8*3600)
	rec := func(name string, key int, status executor.RunStatus, started time.Time) executor.Record {
		r := record(prefix+"-"+name, keys[key], started)
		r.Status = status
		if status == executor.RunRunning {
			r.EndedAt, r.Counts, r.Failed, r.Error = time.Time{}, executor.Counts{}, nil, ""
		}
		return r
	}
	running := []executor.Record{
		rec("1-zero-start", 2, executor.RunRunning, time.Time{}),
		rec("2-early", 1, executor.RunRunning, baseTime),
		rec("3-tie-a", 0, executor.RunRunning, baseTime.Add(time.Hour).In(west)),
		rec("3-tie-b", 2, executor.RunRunning, baseTime.Add(time.Hour)),
		rec("4-late", 0, executor.RunRunning, baseTime.Add(24*time.Hour)),
	}
	interrupted := []executor.Record{rec("5-interrupted", 1, executor.RunInterrupted, baseTime.Add(time.Minute))}
	others := []executor.Record{
		rec("6-succeeded", 0, executor.RunSucceeded, baseTime),
		rec("7-failed", 1, executor.RunFailed, baseTime.Add(-time.Hour)),
	}
	// A record put running, then ended: listed by its last status only.
	ended := rec("8-ended", 2, executor.RunRunning, baseTime.Add(2*time.Hour))
	for _, i := range []int{3, 0, 4, 1, 2} {
		putRun(t, s, running[i])
	}
	for _, r := range append(append([]executor.Record{ended}, interrupted...), others...) {
		putRun(t, s, r)
	}
	ended.Status, ended.EndedAt = executor.RunSucceeded, ended.StartedAt.Add(time.Minute)
	putRun(t, s, ended)
	others = append(others, ended)
	// A record put again under another graph key: listed once, with its
	// new key.
	running[3].GraphKey = keys[0]
	putRun(t, s, running[3])

	byStatus := func(status executor.RunStatus) []executor.Record {
		t.Helper()
		all, err := l.RunsByStatus(t.Context(), status)
		require.NoError(t, err, "RunsByStatus(%q)", status)
		var mine []executor.Record
		for _, r := range all {
			if strings.HasPrefix(r.ID, prefix+"-") {
				mine = append(mine, r)
			}
		}
		return mine
	}
	for _, tc := range []struct {
		status executor.RunStatus
		want   []executor.Record
	}{
		{executor.RunRunning, running},
		{executor.RunInterrupted, interrupted},
		{executor.RunSucceeded, []executor.Record{others[0], ended}},
		{executor.RunStatus(Unique(t, "no-such-status")), nil},
		// Exactly the status asked for: not by case, spaces or prefix, as
		// a collation or a LIKE would match them.
		{"RUNNING", nil},
		{"Interrupted", nil},
		{" running", nil},
		{"running ", nil},
		{"runn", nil},
		{"succeed", nil},
		{"", nil},
	} {
		got := byStatus(tc.status)
		require.Equal(t, ids(tc.want), ids(got), "RunsByStatus(%q): want its records of every graph, oldest first, by StartedAt then ID", tc.status)
		if d := diff(tc.want, got); d != "" {
			t.Errorf("RunsByStatus(%q) (-want +got):\n%s", tc.status, d)
		}
	}

	// The records are the caller's.
	got := byStatus(executor.RunSucceeded)
	got[0].Marks[0].ID, got[0].Failed[0] = "changed", "changed"
	requireRun(t, s, others[0])

	_, err := l.RunsByStatus(cancelled(t), executor.RunRunning)
	assert.ErrorIs(t, err, context.Canceled, "RunsByStatus with a cancelled context")
}

// testRunCancelledBy puts cancelled records with cancel codes (a host's,
// one of the executor's, and one of executor.MaxCancelCodeBytes) beside
// one that has none: GetRun, ListRuns
// and RunsByStatus (if the store has it) give each code back as put. A
// record replaced by one without a code (as a host might rewrite it)
// comes back without one, not with the old record's. A store that drops
// Record.CancelledBy, in any of its reads, leaves a host unable to tell
// the runs that its shutdown cancelled, to resume them, from those that
// a user cancelled.
func testRunCancelledBy(t *testing.T, s executor.RunStore) {
	key := Unique(t, "graph")
	rec := func(name, code string, started time.Time) executor.Record {
		r := record(Unique(t, name), key, started)
		r.Status, r.CancelledBy, r.Failed = executor.RunCancelled, code, nil
		r.Error = "executor: run cancelled: run \"" + r.ID + "\": host stopping"
		return r
	}
	want := []executor.Record{
		rec("shutdown", "acme:shutdown.v2_1-x", baseTime),
		rec("user", executor.CancelledByCancel, baseTime.Add(time.Second)),
		rec("none", "", baseTime.Add(2*time.Second)), // written before the field existed
		// The longest code a host may give (executor.CheckCancelCode).
		rec("longest", strings.Repeat("acme:", executor.MaxCancelCodeBytes/5)+strings.Repeat("z", executor.MaxCancelCodeBytes%5),
			baseTime.Add(3*time.Second)),
	}
	for _, r := range want {
		putRun(t, s, r)
		requireRun(t, s, r)
	}
	if d := diff(want, listRuns(t, s, key)); d != "" {
		t.Fatalf("ListRuns(%s) (-want +got):\n%s", short(key), d)
	}
	if l, ok := s.(executor.RunStatusLister); ok {
		all, err := l.RunsByStatus(t.Context(), executor.RunCancelled)
		require.NoError(t, err, "RunsByStatus(cancelled)")
		var got []executor.Record
		for _, r := range all {
			if r.GraphKey == key {
				got = append(got, r)
			}
		}
		if d := diff(want, got); d != "" {
			t.Fatalf("RunsByStatus(cancelled), the records of graph %s (-want +got):\n%s", short(key), d)
		}
	}
	again := want[0]
	again.CancelledBy = ""
	putRun(t, s, again)
	requireRun(t, s, again)
	again.CancelledBy = "lock-lost"
	putRun(t, s, again)
	requireRun(t, s, again)
}
