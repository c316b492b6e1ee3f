package sse

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// ErrTooLarge is returned by [Decoder.Next] for a line or an event larger
// than [MaxEventSize].
var ErrTooLarge = errors.New("sse: event too large")

// MaxEventSize bounds one line, and one event's data, that a [Decoder]
// accepts: 1 MiB.
const MaxEventSize = 1 << 20

// Message is one event of an event stream, as the WHATWG "dispatch the
// event" step produces it.
type Message struct {
	// ID is the stream's last event ID when the message was dispatched:
	// set by this event's id field or an earlier one, "" if none.
	ID string
	// Type is the event type: "message" unless the event set one.
	Type string
	// Data is the event's data lines joined by "\n".
	Data string
}

// Decoder reads [Message]s from a text/event-stream body, following the
// WHATWG HTML "event stream interpretation": a leading byte order mark is
// skipped, lines end with CRLF, LF or CR, comment lines (":...") are
// ignored, data lines are joined with "\n", an id containing NUL is
// ignored, a retry that is not all ASCII digits is ignored, unknown fields
// are ignored, and an event left incomplete at the end of the stream is
// discarded. Invalid UTF-8 is replaced as a browser's decoder replaces
// it: one U+FFFD for each maximal ill-formed subsequence, as the WHATWG
// Encoding standard's "UTF-8 decode" says. A Decoder is not safe for
// concurrent use.
type Decoder struct {
	r       *bufio.Reader
	started bool // the byte order mark was checked
	skipLF  bool // the last line ended with CR: a following LF belongs to it
	line    []byte

	data     strings.Builder
	typ      string
	idBuf    string // the last event ID buffer
	lastID   string // the last event ID, set at dispatch
	beforeID string // lastID before the dispatch of the message Next last returned
	retry    time.Duration
	retrySet bool
}

// NewDecoder returns a Decoder reading r.
func NewDecoder(r io.Reader) *Decoder {
	return &Decoder{r: bufio.NewReaderSize(r, 16<<10)}
}

// Next returns the next message. At the end of the stream it returns
// io.EOF (or the reader's error), discarding an incomplete event.
func (d *Decoder) Next() (Message, error) {
	for {
		line, err := d.readLine()
		if err != nil {
			return Message{}, err
		}
		if len(line) == 0 {
			// Dispatch.
			before := d.lastID
			d.lastID = d.idBuf
			if d.data.Len() == 0 {
				d.typ = ""
				continue
			}
			d.beforeID = before
			data := strings.TrimSuffix(d.data.String(), "\n")
			typ := d.typ
			if typ == "" {
				typ = "message"
			}
			d.data.Reset()
			d.typ = ""
			return Message{ID: d.lastID, Type: typ, Data: data}, nil
		}
		if line[0] == ':' {
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "event":
			d.typ = validUTF8(value)
		case "data":
			v := validUTF8(value) // may be longer than value: count what is kept
			if d.data.Len()+len(v)+1 > MaxEventSize {
				return Message{}, fmt.Errorf("%w: data over %d bytes", ErrTooLarge, MaxEventSize)
			}
			d.data.WriteString(v)
			d.data.WriteByte('\n')
		case "id":
			if bytes.IndexByte(value, 0) < 0 {
				d.idBuf = validUTF8(value)
			}
		case "retry":
			if ms, ok := parseDigits(value); ok {
				d.retry, d.retrySet = time.Duration(ms)*time.Millisecond, true
			}
		}
	}
}

// Retry returns the reconnection time last set by a retry field, and
// whether one was set.
func (d *Decoder) Retry() (time.Duration, bool) { return d.retry, d.retrySet }

// LastEventID returns the stream's last event ID: the id buffer as it
// was at the last dispatch, which a client sends as Last-Event-ID when it
// reconnects.
func (d *Decoder) LastEventID() string { return d.lastID }

// parseDigits parses a non-empty run of ASCII digits that fits in an
// int64 of milliseconds as a time.Duration.
func parseDigits(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil || n > int64(time.Duration(1<<63-1)/time.Millisecond) {
		return 0, false
	}
	return n, true
}

// validUTF8 decodes b as the WHATWG Encoding standard's "UTF-8 decode"
// does, and so as browsers do: each maximal subpart of an ill-formed
// sequence becomes one U+FFFD. A maximal subpart is a lead byte with the
// continuation bytes after it that could still have made a valid sequence
// (E2 82 followed by 'a' gives one U+FFFD, then 'a'); a byte that can
// start no sequence is one on its own (FF FE gives two, as do the
// overlong C0 AF; the surrogate ED A0 80 gives three). Valid input is
// returned as it is, at the cost of one utf8.Valid scan.
func validUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	out := make([]byte, 0, len(b)+len(b)/2)
	for len(b) > 0 {
		if b[0] < utf8.RuneSelf {
			out = append(out, b[0])
			b = b[1:]
			continue
		}
		if r, size := utf8.DecodeRune(b); r != utf8.RuneError || size > 1 {
			out = append(out, b[:size]...)
			b = b[size:]
			continue
		}
		out = append(out, "\uFFFD"...)
		b = b[maximalSubpart(b):]
	}
	return string(out)
}

