package pgstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/regengraph/regen/executor"
)

// RefPrefix starts every asset reference that a [Store] returns: a
// reference is RefPrefix followed by the asset's key.
const RefPrefix = "pg:"

// The largest asset a [Store] puts: Data, URL, Hash and Meta (as JSON)
// together, in bytes. A message of the Postgres protocol carries at most
// 1 GiB, and Put sends an asset, and Get receives it, in one. A pool
// whose DefaultQueryExecMode sends values as text
// (pgx.QueryExecModeSimpleProtocol, which PgBouncer in transaction mode
// needs, and pgx.QueryExecModeExec) sends Data as hex, two bytes for
// each, and the simple protocol as a literal, which Postgres reads into
// at most 512 MiB: such a pool takes MaxAssetTextBytes. Keep larger
// media elsewhere, and its address in the asset's URL.
const (
	// MaxAssetBytes is the limit on a pool that sends values in binary,
	// as pgx's default query mode does: 1 GiB less 1 MiB.
	MaxAssetBytes = 1<<30 - 1<<20
	// MaxAssetTextBytes is the limit on a pool that sends values as
	// text: 250 MiB.
	MaxAssetTextBytes = 250 << 20
	// MaxAssetMetaBytes is the limit on Meta alone, as the jsonb that
	// holds it takes it: 4 bytes, 8 a key and its value, and their
	// bytes, at most 256 MiB less one byte, the most a jsonb value
	// holds.
	MaxAssetMetaBytes = 1<<28 - 1
)

// AssetSizeError reports an asset that Put refused because it is larger
// than a message of the Postgres protocol carries: its key, its size
// and the limit of the pool's query mode. It wraps [ErrAssetTooLarge].
// The store returns it wrapped in executor.Permanent, so that the
// executor does not retry the call.
type AssetSizeError struct {
	// Key is the asset's key.
	Key string
	// Size is the bytes of its Data, URL, Hash and Meta (as JSON)
	// together.
	Size int
	// Max is the limit: [MaxAssetBytes], or [MaxAssetTextBytes] on a
	// pool that sends values as text; [MaxAssetMetaBytes] if Meta.
	Max int
	// Meta reports that Meta alone is too large: Size is then its
	// size as jsonb (see MaxAssetMetaBytes).
	Meta bool
}

func (e *AssetSizeError) Error() string {
	if e.Meta {
		return fmt.Sprintf("%v: asset %s: its Meta takes %d bytes as jsonb (4, 8 a key and its value, and their bytes): want at most %d, "+
			"which a jsonb value holds: keep larger metadata in Data, or elsewhere",
			ErrAssetTooLarge, quote(e.Key), e.Size, e.Max)
	}
	return fmt.Sprintf("%v: asset %s takes %d bytes (Data, URL, Hash and Meta): want at most %d, "+
		"which a Postgres message carries in the pool's query mode: keep larger media elsewhere, and its address in the URL",
		ErrAssetTooLarge, quote(e.Key), e.Size, e.Max)
}

// Unwrap returns [ErrAssetTooLarge].
func (e *AssetSizeError) Unwrap() error { return ErrAssetTooLarge }

// maxAssetBytes returns the largest asset that the pool's query mode
// carries (see MaxAssetBytes).
func maxAssetBytes(pool *pgxpool.Pool) int {
	switch pool.Config().ConnConfig.DefaultQueryExecMode {
	case pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec:
		return MaxAssetTextBytes
	}
	return MaxAssetBytes
}

