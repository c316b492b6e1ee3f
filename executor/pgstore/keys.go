package pgstore

import (
	"fmt"
	"maps"
	"slices"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/internal/pgschema"
)

// The longest keys and IDs a [Store] takes, in bytes (of UTF-8, as Go
// strings hold them and a UTF8 database stores them). Postgres refuses a
// btree index entry longer than 2,704 bytes (with its default 8 kB
// pages), and the store indexes graph keys, node IDs, asset keys and run
// IDs with btrees: graphs (graph_key), node_states (graph_key, node_id),
// assets (key), runs (id) and runs (graph_key, started_at, id). An index
// entry holds a header of 8 bytes (16 with a NULL), and each text value
// with a length word of 4 bytes, aligned: (graph_key, node_id) at these
// limits takes at most 2,416 bytes, (graph_key, started_at, id) 2,440, and
// an asset key 2,616, however incompressible the keys. (Postgres
// compresses a long entry when it can, which only makes it shorter.)
//
// A write with a longer key (Commit, Put, PutRun) is refused with a
// [*KeyError], before any SQL, as is one with a key that is not valid
// UTF-8 without NUL, rather than failing in Postgres halfway
// through. A lookup with a longer key (Load, Get, Exists, GetRun,
// ListRuns, DeleteGraph) finds nothing, as for a key never stored, since
// such a key never was. The executor's asset keys, graph key + "/" + node
// ID + "/" + content hash, stay within MaxAssetKeyBytes when the graph key
// and the node ID are within theirs and the hash has at most 198 bytes:
// the executor's own, when a generator gives none, is a SHA-256 in hex, 64
// bytes.
const (
	// MaxGraphKeyBytes is the longest graph key, of a commit or of a run
	// record.
	MaxGraphKeyBytes = 1200
	// MaxNodeIDBytes is the longest node ID of a commit.
	MaxNodeIDBytes = 1200
	// MaxRunIDBytes is the longest run ID.
	MaxRunIDBytes = 1200
	// MaxAssetKeyBytes is the longest asset key; references are
	// [RefPrefix] and such a key.
	MaxAssetKeyBytes = 2600
)

// The fields a [KeyError] names.
const (
	fieldGraphKey = "graph key"
	fieldNodeID   = "node ID"
	fieldAssetKey = "asset key"
	fieldRunID    = "run ID"
	fieldResumes  = "resumed run ID" // a run record's Resumes
)

// KeyError reports a key or ID that a write refused because it is longer
// than the store can index (it then wraps [ErrKeyTooLong]), or because it
// is not valid UTF-8 without NUL, which Postgres text cannot hold (it then
// wraps [ErrKeyNotText]), or a graph key that [Store.LockGraph] or
// [Store.TryLockGraph] refused because it is empty, as the executor
// refuses an empty executor.RunRequest.GraphKey. The store returns it
// wrapped in executor.Permanent, so that the executor does not retry the
// call; errors.As finds it through that.
//
// A KeyError of a key that a request names (a graph key, a node ID of its
// graph, a run ID or a resumed run ID: every Field but "asset key") wraps
// executor.ErrInvalidRequest too, as the executor's own refusals of bad
// input do: the same request is refused again, so a host that answers
// ErrInvalidRequest 400 answers so a RunRequest whose GraphKey or RunID is
// longer than [MaxGraphKeyBytes] or [MaxRunIDBytes] (executor.Run and
// Start return the KeyError of the run's record, before any state is
// written or any node generated). An asset key's does not: the executor
// makes it of the graph key, the node ID and the hash a generator gives,
// so one too long is the generator's fault, not the request's.
type KeyError struct {
	// Field is what the key is: "graph key", "node ID", "asset key",
	// "run ID", or "resumed run ID" (a run record's Resumes, which names
	// a run).
	Field string
	// Key is the key given.
	Key string
	// Max is the limit for Field, in bytes: [MaxGraphKeyBytes],
	// [MaxNodeIDBytes], [MaxAssetKeyBytes] or [MaxRunIDBytes] (for a
	// resumed run ID too).
	Max int
	// NotText says that the key is refused for not being valid UTF-8
	// without NUL, rather than for its length.
	NotText bool
	// Empty says that the key is refused for being empty: a graph key
	// given to LockGraph, TryLockGraph or GraphLocked.
	Empty bool
}

func (e *KeyError) Error() string {
	if e.Empty {
		return fmt.Sprintf("%v: %s is empty: want 1 to %d bytes of valid UTF-8 without NUL, as executor.RunRequest.GraphKey takes",
			executor.ErrInvalidRequest, e.Field, e.Max)
	}
	if e.NotText {
		return fmt.Sprintf("%v: %s %.64q is not valid UTF-8 without NUL: Postgres text holds only that",
			ErrKeyNotText, e.Field, e.Key)
	}
	why := "Postgres indexes it"
	if e.Field == fieldResumes {
		why = "it names a run, and no run ID is longer"
	}
	return fmt.Sprintf("%v: %s %.32q... is %d bytes long: want at most %d bytes (%s)",
		ErrKeyTooLong, e.Field, e.Key, len(e.Key), e.Max, why)
}

