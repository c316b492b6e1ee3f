package sse_test

import (
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress/sse"
)

type decoded struct {
	msgs   []sse.Message
	lastID string
	retry  time.Duration
	err    error
}

func decodeAll(r io.Reader) decoded {
	d := sse.NewDecoder(r)
	var out decoded
	for {
		m, err := d.Next()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				out.err = err
			}
			break
		}
		out.msgs = append(out.msgs, m)
	}
	out.lastID = d.LastEventID()
	out.retry, _ = d.Retry()
	return out
}

func msg(id, data string) sse.Message { return sse.Message{ID: id, Type: "message", Data: data} }

var decoderCases = []struct {
	name   string
	in     string
	want   []sse.Message
	lastID string
	retry  time.Duration
}{
	{"one event", "id: 1\ndata: {\"a\":1}\n\n", []sse.Message{msg("1", `{"a":1}`)}, "1", 0},
	{"multi-line data", "data: a\ndata: b\ndata:\ndata: c\n\n", []sse.Message{msg("", "a\nb\n\nc")}, "", 0},
	{"CRLF", "id: 7\r\ndata: x\r\n\r\n", []sse.Message{msg("7", "x")}, "7", 0},
	{"CR only", "id: 7\rdata: x\r\rdata: y\r\r", []sse.Message{msg("7", "x"), msg("7", "y")}, "7", 0},
	{"mixed line ends", "data: a\r\ndata: b\rdata: c\n\r\n", []sse.Message{msg("", "a\nb\nc")}, "", 0},
	{"CR then LF is one line end", "data: a\r\n\r\ndata: b\n\n", []sse.Message{msg("", "a"), msg("", "b")}, "", 0},
	{"BOM skipped once", "\ufeffdata: a\n\n\ufeffdata: b\n\n", []sse.Message{msg("", "a")}, "", 0},
	{"comments ignored", ": hello\n:\ndata: a\n: keep-alive\n\n", []sse.Message{msg("", "a")}, "", 0},
	{"field without colon", "data\n\n", []sse.Message{msg("", "")}, "", 0},
	{"no space after colon", "data:a\n\n", []sse.Message{msg("", "a")}, "", 0},
	{"only one space stripped", "data:  a \n\n", []sse.Message{msg("", " a ")}, "", 0},
	{"colon in value", "data: a: b\n\n", []sse.Message{msg("", "a: b")}, "", 0},
	{"event type", "event: ping\ndata: 1\n\ndata: 2\n\n", []sse.Message{{Type: "ping", Data: "1"}, msg("", "2")}, "", 0},
	{"event type without data is dropped", "event: ping\n\ndata: 2\n\n", []sse.Message{msg("", "2")}, "", 0},
	{"id persists", "id: 1\ndata: a\n\ndata: b\n\n", []sse.Message{msg("1", "a"), msg("1", "b")}, "1", 0},
	{"empty id resets", "id: 1\ndata: a\n\nid\ndata: b\n\n", []sse.Message{msg("1", "a"), msg("", "b")}, "", 0},
	{"id with NUL ignored", "id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n", []sse.Message{msg("1", "a"), msg("1", "b")}, "1", 0},
	{"id-only block sets the last ID", "id: 1\ndata: a\n\nid: 9\n\n", []sse.Message{msg("1", "a")}, "9", 0},
	{"retry", "retry: 2500\n\n", nil, "", 2500 * time.Millisecond},
	{"bad retry ignored", "retry: 100\nretry: 12a\nretry:\nretry: -5\nretry: 1.5\n\n", nil, "", 100 * time.Millisecond},
	{"unknown field ignored", "foo: bar\ndata: a\n\n", []sse.Message{msg("", "a")}, "", 0},
	{"incomplete event at EOF discarded", "data: a\n\ndata: b\n", []sse.Message{msg("", "a")}, "", 0},
	{"unterminated line at EOF discarded", "data: a\n\ndata: b", []sse.Message{msg("", "a")}, "", 0},
	{"invalid UTF-8 replaced", "data: a\xffb\n\n", []sse.Message{msg("", "a\ufffdb")}, "", 0},
	{"empty stream", "", nil, "", 0},
}

