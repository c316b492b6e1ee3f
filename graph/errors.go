package graph

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/regengraph/regen/internal/quote"
)

// maxIDLen is the length of the longest valid node ID: a kind name,
// ":segment[", 9 digits and "]".
const maxIDLen = maxNameLen + len(segmentMarker) + maxSegmentDigits + 1

// quoteValue quotes s, as %q does, for an error. A value longer than any
// valid kind name, batch key or node ID is cut, with a note of its length
// (internal/quote), so that a message names it without being mostly it.
func quoteValue(s string) string {
	if len(s) <= maxIDLen {
		return strconv.Quote(s)
	}
	return quote.Key(s)
}

// Sentinel errors. Every error this package returns wraps one of them
// (a [*CycleError] two), so callers can branch with errors.Is.
var (
	// ErrInvalidDuration: a duration that is not positive, not a multiple
	// of the segment length, or above the limit.
	ErrInvalidDuration = errors.New("graph: invalid duration")
	// ErrInvalidTemplate: a template that breaks a rule (see [Template.Validate]).
	ErrInvalidTemplate = errors.New("graph: invalid template")
	// ErrCycle: the template's kinds depend on each other in a cycle.
	// A [*CycleError] wraps both ErrCycle and ErrInvalidTemplate.
	ErrCycle = errors.New("graph: cycle among kinds")
	// ErrTooLarge: the graph would exceed the node or edge limit.
	ErrTooLarge = errors.New("graph: graph too large")
	// ErrMalformedID: a node ID that does not parse.
	ErrMalformedID = errors.New("graph: malformed node ID")
	// ErrUnknownNode: a well-formed node ID that names no node of the graph.
	ErrUnknownNode = errors.New("graph: unknown node")
	// ErrNarrationLength: a narration length outside the segment tolerance.
	ErrNarrationLength = errors.New("graph: narration length out of tolerance")
	// ErrZeroGraph: a zero Graph, which no [Build] made, given to
	// [Graph.MarshalJSON]: it has no nodes, not even a template.
	ErrZeroGraph = errors.New("graph: zero Graph: make one with Build")
)

// DurationError reports a duration that [Build] refuses.
type DurationError struct {
	// Seconds is the duration that was given: the lecture's, or the
	// option's when Option is set.
	Seconds int
	// Option names the [Options] field whose value is wrong, such as
	// "MaxSeconds", or is "" when the lecture's duration is.
	Option string
	// Rule says what is wrong and what is allowed, for example
	// "is not a multiple of 10s".
	Rule string
	// Segments says that the lecture's length was given as a number of
	// segments ([BuildSegments]): Seconds is then that number, and Rule
	// speaks of segments.
	Segments bool
}

func (e *DurationError) Error() string {
	if e.Segments {
		return fmt.Sprintf("%v: %s %s", ErrInvalidDuration, segmentCount(e.Seconds), e.Rule)
	}
	return fmt.Sprintf("%v: %ds %s", ErrInvalidDuration, e.Seconds, e.Rule)
}

// Unwrap returns [ErrInvalidDuration].
func (e *DurationError) Unwrap() error { return ErrInvalidDuration }

// TemplateError reports the first rule a template breaks.
type TemplateError struct {
	// Kind is the name of the offending kind, or "" for the template as a whole.
	Kind string
	// Problem says what is wrong and what is allowed.
	Problem string
}

func (e *TemplateError) Error() string {
	if e.Kind == "" {
		return fmt.Sprintf("%v: %s", ErrInvalidTemplate, e.Problem)
	}
	return fmt.Sprintf("%v: kind %s: %s", ErrInvalidTemplate, quoteValue(e.Kind), e.Problem)
}

// Unwrap returns [ErrInvalidTemplate].
func (e *TemplateError) Unwrap() error { return ErrInvalidTemplate }

// CycleError reports kinds that depend on each other in a cycle. Kinds
// lists the cycle once, starting at the kind that comes first in the
// template, each kind depending on the next and the last on the first.
type CycleError struct {
	Kinds []string
}

func (e *CycleError) Error() string {
	switch len(e.Kinds) {
	case 0: // made by hand, not by this package
		return ErrCycle.Error()
	case 1:
		// The one cycle a host writes on purpose: say what is allowed.
		return fmt.Sprintf("%v: %s -> %s (only a per-segment kind may depend on itself, with scope previous-segment: each segment on the one before)",
			ErrCycle, e.Kinds[0], e.Kinds[0])
	}
	return fmt.Sprintf("%v: %s -> %s (each kind depends on the next)", ErrCycle,
		strings.Join(e.Kinds, " -> "), e.Kinds[0])
}

// Unwrap returns [ErrCycle] and [ErrInvalidTemplate].
func (e *CycleError) Unwrap() []error { return []error{ErrCycle, ErrInvalidTemplate} }

// SizeError reports a graph that would exceed a size limit: its message
// names the [Options] field that raises the limit, and how far. On a
// 32-bit platform, a graph under the limits may still need more memory
// than a slice there holds: What is then "bytes", and Limit the most a
// slice holds.
type SizeError struct {
	// What is "nodes", "edges" or "bytes".
	What string
	// Count is how many the graph would have; Limit is the most allowed.
	Count, Limit int64
}

func (e *SizeError) Error() string {
	if e.What == "bytes" {
		return fmt.Sprintf("%v: its nodes and edges need %d bytes, more than the %d a slice holds on this platform: a shorter duration or fewer edges fit", ErrTooLarge, e.Count, e.Limit)
	}
	if e.Limit >= maxIndex {
		return fmt.Sprintf("%v: %d %s exceed the limit of %d, the most a graph can hold", ErrTooLarge, e.Count, e.What, e.Limit)
	}
	option := "MaxNodes"
	if e.What == "edges" {
		option = "MaxEdges"
	}
	return fmt.Sprintf("%v: %d %s exceed the limit of %d; Options.%s raises it, up to %d", ErrTooLarge, e.Count, e.What, e.Limit, option, maxIndex)
}

// Unwrap returns [ErrTooLarge].
func (e *SizeError) Unwrap() error { return ErrTooLarge }

// IDError reports a node ID that is malformed or names no node.
type IDError struct {
	// ID is the input, as given.
	ID string
	// Problem says what is wrong and what is allowed.
	Problem string
	// Err is ErrMalformedID or ErrUnknownNode.
	Err error
}

func (e *IDError) Error() string {
	return fmt.Sprintf("%v %s: %s", e.Err, quoteValue(e.ID), e.Problem)
}

// Unwrap returns ErrMalformedID or ErrUnknownNode.
func (e *IDError) Unwrap() error { return e.Err }

// NarrationError reports a narration length outside the tolerance.
type NarrationError struct {
	Seconds float64
}

func (e *NarrationError) Error() string {
	return fmt.Sprintf("%v: %gs is outside %gs to %gs (%ds ± %g%%)", ErrNarrationLength,
		e.Seconds, NarrationMinSeconds, NarrationMaxSeconds, SegmentSeconds, NarrationTolerance*100)
}

// Unwrap returns [ErrNarrationLength].
func (e *NarrationError) Unwrap() error { return ErrNarrationLength }
