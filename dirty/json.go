package dirty

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/regengraph/regen/internal/quote"
	"github.com/regengraph/regen/internal/strictjson"
)

// ErrInvalidJSON: JSON that [Mark.UnmarshalJSON] or
// [State.UnmarshalJSON] refuses. A [*JSONError] wraps it.
var ErrInvalidJSON = errors.New("dirty: invalid JSON")

// ErrUnknownName: a [Status] or [Reason] name that is none of the names
// MarshalText writes. A [*NameError] wraps it.
var ErrUnknownName = errors.New("dirty: unknown status or reason")

// NameError reports a name that [Status.UnmarshalText] or
// [Reason.UnmarshalText] refuses. Its message names what is allowed.
type NameError struct {
	// Of is "status" or "reason".
	Of string
	// Name is the text as given.
	Name string
}

func (e *NameError) Error() string {
	if e.Of == "status" {
		return fmt.Sprintf("dirty: unknown status %s: want missing, clean, dirty, running, failed or cancelled", quoteName(e.Name))
	}
	return fmt.Sprintf("dirty: unknown reason %s: want one of %s", quoteName(e.Name), strings.Join(reasonText[1:], ", "))
}

// Unwrap returns [ErrUnknownName].
func (e *NameError) Unwrap() error { return ErrUnknownName }

// maxNameLen is the length of the longest status or reason name.
const maxNameLen = len("last attempt failed")

// quoteName quotes a status or reason name as given, as %q does; one
// longer than any name is cut, with a note of its length.
func quoteName(s string) string {
	if len(s) <= maxNameLen {
		return strconv.Quote(s)
	}
	return quote.Key(s)
}

// JSONError reports JSON that [Mark.UnmarshalJSON] or
// [State.UnmarshalJSON] refuses: what is wrong, and what is allowed. It
// wraps [ErrInvalidJSON], and Err when set.
type JSONError struct {
	// Type is "Mark" or "State".
	Type string
	// Problem says what is wrong and what is allowed. It may be empty
	// when Err says it all.
	Problem string
	// Err is the underlying error, or nil: a JSON syntax or type error, a
	// key refused (unknown, in another case, or repeated), a [*NameError],
	// or a time that does not parse. Its message is kept short: a literal
	// of the input longer than any valid one is cut in it.
	Err error
}

func (e *JSONError) Error() string {
	msg := fmt.Sprintf("%v: %s", ErrInvalidJSON, e.Type)
	if e.Problem != "" {
		msg += ": " + e.Problem
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns [ErrInvalidJSON], and Err when set.
func (e *JSONError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrInvalidJSON}
	}
	return []error{ErrInvalidJSON, e.Err}
}

// The JSON forms of a Mark and a State. A Mark also reads under its Go
// field names, as it was written before it had tags.
var (
	markKeys  = []string{"ID", "Reason", "id", "reason"}
	stateForm = &strictjson.Object{Keys: strictjson.Names(stateJSON{})}
)

// stateJSON is a State without its methods, for the decoder.
type stateJSON State

// isNull reports whether data is JSON null, with JSON's whitespace only.
func isNull(data []byte) bool { return string(bytes.Trim(data, " \t\r\n")) == "null" }

// object checks that data holds one JSON object and nothing after it,
// whose keys are those of form, each once and in the case given.
func object(data []byte, typ, want string, form *strictjson.Object) error {
	bad := func(problem string, err error) error {
		return &JSONError{Type: typ, Problem: problem, Err: err}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		if errors.Is(err, io.EOF) {
			return bad("no JSON value: want "+want, nil)
		}
		return bad("", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return bad("data after the object: want one JSON object, "+want, nil)
	}
	if raw[0] != '{' {
		kind := map[byte]string{'[': "an array", '"': "a string", 't': "a boolean", 'f': "a boolean", 'n': "null"}[raw[0]]
		if kind == "" {
			kind = "a number"
		}
		return bad(fmt.Sprintf("%s: want an object, %s", kind, want), nil)
	}
	// encoding/json matches keys whatever their case and keeps the last
	// of repeated keys: a typo or a repeat would change the value
	// silently.
	if err := strictjson.CheckForm(raw, form); err != nil {
		return bad("", strictjson.Bound(err))
	}
	return nil
}

// UnmarshalJSON reads a mark in the form json.Marshal writes,
// {"id": "script", "reason": "edited"}, or under the Go field names that
// marks were written with before, {"ID": "script", "Reason": "edited"}.
// Unknown fields, keys in another case, a key given twice (in either
// spelling), trailing data and a reason that is none of the words
// [Reason.MarshalText] writes are refused with a [*JSONError]; a key left
// out reads as zero ([Compute] refuses a mark without a reason). JSON
// null leaves m as it is, as encoding/json does; on error m is
// unchanged.
func (m *Mark) UnmarshalJSON(data []byte) error {
	if isNull(data) {
		return nil
	}
	const want = `{"id": "<node ID>", "reason": "<reason>"}`
	form := &strictjson.Object{Keys: markKeys}
	if err := object(data, "Mark", want, form); err != nil {
		return err
	}
	var in struct {
		ID        *string `json:"id"`
		OldID     *string `json:"ID"`
		Reason    *Reason `json:"reason"`
		OldReason *Reason `json:"Reason"`
	}
	if err := json.Unmarshal(data, &in); err != nil {
		return &JSONError{Type: "Mark", Err: strictjson.Bound(err)}
	}
	if in.ID != nil && in.OldID != nil {
		return &JSONError{Type: "Mark", Problem: `keys "id" and "ID" are the same field: give it once, as "id"`}
	}
	if in.Reason != nil && in.OldReason != nil {
		return &JSONError{Type: "Mark", Problem: `keys "reason" and "Reason" are the same field: give it once, as "reason"`}
	}
	var out Mark
	for _, id := range []*string{in.ID, in.OldID} {
		if id != nil {
			out.ID = *id
		}
	}
	for _, r := range []*Reason{in.Reason, in.OldReason} {
		if r != nil {
			out.Reason = *r
		}
	}
	*m = out
	return nil
}

// UnmarshalJSON reads a state in the form json.Marshal writes:
//
//	{"status": "clean", "rev": 1, "inputHash": "...", "outputHash": "...",
//	 "assetRef": "...", "attempts": 1, "lastError": "...",
//	 "updatedAt": "2025-03-01T12:00:00Z"}
//
// Unknown fields, keys in another case, repeated keys, trailing data and
// a status that is none of the names [Status.MarshalText] writes are
// refused with a [*JSONError]; a key left out reads as zero. JSON null
// leaves s as it is, as encoding/json does; on error s is unchanged.
func (s *State) UnmarshalJSON(data []byte) error {
	if isNull(data) {
		return nil
	}
	const want = `{"status": "<status>", "rev": <n>, ...}`
	if err := object(data, "State", want, stateForm); err != nil {
		return err
	}
	var in stateJSON
	if err := json.Unmarshal(data, &in); err != nil {
		return &JSONError{Type: "State", Err: strictjson.Bound(err)}
	}
	*s = State(in)
	return nil
}