func TestDecoder(t *testing.T) {
	for _, tt := range decoderCases {
		t.Run(tt.name, func(t *testing.T) {
			for _, r := range []struct {
				name string
				r    io.Reader
			}{
				{"whole", strings.NewReader(tt.in)},
				{"one byte at a time", iotest.OneByteReader(strings.NewReader(tt.in))},
				{"half then rest", iotest.HalfReader(strings.NewReader(tt.in))},
			} {
				got := decodeAll(r.r)
				require.NoError(t, got.err, r.name)
				if diff := cmp.Diff(tt.want, got.msgs); diff != "" {
					t.Errorf("%s: messages (-want +got):\n%s", r.name, diff)
				}
				assert.Equal(t, tt.lastID, got.lastID, "%s: LastEventID", r.name)
				assert.Equal(t, tt.retry, got.retry, "%s: Retry", r.name)
			}
		})
	}
}

func TestDecoderTooLarge(t *testing.T) {
	long := strings.Repeat("x", sse.MaxEventSize+1)
	got := decodeAll(strings.NewReader("data: " + long + "\n\n"))
	assert.ErrorIs(t, got.err, sse.ErrTooLarge, "one line")
	line := "data: " + strings.Repeat("y", 1000) + "\n"
	got = decodeAll(strings.NewReader(strings.Repeat(line, sse.MaxEventSize/1000+10) + "\n"))
	assert.ErrorIs(t, got.err, sse.ErrTooLarge, "many lines of one event")
	// Each invalid byte becomes three, U+FFFD: the bound is on the data
	// kept, not on the bytes read.
	got = decodeAll(strings.NewReader("data: " + strings.Repeat("\xff", sse.MaxEventSize/2) + "\n\n"))
	assert.ErrorIs(t, got.err, sse.ErrTooLarge, "invalid bytes that grow past the bound")
}

func TestEncode(t *testing.T) {
	tests := []struct {
		m    sse.Message
		want string
	}{
		{sse.Message{ID: "3", Data: `{"a":1}`}, "id: 3\ndata: {\"a\":1}\n\n"},
		{sse.Message{Type: "ping", Data: "a\r\nb\rc\nd"}, "event: ping\ndata: a\ndata: b\ndata: c\ndata: d\n\n"},
		{sse.Message{Type: "message", Data: ""}, "data: \n\n"},
		// NUL is only refused in an id, which a decoder would ignore.
		{sse.Message{Type: "a\x00b", Data: "c\x00d"}, "event: a\x00b\ndata: c\x00d\n\n"},
	}
	for _, tt := range tests {
		var b strings.Builder
		require.NoError(t, sse.Encode(&b, tt.m))
		assert.Equal(t, tt.want, b.String())
	}
	assert.Error(t, sse.Encode(io.Discard, sse.Message{ID: "1\n2"}))
	assert.Error(t, sse.Encode(io.Discard, sse.Message{Type: "a\rb"}))
	assert.Error(t, sse.Encode(io.Discard, sse.Message{ID: "1\x002"}))
	// What Encode writes for a type with NUL, the decoder reads back.
	var b strings.Builder
	require.NoError(t, sse.Encode(&b, sse.Message{ID: "1", Type: "a\x00b", Data: "x"}))
	got := decodeAll(strings.NewReader(b.String()))
	require.NoError(t, got.err)
	assert.Equal(t, []sse.Message{{ID: "1", Type: "a\x00b", Data: "x"}}, got.msgs)
}