// Put stores a under key in the assets table, replacing any asset already
// there, and returns its reference, [RefPrefix] + key. It is one upsert,
// one round trip; Data goes as bytea, Meta as jsonb. Put does not keep a,
// so the caller may reuse its Data and Meta. A key longer than
// [MaxAssetKeyBytes], or not valid UTF-8 without NUL, gives an error
// wrapping a [*KeyError] (in executor.Permanent), before any SQL; a URL,
// Hash, or Meta key or value that is not valid UTF-8 without NUL, a
// [*TextError] so wrapped; an asset larger than [MaxAssetBytes] (or
// [MaxAssetTextBytes] on a pool that sends values as text), or whose
// Meta is larger than [MaxAssetMetaBytes], an [*AssetSizeError] so
// wrapped, before any SQL. It returns ctx.Err(),
// with no effect, if ctx is done.
func (s *Store) Put(ctx context.Context, key string, a executor.Asset) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if err := checkKey(fieldAssetKey, key, MaxAssetKeyBytes); err != nil {
		return "", err
	}
	if err := checkAsset(key, a); err != nil {
		return "", err
	}
	var meta *string // NULL for no metadata
	size := len(a.Data) + len(a.URL) + len(a.Hash)
	if len(a.Meta) > 0 {
		// Meta goes as jsonb, which holds less than a message carries:
		// its size there, before it is marshalled.
		jsonb := 4 + 8*len(a.Meta)
		for k, v := range a.Meta {
			jsonb += len(k) + len(v)
		}
		if jsonb > MaxAssetMetaBytes {
			// Sent, it would fail in the server, at every try.
			return "", executor.Permanent(&AssetSizeError{Key: key, Size: jsonb, Max: MaxAssetMetaBytes, Meta: true})
		}
		b, err := json.Marshal(a.Meta)
		if err != nil { // a map[string]string always marshals
			return "", fmt.Errorf("pgstore: put asset %s: meta: %w", quote(key), err)
		}
		m := string(b)
		meta = &m
		size += len(m)
	}
	if max := s.maxAsset; size > max {
		// Sent, it would fail in the driver or the server, at every try.
		return "", executor.Permanent(&AssetSizeError{Key: key, Size: size, Max: max})
	}
	if err := s.exec(ctx, s.q.putAsset, key, a.Data, a.URL, a.Hash, int64(a.Length), meta); err != nil {
		return "", s.wrapErr(ctx, err, "put asset %s", quote(key))
	}
	return RefPrefix + key, nil
}

// Get returns the asset ref points to, or an error wrapping
// [executor.ErrNotFound] for any reference the store does not hold,
// malformed ones included. The returned Data and Meta are the caller's.
// It costs one round trip. It returns ctx.Err() if ctx is done.
func (s *Store) Get(ctx context.Context, ref string) (executor.Asset, error) {
	if err := ctx.Err(); err != nil {
		return executor.Asset{}, err
	}
	key, ok := refKey(ref)
	if !ok {
		return executor.Asset{}, fmt.Errorf("get asset %q: %w", ref, executor.ErrNotFound)
	}
	var (
		a      executor.Asset
		length int64
		meta   *string
	)
	err := s.pool.QueryRow(ctx, s.q.getAsset, key).Scan(&a.Data, &a.URL, &a.Hash, &length, &meta)
	if errors.Is(err, pgx.ErrNoRows) {
		return executor.Asset{}, fmt.Errorf("get asset %q: %w", ref, executor.ErrNotFound)
	}
	if err != nil {
		return executor.Asset{}, s.wrapErr(ctx, err, "get asset %s", quote(ref))
	}
	return finishAsset(ref, a, length, meta)
}

// finishAsset sets a's Length and Meta from their columns.
func finishAsset(ref string, a executor.Asset, length int64, meta *string) (executor.Asset, error) {
	a.Length = time.Duration(length)
	if meta != nil {
		if err := json.Unmarshal([]byte(*meta), &a.Meta); err != nil {
			return executor.Asset{}, fmt.Errorf("pgstore: get asset %s: meta is not a JSON object of strings: %w", quote(ref), err)
		}
	}
	return a, nil
}

