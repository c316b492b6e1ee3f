// Package storetest is the conformance kit for the executor's stores: it
// checks that a host's [executor.StateStore], [executor.AssetStore] and
// [executor.RunStore] keep the contract the executor relies on. The
// in-memory stores of package executor pass it, and so must every other
// implementation (a SQL one, a host's own).
//
// # Usage
//
//	func TestStores(t *testing.T) {
//		storetest.Run(t, storetest.Factory{
//			States: func(t *testing.T) executor.StateStore { return executor.NewMemoryStates() },
//			Assets: func(t *testing.T) executor.AssetStore { return executor.NewMemoryAssets() },
//			Runs:   func(t *testing.T) executor.RunStore { return executor.NewMemoryRuns() },
//		})
//	}
//
// [StateStore], [AssetStore] and [RunStore] check one store each.
//
// A store that also deletes what the executor leaves behind, with the
// retention methods of executor.MemoryStore and pgstore.Store
// (DeleteGraph, PruneAssets, PruneRuns), is a [Retainer]: set
// Factory.Retainer, or call [Retention], to check those too. Unlike the
// other checks, they need a store of their own for each subtest, since
// they prune the whole store:
//
//	storetest.Run(t, storetest.Factory{
//		...
//		Retainer: func(t *testing.T) storetest.Retainer { return executor.NewMemoryStore() },
//	})
//
// # What it checks
//
// State stores:
//   - a graph never committed loads at version 0 with no states;
//   - each commit bumps the version by one, an empty commit too, and an
//     empty commit at a stale version conflicts as any other;
//   - every field of [dirty.State] and every status round-trip, and a
//     commit changes only the nodes it names, each to its new state whole
//     (empty fields too, not merged with the old state's);
//   - a time finer than a microsecond comes back whole or truncated to
//     the microsecond, never rounded;
//   - text of every kind (line breaks, control characters, emoji, trailing
//     spaces), and a LastError of [executor.MaxEventText] bytes, as the
//     executor records, come back byte for byte;
//   - a commit at a stale version fails with a [*executor.ConflictError]
//     (wrapping [executor.ErrConflict]) that carries the expected and the
//     actual versions, returns version 0, and applies nothing;
//   - later changes to the same node in one commit win;
//   - Commit leaves the caller's changes as they were, in their order,
//     on success and on a conflict, and does not keep them: the executor
//     reads and reuses the slice after Commit; nor does it write into
//     them while it runs, though it puts them back (with -race only);
//   - graphs are independent, and keys and node IDs are compared exactly
//     (case, spaces, Unicode normalisation);
//   - long graph keys and node IDs (1,500 to 10,000 bytes) are kept
//     exactly, or refused: the commit fails with an error wrapped in
//     [executor.Permanent], returns version 0 and applies nothing (not
//     even the changes before the long ID), and a Load of the refused key
//     finds a graph never committed;
//   - a loaded snapshot is the caller's: later commits and the caller's
//     own changes to it leave the store and each other alone;
//   - a Load while another goroutine commits returns one version's
//     states with that version's number, never a mix;
//   - of concurrent commits at the same version, exactly one wins, the
//     others conflict, and the graph holds exactly the winner's changes;
//   - a done context gives an error and version 0, and has no effect.
//
// Asset stores: every field round-trips, binary and 1 MiB data, and a
// Length of hours to the microsecond, included,
// and text data with white space at its ends;
// Exists; an unknown reference is not found, nor is one made from a real
// reference (with a suffix, cut short, in upper case, or the store's
// prefix with another key); distinct keys give distinct references, and
// keys are compared exactly; long keys are kept apart, or refused with a
// permanent error, and then a reference to one finds nothing; a
// reference that reads found missing before its Put is found after it
// (when the store's references are a prefix and the key, so that the kit
// knows one before its Put); Put again under the same key succeeds, and
// with other content replaces the asset, for GetMany too, and one
// without Data nor Meta leaves none of the old asset's; the caller may reuse Data and
// Meta after Put, and write into the Meta that Get returns; concurrent
// use; a done context. A store that is an
// [executor.AssetChecker] or an [executor.AssetBatchGetter] is checked
// against Exists and Get, and leaves the caller's refs as they were, in
// their order, not written into even while it runs (with -race only):
// Missing lists each reference that Exists reports false once, among
// thousands in one call; GetMany returns what
// Get does, in the order of the references, among hundreds in one call
// and after a Put replaced one, and fails with [executor.ErrNotFound],
// naming it, at a reference that points to nothing.
//
// Run stores: every field of [executor.Record] round-trips, every status
// and every mark reason, Graph (the
// run's graph fingerprint, which Resume checks), Resumes (the run that
// the run finishes, by which a host finds the runs resumed), CancelledBy
// (a cancelled run's cancel code, by which a host finds the runs its
// shutdown cancelled, of up to executor.MaxCancelCodeBytes: in GetRun,
// ListRuns and RunsByStatus alike, and
// emptied when a record without one replaces it) and zero and
// finer-than-microsecond times included, Failed in its order (the
// Report's, not the text's), and text of every kind with an Error of
// MaxEventText bytes; PutRun replaces a record with
// the same ID, every field (an empty one too, not kept from the old
// record), one of another graph included, which then
// moves from the one graph's list to the other's, and GetRun and ListRuns
// meanwhile find the old record or the new one, never neither nor a
// record half written; an unknown ID is not found; IDs are
// compared exactly (case, spaces, Unicode normalisation); long IDs (a
// record's own, and its Resumes) and graph keys are
// kept exactly, or refused with a permanent error, and then GetRun and
// ListRuns of one find nothing; ListRuns filters by graph (keys compared
// exactly: case, spaces, prefix, Unicode normalisation) and
// orders by start time (a zero one first, and a replaced record's new
// one), then ID byte by byte (not by a locale's collation); an unknown graph lists nothing; records are copied in and out; concurrent use; a done
// context. A RunStore that is also an [executor.RunStatusLister] has
// RunsByStatus checked: it lists the records of a status (exactly that
// one: not by case, spaces or prefix) across graph keys, each once under
// its last graph key and by its last status put, in the order of
// ListRuns (start time, a zero one first, then ID), every field, the
// caller's own, and a done
// context gives an error.
//
// Retainers:
//   - DeleteGraph removes the graph's states and run records (which
//     neither GetRun, ListRuns nor, for an [executor.RunStatusLister],
//     RunsByStatus then finds) and nothing of another graph, even one
//     whose key it prefixes, or matches as a LIKE pattern or but for
//     case; it reports whether there was anything to remove, and a graph
//     with only run records has them removed;
//   - the deleted graph loads with no states at a version after every one
//     it had, and is re-created by a commit at that version; a commit at
//     any version it had before the deletion conflicts, however far the
//     re-created graph got; a graph never committed stays at version 0;
//   - a DeleteGraph while a run commits is one step, as a commit is: the
//     graph then has no states and a version above every one a commit
//     returned, and the run's next commit conflicts; a Load meanwhile
//     finds the graph whole, or deleted, never some of its states;
//   - PruneAssets(0) deletes exactly the assets that no state of any graph
//     refers to, those that a commit stopped referring to and those of a
//     deleted graph included, and returns their number: a reference keeps
//     its asset whatever its state's status, and whatever its graph (an
//     asset put under one graph's key that only another graph refers to
//     outlives the first), and an asset that several states refer to
//     stays while one does, though a commit stopped another state
//     referring to it, or a DeleteGraph deleted another graph's states
//     that did; Exists and Get, and Missing and GetMany when
//     the store has them, see the assets a prune deleted, though they
//     read them before it, and find one put again under its key after;
//   - PruneAssets while a run puts old assets again under their keys (as
//     a node that makes the same output again does: keys end with the
//     content hash) and commits states that refer to them deletes none
//     of them: Get of each state's AssetRef finds its asset, though the
//     run puts no asset again after its commit. The race is
//     made likely, not certain: ten rounds on the fake clock of a
//     testing/synctest bubble, or, for a store that reads another clock,
//     one round in real time, which waits 1.5 s (skipped with -short);
//   - a Put under a key already used restarts the asset's age, though
//     the asset is the same as the one there (keys end with the content
//     hash, so it always is): PruneAssets(time.Hour) keeps an asset put
//     2 h before and put again just now (on the fake clock of a
//     testing/synctest bubble, or, for a store that reads another clock,
//     in real time with the release's check below);
//   - PruneAssets(time.Hour) keeps what was just put, or just released;
//     PruneAssets deletes an asset put, or released by a commit, more than
//     the age ago, and keeps one exactly the age old (checked as for
//     PruneRuns below);
//   - a DeleteGraph releases the assets its states referred to (above),
//     but its restarting their age is neither required nor refused: the
//     memory stores and pgstore count it from the last Put or commit's
//     release, and a store may count it from the DeleteGraph too,
//     keeping those assets longer;
//   - a commit that releases an asset restarts its age, one that leaves
//     the node with no reference (as Executor.Forget commits) too:
//     PruneAssets of a second keeps an asset put 1.5 s before but
//     released just now, or put again just now, and deletes one put as
//     long ago that no state referred to (a check in real time, skipped
//     with -short);
//   - PruneRuns deletes the records that ended, or that never ended but
//     started, more than the age ago (GetRun and RunsByStatus find them
//     no more than ListRuns does), and keeps a record with no time,
//     every record that says running, however old (a long run's, or a
//     crashed one's that a recovery resumes; a failure names the rule),
//     and one exactly the age old (checked on the fake clock of a
//     testing/synctest bubble, which stands still: a store that reads
//     another clock, a database's, is not checked there);
//   - a negative age is an error, and a done context gives an error with
//     no effect.
//
// The kit checks ages at 0, at an hour, exactly at the age on the fake
// clock of a bubble, and once in real time for the release's check,
// which waits. The ages in between are for the store's own tests; so are,
// for a store that reads another clock than the process's, the ages
// exactly at the boundary.
//
// # Writing a store
//
// A checklist of what the executor needs and the kit cannot all check;
// the interface docs of package executor say each precisely:
//   - durability: once Commit, Put or PutRun returned nil, what it stored
//     survives a crash and a restart of a store that outlives its
//     process; a graph's version never goes back, nor is a number used
//     twice, a deleted graph's included (keep a tombstone);
//   - keys: graph keys and run IDs are the host's, any valid UTF-8
//     without NUL, of any length (the default run ID is 16 hex digits);
//     node IDs are at most 147 bytes (a kind name of up to 128, and
//     ":segment[<i>]"), or executor.GraphStateID; asset keys are the graph
//     key, "/", the node ID, "/" and the asset's Hash (the executor's is
//     64 hex digits; a generator's may be longer). A store may document
//     a limit (pgstore: 1,200 bytes for graph keys, node IDs and run IDs,
//     2,600 for asset keys) and refuse longer ones, with an error wrapped
//     in executor.Permanent, but never cut them;
//   - asset references live on in node states: one stays valid across
//     restarts while its asset is kept, and may be opaque (the executor
//     never parses it); Put again under a key replaces the asset for
//     every reference to it;
//   - every method is safe for concurrent use, and PruneAssets runs
//     while runs Put and Commit: an asset renewed by a Put, or referred
//     to by a commit, after the prune found it old must stay; a Put
//     under a key already used renews the asset though it is the same
//     as the one there, as it always is (skip no Put, or restart the
//     age all the same);
//   - DeleteGraph reports false for a graph with a version but no states
//     nor run records, and need not restart its assets' age.
//
// # Requirements on the store
//
// newStore is called once per subtest; it should register any cleanup
// with t.Cleanup. The check of a run record exactly the age old calls
// PutRun, PruneRuns and ListRuns inside a testing/synctest bubble, and
// that of an asset calls Put, Commit, PruneAssets and Exists in one, as
// does that of a Put again: a goroutine that a store starts in those
// calls must end with them. So
// does the check of a prune while a run puts, once a first prune there
// showed that the store reads the bubble's clock, with Put and Commit in
// one goroutine while PruneAssets runs in another: a store should not
// open a connection there that it uses outside the bubble later (a pgx
// pool that grows in a bubble makes the runtime abort the test binary).
// The check first calls Load from two goroutines at once, outside the
// bubble, so that a pool opens its second connection there; a pool that
// drops idle connections at once, or opens one only when calls overlap
// (these may not), should keep two open (pgxpool's MinConns). Every
// subtest uses graph keys, asset keys and run IDs unique to it and to the
// process, so stores may share one database with each other, with earlier
// runs and with other tests.
//
// Times (State.UpdatedAt, Record.StartedAt and EndedAt) are compared as
// instants with [time.Time.Equal]: a store may drop the location and the
// monotonic clock reading, but must keep microseconds and return a zero
// time as the zero time. It may drop what is finer than a microsecond by
// truncation, as time.Time.Truncate(time.Microsecond) does, but not by
// rounding. Durations (Asset.Length) must keep microseconds too. Nil and empty slices and maps are equal; a snapshot of a graph
// never committed may have nil States. Record.Marks keep their order.
//
// Keys, IDs and references are byte strings compared exactly: no case
// folding, no trimming. The kit's keys, IDs and references are valid
// UTF-8 of at most 200 bytes, but for those of the LongKeys checks, which a
// store may refuse as the contract allows, and for the malformed asset
// references it looks up (never puts); its strings hold no NUL byte (which a
// Postgres text column refuses); asset Data holds every byte value.
//
// Put under a key already used must succeed: the executor puts again after a
// crash between Put and Commit. It replaces the asset under that key.
//
// An unknown asset reference, whatever its form (the empty string, a
// string the store never returned, one that differs from a returned
// reference by a byte, or one that is not valid UTF-8, holds a NUL byte or
// is 10,000 bytes long), is not found: Get returns an error wrapping
// [executor.ErrNotFound] and Exists returns false and no error.
//
// With a done context every method returns an error wrapping
// [context.Canceled]. The kit checks that such a Commit or PutRun has no
// effect, and that such a Put under a key already used leaves the asset
// there; it cannot check a Put under a new key, whose reference it does
// not know.
//
// The kit runs in about two seconds against the memory stores, most of
// them the 1.5 s that the release's check waits (well under a second
// with -short, which skips it), and is meant for go test -race.
package storetest