// FuzzDecoder checks that no input panics the parser, that chunking does
// not change what it reads, and that what it returns is well formed.
func FuzzDecoder(f *testing.F) {
	for _, tt := range decoderCases {
		f.Add([]byte(tt.in))
	}
	f.Add([]byte("\xef\xbb"))
	f.Add([]byte("\r"))
	f.Fuzz(func(t *testing.T, in []byte) {
		whole := decodeAll(strings.NewReader(string(in)))
		bytewise := decodeAll(iotest.OneByteReader(strings.NewReader(string(in))))
		if diff := cmp.Diff(whole, bytewise, cmp.AllowUnexported(decoded{}), cmp.Comparer(func(a, b error) bool { return (a == nil) == (b == nil) })); diff != "" {
			t.Fatalf("chunking changed the result for %q (-whole +bytewise):\n%s", in, diff)
		}
		for _, m := range whole.msgs {
			if !utf8.ValidString(m.Data) || !utf8.ValidString(m.ID) || !utf8.ValidString(m.Type) {
				t.Fatalf("invalid UTF-8 in %+v", m)
			}
			if strings.ContainsAny(m.Data, "\r") || strings.ContainsAny(m.ID, "\r\n\x00") || strings.ContainsAny(m.Type, "\r\n") {
				t.Fatalf("line break or NUL leaked into %+v", m)
			}
			if m.Type == "" {
				t.Fatalf("empty type in %+v", m)
			}
		}
	})
}

// FuzzEncodeDecode checks that what Encode writes decodes to the same
// message.
func FuzzEncodeDecode(f *testing.F) {
	f.Add("1", "", "{\"a\":1}")
	f.Add("", "ping", "a\nb")
	f.Add(" x", " y", " z\r\n")
	f.Add("1", "a\x00b", "c\x00d")
	f.Fuzz(func(t *testing.T, id, typ, data string) {
		if !utf8.ValidString(id) || !utf8.ValidString(typ) || !utf8.ValidString(data) {
			t.Skip("Encode writes valid UTF-8 only; the decoder's own fuzz target covers invalid input")
		}
		var b strings.Builder
		if err := sse.Encode(&b, sse.Message{ID: id, Type: typ, Data: data}); err != nil {
			return
		}
		got := decodeAll(strings.NewReader(b.String()))
		require.NoError(t, got.err)
		require.Len(t, got.msgs, 1, "wire %q", b.String())
		want := sse.Message{ID: id, Type: typ, Data: strings.ReplaceAll(strings.ReplaceAll(data, "\r\n", "\n"), "\r", "\n")}
		if want.Type == "" {
			want.Type = "message"
		}
		assert.Equal(t, want, got.msgs[0], "wire %q", b.String())
	})
}

// whatwgUTF8Decode is the WHATWG Encoding standard's UTF-8 decoder
// (https://encoding.spec.whatwg.org/#utf-8-decoder) transcribed step by
// step, with replacement error mode: the reference the Decoder must match.
func whatwgUTF8Decode(in []byte) string {
	var out strings.Builder
	var cp rune
	needed, seen := 0, 0
	lower, upper := byte(0x80), byte(0xBF)
	for i := 0; i < len(in); i++ {
		b := in[i]
		if needed == 0 {
			switch {
			case b <= 0x7F:
				out.WriteByte(b)
			case b >= 0xC2 && b <= 0xDF:
				needed, cp = 1, rune(b&0x1F)
			case b >= 0xE0 && b <= 0xEF:
				if b == 0xE0 {
					lower = 0xA0
				}
				if b == 0xED {
					upper = 0x9F
				}
				needed, cp = 2, rune(b&0xF)
			case b >= 0xF0 && b <= 0xF4:
				if b == 0xF0 {
					lower = 0x90
				}
				if b == 0xF4 {
					upper = 0x8F
				}
				needed, cp = 3, rune(b&0x7)
			default:
				out.WriteRune(utf8.RuneError)
			}
			continue
		}
		if b < lower || b > upper {
			cp, needed, seen, lower, upper = 0, 0, 0, 0x80, 0xBF
			out.WriteRune(utf8.RuneError)
			i-- // "restore byte to ioQueue": it is read again
			continue
		}
		lower, upper = 0x80, 0xBF
		cp = cp<<6 | rune(b&0x3F)
		if seen++; seen == needed {
			out.WriteRune(cp)
			cp, needed, seen = 0, 0, 0
		}
	}
	if needed != 0 { // end of queue inside a sequence
		out.WriteRune(utf8.RuneError)
	}
	return out.String()
}

