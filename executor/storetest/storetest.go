package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/stretchr/testify/assert"

	"github.com/regengraph/regen/executor"
)

// Factory makes the stores to check. A nil field skips that store. Each
// function is called once per subtest.
type Factory struct {
	// States returns a StateStore.
	States func(t *testing.T) executor.StateStore
	// Assets returns an AssetStore.
	Assets func(t *testing.T) executor.AssetStore
	// Runs returns a RunStore.
	Runs func(t *testing.T) executor.RunStore
	// Retainer returns a store with retention methods, for [Retention]:
	// a store of its own, that no other test uses, since the checks
	// prune the whole store.
	Retainer func(t *testing.T) Retainer
}

// Run checks each store of f that is not nil, in subtests named
// "StateStore", "AssetStore", "RunStore" and "Retention". It fails the
// test if f has no store at all.
func Run(t *testing.T, f Factory) {
	t.Helper()
	if f.States == nil && f.Assets == nil && f.Runs == nil && f.Retainer == nil {
		t.Fatal("storetest: Factory has no store to check")
	}
	if f.States != nil {
		t.Run("StateStore", func(t *testing.T) { StateStore(t, f.States) })
	}
	if f.Assets != nil {
		t.Run("AssetStore", func(t *testing.T) { AssetStore(t, f.Assets) })
	}
	if f.Runs != nil {
		t.Run("RunStore", func(t *testing.T) { RunStore(t, f.Runs) })
	}
	if f.Retainer != nil {
		t.Run("Retention", func(t *testing.T) { Retention(t, f.Retainer) })
	}
}

// check is one subtest of the kit.
type check[S any] struct {
	name string
	fn   func(t *testing.T, s S)
}

// runChecks runs each check in a subtest, on a fresh store.
func runChecks[S any](t *testing.T, newStore func(t *testing.T) S, checks []check[S]) {
	t.Helper()
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) { c.fn(t, newStore(t)) })
	}
}

// Unique returns a name unique to this test and this process, made of
// letters, digits, '-' and '_', ending with suffix. The kit derives its
// graph keys, asset keys and run IDs from it, so that stores sharing a
// database never see each other's data.
func Unique(t testing.TB, suffix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // never fails
	name := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return '_'
	}, t.Name())
	if len(name) > 60 {
		name = name[len(name)-60:]
	}
	name = "storetest-" + name + "-" + hex.EncodeToString(b[:])
	if suffix != "" {
		name += "-" + suffix
	}
	return name
}

// whileReading calls call while another goroutine reads list, a caller's
// slice that call must not modify even temporarily, as the caller may
// read it meanwhile; it returns once both are done. A call that writes
// into list, though it puts it back as it was before it returns, then
// races with the reads, which the race detector reports, failing the
// test: the kit checks this under go test -race only. The report says
// only "race detected", with a stack into this function, so the test
// then says the rule too: what, a call such as "Missing", wrote into the
// caller's list, which, such as "refs", names.
func whileReading[E any](t testing.TB, what, which string, list []E, call func()) {
	t.Helper()
	failed := t.Failed()
	defer func() {
		t.Helper()
		if !failed && t.Failed() { // a race (call reports to t only by failing it now)
			t.Errorf("%s wrote into the caller's %s while another goroutine read them (a race reported above, in "+
				"storetest.whileReading, is that): %s must not modify %s, even for a moment and though it puts them "+
				"back before it returns, as the caller may read them meanwhile; a store that sorts them (for its query, "+
				"or a lock order) sorts a copy", what, which, what, which)
		}
	}()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]E, len(list))
		for {
			// A race reported here: the call wrote into the caller's
			// slice, which it must not do, even for a moment (see
			// whileReading's doc).
			copy(buf, list) // a read of every element, before done is seen
			select {
			case <-done:
				return
			default:
				runtime.Gosched()
			}
		}
	})
	defer wg.Wait()
	defer close(done)
	call()
}

// diffOpts are the kit's comparison options: times compare by instant
// (cmp uses time.Time's Equal method), and nil and empty slices and maps
// are equal.
var diffOpts = []cmp.Option{cmpopts.EquateEmpty()}

