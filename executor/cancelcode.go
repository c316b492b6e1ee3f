package executor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Cancel codes of the executor, which a cancelled run's Record.CancelledBy
// holds (see [Record]): what cancelled the run, for a program to branch
// on, where Record.Error says it for a person. A host gives codes of its
// own with [CancelCode]; none of these is one of them.
const (
	// CancelledByCancel: [Run.Cancel], or [Run.CancelCause] with a nil
	// cause.
	CancelledByCancel = "cancel"
	// CancelledByContext: the run's context was cancelled with
	// context.Canceled as its cause (a context.WithCancel's cancel, or a
	// context.WithCancelCause's function given nil).
	CancelledByContext = "context"
	// CancelledByDeadline: the run's context passed its deadline
	// (context.DeadlineExceeded, or a context.WithDeadlineCause's cause
	// without a code).
	CancelledByDeadline = "deadline"
	// CancelledByGraphReplaced: the run stopped because its graph was
	// replaced ([ErrGraphReplaced]).
	CancelledByGraphReplaced = "graph-replaced"
	// CancelledByGraphDeleted: the run stopped because its graph was
	// deleted ([ErrGraphDeleted]).
	CancelledByGraphDeleted = "graph-deleted"
	// CancelledByHost: a cause of the host's that has no code (given to
	// Run.CancelCause or to a context.WithCancelCause's function,
	// signal.NotifyContext's, or one that wraps ErrCancelled), or whose
	// code [CheckCancelCode] refuses, or whose methods panic.
	CancelledByHost = "host"
)

// MaxCancelCodeBytes is the longest cancel code that [CheckCancelCode]
// takes.
const MaxCancelCodeBytes = 64

// ErrInvalidCancelCode: a host's cancel code is not one that
// [CheckCancelCode] takes. The run is cancelled all the same (see
// [CancelCode]).
var ErrInvalidCancelCode = errors.New("executor: invalid cancel code")

// builtinCodes are the executor's own cancel codes, which a host's code
// may not be.
var builtinCodes = [...]string{CancelledByCancel, CancelledByContext, CancelledByDeadline,
	CancelledByGraphReplaced, CancelledByGraphDeleted, CancelledByHost}

// CancelCoder is implemented by a cancel cause that says the run's cancel
// code, as the errors of [CancelCode] do. The executor looks for one in
// the cause's chain with errors.As (the first found counts), as a run
// ends cancelled, and records its CancelCode in Record.CancelledBy. A
// host's own error type may implement it instead of being wrapped by
// CancelCode.
type CancelCoder interface {
	CancelCode() string
}

// CancelCode returns cause with a cancel code of the host's, to pass to
// [Run.CancelCause] or to a context.WithCancelCause's function (at
// shutdown, say): a run that it cancels says code in its record's
// CancelledBy, so that a host finds, at its next start, the runs that its
// own shutdown cancelled, and resumes them, apart from those that a user
// cancelled. The error's text is cause's, and it wraps cause, so that the
// run's error and Record.Error are what they would be for cause alone; a
// nil cause is [ErrCancelled].
//
// code must be what [CheckCancelCode] takes. CancelCode does not check
// it, so as to never lose a cancel: a run cancelled with a code that
// CheckCancelCode refuses (or whose CancelCode method panics) is
// cancelled all the same, records [CancelledByHost], and its error says
// so, wrapping [ErrInvalidCancelCode] too. So is a run whose cause's
// Error, Unwrap, Is or As panics (a typed nil pointer's that reads its
// fields, say): its error and its nodes' then wrap, in the cause's
// place, an error wrapping ErrInvalidCancelCode that says so, and not
// the cause. A host checks its codes once, at its start, with
// CheckCancelCode.
func CancelCode(code string, cause error) error {
	if cause == nil {
		cause = ErrCancelled
	}
	return &codedError{code: code, err: cause}
}

// codedError is the error of CancelCode.
type codedError struct {
	code string
	err  error
}

func (e *codedError) Error() string      { return e.err.Error() }
func (e *codedError) Unwrap() error      { return e.err }
func (e *codedError) CancelCode() string { return e.code }

