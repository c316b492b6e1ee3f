package strictjson

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/regengraph/regen/internal/quote"
)

// Bound returns err, or an error wrapping it whose message cuts a literal
// of the input that err's own message quotes whole: the number of
// encoding/json's type error ("cannot unmarshal number 99…"), the key of
// a [*KeyError], the text of a time that does not parse. One longer than
// [quote.Max] bytes is cut, with a note of its length, as [quote.Key]
// cuts, so that a megabyte in the wrong place does not make a message of
// a megabyte. errors.As still finds the original error.
func Bound(err error) error {
	var (
		te *json.UnmarshalTypeError
		ke *KeyError
		pe *time.ParseError
	)
	switch {
	case errors.As(err, &te) && len(te.Value) > quote.Max:
		c := *te
		kind, lit, _ := strings.Cut(te.Value, " ")
		c.Value = kind + " " + cutLiteral(lit)
		return &boundedError{msg: c.Error(), err: err}
	case errors.As(err, &ke) && len(ke.Key) > quote.Max:
		c := *ke
		c.Key = "\x00"
		return &boundedError{msg: strings.Replace(c.Error(), strconv.Quote(c.Key), quote.Key(ke.Key), 1), err: err}
	case errors.As(err, &pe) && len(pe.Value) > quote.Max:
		return &boundedError{msg: fmt.Sprintf("parsing time %s: want RFC 3339, as %q", quote.Key(pe.Value), time.RFC3339), err: err}
	}
	return err
}

// boundedError is an error with a message of bounded length, wrapping
// the error whose message quoted a literal of the input whole.
type boundedError struct {
	msg string
	err error
}

func (e *boundedError) Error() string { return e.msg }
func (e *boundedError) Unwrap() error { return e.err }

// cutLiteral returns the first bytes of a literal and a note of its
// length, as [quote.Key] does, unquoted.
func cutLiteral(s string) string {
	if len(s) <= quote.Max {
		return s
	}
	q := quote.Key(s)
	end := strings.LastIndex(q, `"… (`)
	head, err := strconv.Unquote(q[:end+1])
	if err != nil {
		head = ""
	}
	return head + q[end+1:]
}