// diff returns a human-readable difference between want and got, or "".
func diff(want, got any) string {
	return cmp.Diff(want, got, diffOpts...)
}

// baseTime is the kit's reference time: microsecond precision, in a zone
// that is not UTC nor a whole number of hours from it.
var baseTime = time.Date(2025, 3, 14, 15, 9, 26, 535_897_000, time.FixedZone("UTC+05:30", 5*3600+1800))

// subMicrosecondTimes are times with a part finer than a microsecond,
// 999 ns, that a store may drop but must not round: rounding moves a time
// to the next microsecond (the last nanosecond of 1999 into 2000), which
// the executor, comparing stored times truncated to the microsecond, takes
// for another time. One is before the Unix epoch, where truncation goes
// toward the past, as [time.Time.Truncate] does, not toward zero.
var subMicrosecondTimes = []time.Time{
	baseTime.Add(999 * time.Nanosecond),
	time.Date(1999, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
	time.Date(1969, 7, 20, 20, 17, 40, 999, time.FixedZone("UTC-04", -4*3600)),
}

// keptTime reports whether a store kept the time want as got: the same
// instant, or want truncated to the microsecond.
func keptTime(want, got time.Time) bool {
	return got.Equal(want) || got.Equal(want.Truncate(time.Microsecond))
}

// cancelled returns a context that is already cancelled.
func cancelled(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	return ctx
}

// longKeyLengths are the lengths, in bytes, of the long keys, IDs and
// references the kit tries: a store may refuse them, as past the limit it
// documents, or keep them exactly, never cut or otherwise changed.
// Postgres refuses a btree index entry over 2,704 bytes, so a SQL store
// that indexes its keys has a limit among these lengths.
var longKeyLengths = []int{1500, 3000, 10000}

// longKeys returns two keys of n bytes that start with base and differ
// in their last byte only: a store that cuts keys to a length takes them
// for one.
func longKeys(base string, n int) (a, b string) {
	pad := strings.Repeat("k", max(0, n-len(base)-1))
	return base + pad + "a", base + pad + "b"
}

// assertPermanent checks that err, a store's refusal of a key, ID or
// reference longer than it allows, is wrapped in [executor.Permanent], so
// that the executor does not call again.
func assertPermanent(t *testing.T, err error, call string) bool {
	t.Helper()
	var p *executor.PermanentError
	return assert.ErrorAs(t, err, &p,
		"%s failed; a store that refuses a key longer than it allows wraps its error in executor.Permanent, so that the executor does not retry it", call)
}

// textPieces are the kinds of text a store's strings must keep: any valid
// UTF-8 but NUL.
var textPieces = []string{
	"line 1\r\nline 2\n", "\ttabbed ", "controls \x01\x1f\x7f ", "ünïcødé ✓ ", "東京 ", "emoji 🎬🔊 ",
	"\u2028\u2029 separators ", "\ufffd replacement ", `"quotes" 'single' \backslash\ `, "<b>&amp;</b> ",
	"%s %d {} ", "\u00a0no-break ",
}

// text returns n bytes of valid UTF-8 made of every kind of textPieces,
// ending with a space and a line break, which a store that trims would
// drop.
func text(n int) string {
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		b.WriteString(textPieces[i%len(textPieces)])
	}
	s := strings.ToValidUTF8(b.String()[:n-2], "")
	return s + strings.Repeat(".", n-2-len(s)) + " \n"
}

// short returns s quoted, as %q does, but for a string longer than 200
// bytes (a long key of the LongKeys checks, a 10,000-byte malformed
// reference), which it cuts to its first 100 bytes and its length, so
// that a message stays readable.
func short(s string) string {
	if len(s) <= 200 {
		return strconv.Quote(s)
	}
	return fmt.Sprintf("%q… (%d bytes)", s[:100], len(s))
}

// shortList returns the strings of list, each as short gives it, the
// first 20 of a longer list only.
func shortList(list []string) string {
	const most = 20
	out := make([]string, 0, min(len(list), most+1))
	for _, s := range list[:min(len(list), most)] {
		out = append(out, short(s))
	}
	if len(list) > most {
		out = append(out, fmt.Sprintf("… (%d in all)", len(list)))
	}
	return "[" + strings.Join(out, " ") + "]"
}