// GetMany returns the assets refs point to, in order, as Get does, in one
// round trip whatever their number: the executor reads a node's
// dependencies' assets with it. If one is missing, malformed references
// included, it returns an error wrapping [executor.ErrNotFound] that
// names it. See [executor.AssetBatchGetter]. The returned Data and Meta
// are the caller's, each its own even where refs repeat. It returns
// ctx.Err() if ctx is done.
func (s *Store) GetMany(ctx context.Context, refs []string) ([]executor.Asset, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(refs))
	seen := make(map[string]bool, len(refs))
	for _, ref := range refs {
		key, ok := refKey(ref)
		if !ok {
			return nil, fmt.Errorf("get asset %q: %w", ref, executor.ErrNotFound)
		}
		if !seen[key] {
			seen[key] = true
			keys = append(keys, key)
		}
	}
	out := make([]executor.Asset, len(refs))
	if len(keys) == 0 {
		return out, nil
	}
	rows, err := s.pool.Query(ctx, s.q.getAssets, keys)
	if err != nil {
		return nil, s.wrapErr(ctx, err, "get %d assets", len(keys))
	}
	found := make(map[string]executor.Asset, len(keys))
	var (
		key     string
		a       executor.Asset
		length  int64
		meta    *string
		metaErr error
	)
	_, err = pgx.ForEachRow(rows, []any{&key, &a.Data, &a.URL, &a.Hash, &length, &meta}, func() error {
		found[key], metaErr = finishAsset(RefPrefix+key, a, length, meta)
		a = executor.Asset{} // the next row scans into fresh slices
		return metaErr
	})
	if metaErr != nil {
		return nil, metaErr
	}
	if err != nil {
		return nil, s.wrapErr(ctx, err, "get %d assets", len(keys))
	}
	used := make(map[string]bool, len(keys))
	for i, ref := range refs {
		key, _ := refKey(ref)
		a, ok := found[key]
		if !ok {
			return nil, fmt.Errorf("get asset %q: %w", ref, executor.ErrNotFound)
		}
		if used[key] { // a repeated ref gets its own Data and Meta
			a.Data, a.Meta = bytes.Clone(a.Data), maps.Clone(a.Meta)
		}
		used[key] = true
		out[i] = a
	}
	return out, nil
}

// Exists reports whether ref points to an asset in the store. Any other
// reference, "" and malformed ones included, gives false and no error,
// without a round trip when the reference cannot be one of the store's.
// It returns ctx.Err() if ctx is done.
func (s *Store) Exists(ctx context.Context, ref string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	key, ok := refKey(ref)
	if !ok {
		return false, nil
	}
	var exists bool
	if err := s.pool.QueryRow(ctx, s.q.assetExists, key).Scan(&exists); err != nil {
		return false, s.wrapErr(ctx, err, "asset %s exists", quote(ref))
	}
	return exists, nil
}

// Missing returns the references among refs that point to no asset in
// the store, each once, in one round trip whatever their number: the
// executor's check of clean nodes' assets at the start of a run. A
// reference that cannot be one of the store's is missing without asking
// the server. See [executor.AssetChecker]. It returns ctx.Err() if ctx
// is done.
func (s *Store) Missing(ctx context.Context, refs []string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var (
		missing []string
		keys    []string
		seen    = map[string]bool{}
	)
	for _, ref := range refs {
		if seen[ref] {
			continue
		}
		seen[ref] = true
		if key, ok := refKey(ref); ok {
			keys = append(keys, key)
		} else {
			missing = append(missing, ref)
		}
	}
	if len(keys) == 0 {
		return missing, nil
	}
	rows, err := s.pool.Query(ctx, s.q.missingAssets, keys)
	if err != nil {
		return nil, s.wrapErr(ctx, err, "check %d assets", len(keys))
	}
	gone, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, s.wrapErr(ctx, err, "check %d assets", len(keys))
	}
	for _, key := range gone {
		missing = append(missing, RefPrefix+key)
	}
	return missing, nil
}

// refKey returns the key of a reference, and false if ref is not one the
// store can have returned.
func refKey(ref string) (string, bool) {
	key, ok := strings.CutPrefix(ref, RefPrefix)
	return key, ok && fits(key, MaxAssetKeyBytes)
}
