package sse

import (
	"errors"
	"fmt"
	"strconv"
)

// ErrBadLastEventID marks a Last-Event-ID (or lastEventId parameter) that
// is not an event ID this package wrote; from a [Client], one that an HTTP
// header cannot carry.
var ErrBadLastEventID = errors.New("sse: malformed last event ID")

// maxIDLen is the length of the largest uint64 in decimal.
const maxIDLen = 20

// ParseLastEventID parses a last event ID as written by [Handler]: the
// decimal Seq of the last event the client received, ASCII digits only.
// The empty string means 0, from the start. Anything else (a sign,
// spaces, a fraction, more than 20 digits, a value beyond uint64) fails
// with an error wrapping [ErrBadLastEventID] that quotes the value.
func ParseLastEventID(s string) (uint64, error) {
	if s == "" {
		return 0, nil
	}
	bad := func(why string) error {
		shown := s
		if len(shown) > 40 {
			shown = shown[:40] + "..."
		}
		return fmt.Errorf("%w %q: %s; want the decimal sequence number of the last event received", ErrBadLastEventID, shown, why)
	}
	if len(s) > maxIDLen {
		return 0, bad(fmt.Sprintf("%d characters, at most %d allowed", len(s), maxIDLen))
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, bad("not all digits")
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, bad("out of range")
	}
	return n, nil
}
