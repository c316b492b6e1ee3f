package graph

import (
	"fmt"
	"strconv"
	"strings"
)

// NoSegment is the Segment of a global node's ID.
const NoSegment = -1

// maxSegmentDigits bounds the digits of a segment index in an ID.
const maxSegmentDigits = 9

// ID is a parsed node ID. A global node's ID is its kind ("script"); a
// per-segment node's ID is "<kind>:segment[<i>]" with i counted from 0
// ("asset:image:segment[3]").
type ID struct {
	// Kind is the node's kind name.
	Kind string
	// Segment is the segment index, or NoSegment for a global node.
	Segment int
}

// String returns the ID's text form.
func (id ID) String() string {
	if id.Segment == NoSegment {
		return id.Kind
	}
	var buf [maxNameLen + len(segmentMarker) + 12]byte
	return string(id.Append(buf[:0]))
}

// Append appends the ID's text form to b and returns the result.
func (id ID) Append(b []byte) []byte {
	b = append(b, id.Kind...)
	if id.Segment == NoSegment {
		return b
	}
	b = append(b, ":segment["...)
	b = strconv.AppendInt(b, int64(id.Segment), 10)
	return append(b, ']')
}

const segmentMarker = ":segment["

// ParseID parses a node ID. It checks the form only: whether the kind and
// segment exist is for [Graph.Lookup] to say. A malformed ID is an
// [*IDError] wrapping [ErrMalformedID]. Segment indices are decimal, with
// no sign and no leading zero, and at most 9 digits.
func ParseID(s string) (ID, error) {
	bad := func(format string, args ...any) (ID, error) {
		return ID{}, &IDError{ID: s, Problem: fmt.Sprintf(format, args...), Err: ErrMalformedID}
	}
	if s == "" {
		return bad(`empty: want "<kind>" or "<kind>:segment[<i>]"`)
	}
	if !strings.HasSuffix(s, "]") {
		if strings.Contains(s, segmentMarker) {
			return bad(`has ":segment[" but does not end with "]": want "<kind>:segment[<i>]"`)
		}
		if p := nameProblem(s); p != "" {
			return bad(`kind %s; want "<kind>" or "<kind>:segment[<i>]"`, p)
		}
		return ID{Kind: s, Segment: NoSegment}, nil
	}
	at := strings.LastIndex(s, segmentMarker)
	if at < 0 {
		return bad(`ends with "]" but has no ":segment[": want "<kind>:segment[<i>]"`)
	}
	kind, digits := s[:at], s[at+len(segmentMarker):len(s)-1]
	if p := nameProblem(kind); p != "" {
		return bad("kind %s", p)
	}
	switch {
	case digits == "":
		return bad("segment index is empty: want a number from 0")
	case len(digits) > maxSegmentDigits:
		return bad("segment index %q has more than %d digits", digits, maxSegmentDigits)
	case len(digits) > 1 && digits[0] == '0':
		return bad("segment index %q has a leading zero", digits)
	}
	n := 0
	for i := 0; i < len(digits); i++ {
		c := digits[i]
		if c < '0' || c > '9' {
			return bad("segment index %q is not a decimal number", digits)
		}
		n = n*10 + int(c-'0')
	}
	return ID{Kind: kind, Segment: n}, nil
}