// maximalSubpart returns the length of the ill-formed sequence that starts
// b, which holds no valid sequence at its start: the lead byte and the
// continuation bytes that the WHATWG UTF-8 decoder accepts after it
// before it meets a byte out of range or the end of b.
func maximalSubpart(b []byte) int {
	// The bytes needed after the lead, and the range allowed for the
	// first of them (the later ones are 80..BF).
	var need int
	lower, upper := byte(0x80), byte(0xBF)
	switch c := b[0]; {
	case c >= 0xC2 && c <= 0xDF:
		need = 1
	case c >= 0xE0 && c <= 0xEF:
		need = 2
		if c == 0xE0 {
			lower = 0xA0 // not overlong
		} else if c == 0xED {
			upper = 0x9F // not a surrogate
		}
	case c >= 0xF0 && c <= 0xF4:
		need = 3
		if c == 0xF0 {
			lower = 0x90 // not overlong
		} else if c == 0xF4 {
			upper = 0x8F // not above U+10FFFF
		}
	default:
		return 1 // never a lead byte: 80..C1, F5..FF
	}
	n := 1
	for n <= need && n < len(b) && b[n] >= lower && b[n] <= upper {
		n++
		lower, upper = 0x80, 0xBF
	}
	return n
}

// readLine returns the next line without its terminator. The returned
// slice is valid until the next call.
func (d *Decoder) readLine() ([]byte, error) {
	if !d.started {
		d.started = true
		if err := d.skipBOM(); err != nil {
			return nil, err
		}
	}
	if d.skipLF {
		d.skipLF = false
		b, err := d.r.Peek(1)
		if err != nil {
			return nil, err
		}
		if b[0] == '\n' {
			_, _ = d.r.Discard(1)
		}
	}
	d.line = d.line[:0]
	for {
		if d.r.Buffered() == 0 {
			if _, err := d.r.Peek(1); err != nil {
				return nil, err // an unterminated last line is discarded
			}
		}
		chunk, _ := d.r.Peek(d.r.Buffered())
		i := bytes.IndexAny(chunk, "\r\n")
		if i < 0 {
			if len(d.line)+len(chunk) > MaxEventSize {
				return nil, fmt.Errorf("%w: line over %d bytes", ErrTooLarge, MaxEventSize)
			}
			d.line = append(d.line, chunk...)
			_, _ = d.r.Discard(len(chunk))
			continue
		}
		if len(d.line)+i > MaxEventSize {
			return nil, fmt.Errorf("%w: line over %d bytes", ErrTooLarge, MaxEventSize)
		}
		d.line = append(d.line, chunk[:i]...)
		d.skipLF = chunk[i] == '\r'
		_, _ = d.r.Discard(i + 1)
		return d.line, nil
	}
}

// skipBOM drops one leading U+FEFF.
func (d *Decoder) skipBOM() error {
	bom := []byte{0xEF, 0xBB, 0xBF}
	for n := 1; n <= len(bom); n++ {
		b, err := d.r.Peek(n)
		if err != nil {
			if err == io.EOF && len(b) > 0 {
				return nil // shorter than a BOM: let readLine see it
			}
			return err
		}
		if b[n-1] != bom[n-1] {
			return nil
		}
	}
	_, _ = d.r.Discard(len(bom))
	return nil
}

// Encode writes m in the event stream format: an id field if m.ID is set,
// an event field if m.Type is set and not "message", one data field per
// line of m.Data (CR, LF and CRLF all end a line), and a blank line. ID
// must not contain CR, LF or NUL (a [Decoder], as a browser, ignores an id
// field with NUL), and Type must not contain CR or LF: Encode returns an
// error for such a message and writes nothing. A NUL in Type or Data is
// written as it is, and a Decoder gives it back as it was.
func Encode(w io.Writer, m Message) error {
	if strings.ContainsAny(m.ID, "\r\n\x00") {
		return fmt.Errorf("sse: encode: id %q contains CR, LF or NUL", m.ID)
	}
	if strings.ContainsAny(m.Type, "\r\n") {
		return fmt.Errorf("sse: encode: event type %q contains CR or LF", m.Type)
	}
	var b strings.Builder
	if m.ID != "" {
		b.WriteString("id: " + m.ID + "\n")
	}
	if m.Type != "" && m.Type != "message" {
		b.WriteString("event: " + m.Type + "\n")
	}
	data := strings.ReplaceAll(m.Data, "\r\n", "\n")
	data = strings.ReplaceAll(data, "\r", "\n")
	for line := range strings.SplitSeq(data, "\n") {
		b.WriteString("data: " + line + "\n")
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}