// Invalid UTF-8 in a field's value is replaced as a browser replaces it:
// one U+FFFD per maximal subpart, not one per run of bad bytes.
func TestDecoderReplacesInvalidUTF8(t *testing.T) {
	const x = "\ufffd"
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"valid, untouched", "a€😀\u07ff\ud7ff\U0010ffff", "a€😀\u07ff\ud7ff\U0010ffff"},
		{"bytes that start nothing: one each", "a\xff\xfeb", "a" + x + x + "b"},
		{"stray continuation bytes: one each", "\x80\xbf\x80", x + x + x},
		{"truncated 3-byte sequence, then ASCII: one", "\xe2\x82a", x + "a"},
		{"truncated 3-byte sequence at the end: one", "a\xe2\x82", "a" + x},
		{"truncated 4-byte sequence: one", "\xf0\x9f\x98x", x + "x"},
		{"truncated 2-byte sequence: one", "\xc3x", x + "x"},
		{"lead byte after a lead byte", "\xc3\xc3\xa9", x + "é"},
		{"truncated sequence, then a valid one", "\xe2\x82\xe2\x82\xac", x + "€"},
		{"overlong 2-byte: one per byte", "\xc0\xaf", x + x},
		{"overlong 3-byte: one per byte", "\xe0\x80\xaf", x + x + x},
		{"overlong 4-byte: one per byte", "\xf0\x80\x80\xaf", x + x + x + x},
		{"surrogate: one per byte", "\xed\xa0\x80", x + x + x},
		{"above U+10FFFF: one per byte", "\xf4\x90\x80\x80", x + x + x + x},
		{"F5 and above start nothing", "\xf5\x80\x80\x80", x + x + x + x},
		{"Unicode table 3-8", "a\xf1\x80\x80\xe1\x80\xc2b\x80c\x80\xbfd", "a" + x + x + x + "b" + x + "c" + x + x + "d"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, whatwgUTF8Decode([]byte(tt.in)), "the reference decoder disagrees with the case")
			in := "id: " + tt.in + "\nevent: " + tt.in + "\ndata: " + tt.in + "\n\n"
			got := decodeAll(strings.NewReader(in))
			require.NoError(t, got.err)
			want := []sse.Message{{ID: tt.want, Type: tt.want, Data: tt.want}}
			if diff := cmp.Diff(want, got.msgs); diff != "" {
				t.Errorf("decoding %q (-want +got):\n%s", tt.in, diff)
			}
			assert.Equal(t, tt.want, got.lastID, "LastEventID")
		})
	}
}

// FuzzDecoderUTF8 checks the Decoder's replacement of invalid UTF-8
// against the WHATWG decoder transcribed in whatwgUTF8Decode.
func FuzzDecoderUTF8(f *testing.F) {
	f.Add([]byte("a\xff\xfeb"))
	f.Add([]byte("\xe2\x82a\xf0\x9f\x98"))
	f.Add([]byte("a\xf1\x80\x80\xe1\x80\xc2b\x80c\x80\xbfd"))
	f.Add([]byte("\xed\xa0\x80\xf4\x90\x80\x80\xe0\x80\xaf"))
	f.Fuzz(func(t *testing.T, in []byte) {
		in = slices.DeleteFunc(in, func(c byte) bool { return c == '\r' || c == '\n' }) // one line
		got := decodeAll(strings.NewReader("data: " + string(in) + "\n\n"))
		require.NoError(t, got.err)
		require.Len(t, got.msgs, 1)
		assert.Equal(t, whatwgUTF8Decode(in), got.msgs[0].Data, "data %q", in)
	})
}
