package sse_test

import (
	"errors"
	"io"
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
}

func TestEncode(t *testing.T) {
	tests := []struct {
		m    sse.Message
		want string
	}{
		{sse.Message{ID: "3", Data: `{"a":1}`}, "id: 3\ndata: {\"a\":1}\n\n"},
		{sse.Message{Type: "ping", Data: "a\r\nb\rc\nd"}, "event: ping\ndata: a\ndata: b\ndata: c\ndata: d\n\n"},
		{sse.Message{Type: "message", Data: ""}, "data: \n\n"},
	}
	for _, tt := range tests {
		var b strings.Builder
		require.NoError(t, sse.Encode(&b, tt.m))
		assert.Equal(t, tt.want, b.String())
	}
	assert.Error(t, sse.Encode(io.Discard, sse.Message{ID: "1\n2"}))
	assert.Error(t, sse.Encode(io.Discard, sse.Message{Type: "a\rb"}))
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
	f.Fuzz(func(t *testing.T, id, typ, data string) {
		if !utf8.ValidString(id) || !utf8.ValidString(typ) || !utf8.ValidString(data) {
			t.Skip()
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