// Unwrap returns executor.ErrInvalidRequest alone if Empty is set;
// otherwise [ErrKeyNotText] if NotText is, else [ErrKeyTooLong], and
// executor.ErrInvalidRequest with it unless Field is "asset key".
func (e *KeyError) Unwrap() []error {
	var err error
	switch {
	case e.Empty:
		return []error{executor.ErrInvalidRequest}
	case e.NotText:
		err = ErrKeyNotText
	default:
		err = ErrKeyTooLong
	}
	if e.Field == fieldAssetKey {
		return []error{err}
	}
	return []error{err, executor.ErrInvalidRequest}
}

// quote quotes a key, ID or reference for an error, cut after 64 bytes
// with its length (see pgschema.QuoteKey).
func quote(s string) string { return pgschema.QuoteKey(s) }

// checkKey returns a [*KeyError], wrapped in executor.Permanent, if key
// is longer than max bytes, or is not valid UTF-8 without NUL.
func checkKey(field, key string, max int) error {
	switch {
	case len(key) > max:
		// No retry can make it fit: the executor does not call again.
		return executor.Permanent(&KeyError{Field: field, Key: key, Max: max})
	case !pgschema.Storable(key):
		// Postgres refuses it (SQLSTATE 22021) however often it is sent.
		return executor.Permanent(&KeyError{Field: field, Key: key, Max: max, NotText: true})
	}
	return nil
}

// fits reports whether key can be one the store holds under a field whose
// limit is max: storable and no longer than max. A lookup of a key that
// does not fit finds nothing, without asking the server.
func fits(key string, max int) bool {
	return len(key) <= max && pgschema.Storable(key)
}

// TextError reports a text field of a write, not a key, that is not valid
// UTF-8 without NUL, which Postgres text and jsonb cannot hold: Commit,
// Put and PutRun refuse it before any SQL, and write nothing. (The
// executor cleans the error texts it records, and refuses such a
// RunRequest at the door; a host that calls the store itself may not.) It
// wraps [ErrNotText]. The store returns it wrapped in executor.Permanent,
// as a [*KeyError], so that the executor does not retry the call.
type TextError struct {
	// Field names the field: "node \"n\" LastError", "run \"r\" Error",
	// "asset \"k\" Meta[\"voice\"]" and so on.
	Field string
	// Value is the text given.
	Value string
}

func (e *TextError) Error() string {
	return fmt.Sprintf("%v: %s %.64q: Postgres text holds only that", ErrNotText, e.Field, e.Value)
}

// Unwrap returns [ErrNotText].
func (e *TextError) Unwrap() error { return ErrNotText }

// checkText returns a [*TextError] for field, wrapped in
// executor.Permanent, if s is not valid UTF-8 without NUL.
func checkText(field func() string, s string) error {
	if pgschema.Storable(s) {
		return nil
	}
	return executor.Permanent(&TextError{Field: field(), Value: s})
}

// checkState returns the error of checkText for the first text field of
// node id's state that Postgres cannot hold, or nil.
func checkState(id string, st dirty.State) error {
	for _, f := range [...]struct{ name, value string }{
		{"InputHash", st.InputHash}, {"OutputHash", st.OutputHash}, {"AssetRef", st.AssetRef},
		{"LastError", st.LastError},
	} {
		if err := checkText(func() string { return fmt.Sprintf("node %s %s", quote(id), f.name) }, f.value); err != nil {
			return err
		}
	}
	return nil
}

// checkRecord returns the error of checkKey for r's Resumes, which names
// a run as an ID does, or else the error of checkText for the first text
// field of r, other than its ID and graph key, that Postgres cannot hold,
// or nil.
func checkRecord(r executor.Record) error {
	if err := checkKey(fieldResumes, r.Resumes, MaxRunIDBytes); err != nil {
		return err
	}
	field := func(name string) func() string {
		return func() string { return fmt.Sprintf("run %s %s", quote(r.ID), name) }
	}
	for _, f := range [...]struct{ name, value string }{
		{"Graph", r.Graph}, {"TriggeredBy", r.TriggeredBy}, {"Reason", r.Reason}, {"Status", string(r.Status)},
		{"Error", r.Error}, {"CancelledBy", r.CancelledBy},
	} {
		if err := checkText(field(f.name), f.value); err != nil {
			return err
		}
	}
	for i, id := range r.Failed {
		if err := checkText(field(fmt.Sprintf("Failed[%d]", i)), id); err != nil {
			return err
		}
	}
	for i, m := range r.Marks {
		if err := checkText(field(fmt.Sprintf("Marks[%d].ID", i)), m.ID); err != nil {
			return err
		}
	}
	return nil
}

// checkAsset returns the error of checkText for the first text field of
// the asset to put under key that Postgres cannot hold, or nil: its URL,
// its Hash, and its Meta's keys and values, in key order.
func checkAsset(key string, a executor.Asset) error {
	field := func(name string) func() string {
		return func() string { return fmt.Sprintf("asset %s %s", quote(key), name) }
	}
	if err := checkText(field("URL"), a.URL); err != nil {
		return err
	}
	if err := checkText(field("Hash"), a.Hash); err != nil {
		return err
	}
	ok := true
	for k, v := range a.Meta {
		ok = ok && pgschema.Storable(k) && pgschema.Storable(v)
	}
	if ok {
		return nil
	}
	for _, k := range slices.Sorted(maps.Keys(a.Meta)) { // the first in key order, as messages are deterministic
		if err := checkText(field(fmt.Sprintf("Meta key %q", k)), k); err != nil {
			return err
		}
		if err := checkText(field(fmt.Sprintf("Meta[%q]", k)), a.Meta[k]); err != nil {
			return err
		}
	}
	return nil
}
