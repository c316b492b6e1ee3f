package pgstore

import (
	"fmt"

	"github.com/regengraph/regen/executor"
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
)

// KeyError reports a key or ID that a write refused because it is longer
// than the store can index (it then wraps [ErrKeyTooLong]), or because it
// is not valid UTF-8 without NUL, which Postgres text cannot hold (it then
// wraps [ErrKeyNotText]). The store returns it wrapped in
// executor.Permanent, so that the executor does not retry the call;
// errors.As finds it through that.
type KeyError struct {
	// Field is what the key is: "graph key", "node ID", "asset key" or
	// "run ID".
	Field string
	// Key is the key given.
	Key string
	// Max is the limit for Field, in bytes: [MaxGraphKeyBytes],
	// [MaxNodeIDBytes], [MaxAssetKeyBytes] or [MaxRunIDBytes].
	Max int
	// NotText says that the key is refused for not being valid UTF-8
	// without NUL, rather than for its length.
	NotText bool
}

func (e *KeyError) Error() string {
	if e.NotText {
		return fmt.Sprintf("%v: %s %.64q is not valid UTF-8 without NUL: Postgres text holds only that",
			ErrKeyNotText, e.Field, e.Key)
	}
	return fmt.Sprintf("%v: %s %.32q... is %d bytes long: want at most %d bytes (Postgres indexes it)",
		ErrKeyTooLong, e.Field, e.Key, len(e.Key), e.Max)
}

// Unwrap returns [ErrKeyNotText] if NotText is set, else [ErrKeyTooLong].
func (e *KeyError) Unwrap() error {
	if e.NotText {
		return ErrKeyNotText
	}
	return ErrKeyTooLong
}

// checkKey returns a [*KeyError], wrapped in executor.Permanent, if key
// is longer than max bytes, or is not valid UTF-8 without NUL.
func checkKey(field, key string, max int) error {
	switch {
	case len(key) > max:
		// No retry can make it fit: the executor does not call again.
		return executor.Permanent(&KeyError{Field: field, Key: key, Max: max})
	case !storable(key):
		// Postgres refuses it (SQLSTATE 22021) however often it is sent.
		return executor.Permanent(&KeyError{Field: field, Key: key, Max: max, NotText: true})
	}
	return nil
}

// fits reports whether key can be one the store holds under a field whose
// limit is max: storable and no longer than max. A lookup of a key that
// does not fit finds nothing, without asking the server.
func fits(key string, max int) bool {
	return len(key) <= max && storable(key)
}
