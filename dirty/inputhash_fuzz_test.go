package dirty_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"testing"

	"github.com/regengraph/regen/dirty"
)

// FuzzInputHash hashes any revision and list of dependency hashes, short
// or long (the encoding is built on the stack up to 512 bytes, on the
// heap beyond), and checks InputHash against the encoding its doc and
// TestInputHash pin, computed here from scratch: SHA-256 of
// "regen-input-v1", the revision as 8 big-endian bytes, and each hash as
// an 8-byte big-endian length and its bytes. AppendInputHash appends the
// same text to any prefix, and leaves the prefix as it was. The list is
// the fuzzer's bytes split at NUL bytes after the first, whose low bit
// says whether there is a list at all.
func FuzzInputHash(f *testing.F) {
	f.Add(int64(0), []byte{}, []byte("p"))
	f.Add(int64(7), []byte("\x01ab\x00c"), []byte{})
	f.Add(int64(-1), []byte("\x01\x00\x00"), []byte("prefix"))
	f.Add(int64(1<<62), append([]byte{1}, bytes.Repeat([]byte("0123456789abcdef"), 40)...), []byte("x"))
	f.Add(int64(3), append([]byte{1}, bytes.Repeat([]byte("h\x00"), 300)...), []byte{})
	f.Fuzz(func(t *testing.T, rev int64, list, prefix []byte) {
		var deps []string
		if len(list) > 0 && list[0]&1 == 1 {
			for _, d := range bytes.Split(list[1:], []byte{0}) {
				deps = append(deps, string(d))
			}
		}
		enc := []byte("regen-input-v1")
		enc = binary.BigEndian.AppendUint64(enc, uint64(rev))
		for _, d := range deps {
			enc = binary.BigEndian.AppendUint64(enc, uint64(len(d)))
			enc = append(enc, d...)
		}
		sum := sha256.Sum256(enc)
		want := hex.EncodeToString(sum[:])
		if got := dirty.InputHash(rev, deps); got != want {
			t.Fatalf("InputHash(%d, %q) = %s, want %s", rev, deps, got, want)
		}
		b := bytes.Clone(prefix)
		got := dirty.AppendInputHash(b, rev, deps)
		if string(got) != string(prefix)+want {
			t.Fatalf("AppendInputHash(%q, %d, %q) = %q, want the prefix and %s", prefix, rev, deps, got, want)
		}
		if !bytes.Equal(b, prefix) {
			t.Fatalf("AppendInputHash changed its prefix %q to %q", prefix, b)
		}
	})
}