// CheckCancelCode returns nil if code may be a host's cancel code: 1 to
// [MaxCancelCodeBytes] bytes, each a lower-case ASCII letter, a digit, or
// one of '-', '.', '_' and ':' (such as "shutdown" or "acme:deploy"), and
// not one of the executor's own codes (CancelledByCancel, ...,
// CancelledByHost). Otherwise it returns an error wrapping
// [ErrInvalidCancelCode] that says what is wrong.
func CheckCancelCode(code string) error {
	switch {
	case code == "":
		return fmt.Errorf("%w: the code is empty: want 1 to %d bytes of a-z, 0-9, '-', '.', '_' and ':'",
			ErrInvalidCancelCode, MaxCancelCodeBytes)
	case len(code) > MaxCancelCodeBytes:
		return fmt.Errorf("%w: code %.32q... is %d bytes long: want at most %d",
			ErrInvalidCancelCode, code, len(code), MaxCancelCodeBytes)
	case slices.Contains(builtinCodes[:], code):
		return fmt.Errorf("%w: code %q is the executor's own: want another (the executor's are %s)",
			ErrInvalidCancelCode, code, strings.Join(builtinCodes[:], ", "))
	}
	for i, c := range code {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.ContainsRune("-._:", c)) {
			return fmt.Errorf("%w: code %q has %q at byte %d: want only a-z, 0-9, '-', '.', '_' and ':'",
				ErrInvalidCancelCode, code, c, i)
		}
	}
	return nil
}

// cancelledBy returns the cancel code of a run cancelled with cause, its
// context's context.Cause, ctxErr being the context's Err: a host's code
// from a [CancelCoder] in cause's chain, if any, else the executor's own.
// A host's code that CheckCancelCode refuses gives CancelledByHost and
// the refusal (an error wrapping ErrInvalidCancelCode), as does a cause
// whose methods panic; else bad is nil.
func cancelledBy(cause, ctxErr error) (code string, bad error) {
	defer func() {
		if p := recover(); p != nil {
			code = CancelledByHost
			bad = fmt.Errorf("%w: the cancel cause, a %T, panicked in its methods: %v", ErrInvalidCancelCode, cause, p)
		}
	}()
	var c CancelCoder
	switch {
	case cause != nil && errors.As(cause, &c):
		code = c.CancelCode()
		if bad = CheckCancelCode(code); bad != nil {
			return CancelledByHost, bad
		}
		return code, nil
	case cause == ErrCancelled:
		return CancelledByCancel, nil
	case errors.Is(cause, ErrGraphReplaced):
		return CancelledByGraphReplaced, nil
	case errors.Is(cause, ErrGraphDeleted):
		return CancelledByGraphDeleted, nil
	case cause == context.DeadlineExceeded || ctxErr == context.DeadlineExceeded:
		return CancelledByDeadline, nil
	case cause == context.Canceled:
		return CancelledByContext, nil
	}
	return CancelledByHost, nil
}

// safeCause returns context.Cause(ctx), the cause of a run's cancel,
// or, when the cause's own methods panic (as those of a typed nil
// pointer that read its fields do, given to Run.CancelCause or to the
// cancel of the run's context), an error in its place that wraps
// ErrInvalidCancelCode and says so, and true: the executor calls the
// cause's Error, Is and As as the run ends (its nodes' errors and states,
// its record), in goroutines of its own where a panic would end the
// host's process. The cause's CancelCode is left to cancelledBy.
func safeCause(ctx context.Context) (cause error, replaced bool) {
	cause = context.Cause(ctx)
	if cause == nil {
		return nil, false
	}
	if bad := probeCause(cause); bad != nil {
		return bad, true
	}
	return cause, false
}

// probeCause calls what the executor calls of a cancel cause but its
// CancelCode, and returns an error wrapping ErrInvalidCancelCode if one
// panics, else nil.
func probeCause(cause error) (bad error) {
	defer func() {
		if p := recover(); p != nil {
			bad = fmt.Errorf("%w: the cancel cause, a %T, panicked in its methods: %v", ErrInvalidCancelCode, cause, p)
		}
	}()
	_ = cause.Error()
	_ = errors.Is(cause, ErrCancelled)
	var c CancelCoder
	_ = errors.As(cause, &c)
	return nil
}

// causeOf is context.Cause(ctx), made safe (see safeCause).
func causeOf(ctx context.Context) error {
	cause, _ := safeCause(ctx)
	return cause
}

// cause is the cause of the run's cancel, made safe (see safeCause).
func (r *run) cause() error { return causeOf(r.ctx) }
