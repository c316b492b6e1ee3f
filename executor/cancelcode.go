package executor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Cancel codes of the executor, which a cancelled run's Record.CancelledBy
// holds (see [Record]): what cancelled the run, for a program to branch
// on, where Record.Error says it for a person. A host gives codes of its
// own with [CancelCode]; none of these is one of them.
const (
	// CancelledByCancel: [Run.Cancel], or [Run.CancelCause] with a nil
	// cause (or ErrCancelled itself), cancelled the run first.
	CancelledByCancel = "cancel"
	// CancelledByContext: the run's context (Start's ctx) was cancelled
	// with context.Canceled as its cause (a context.WithCancel's cancel,
	// or a context.WithCancelCause's function given nil), before any
	// Run.Cancel or Run.CancelCause. context.Canceled given to
	// Run.CancelCause (a request's ctx.Err(), say) is CancelledByHost.
	CancelledByContext = "context"
	// CancelledByDeadline: the run's context passed its deadline (its Err
	// is context.DeadlineExceeded, whose cause is that or a
	// context.WithDeadlineCause's cause without a code), before any
	// Run.Cancel or Run.CancelCause. context.DeadlineExceeded given to
	// Run.CancelCause, or to a context.WithCancelCause's function, is
	// CancelledByHost: no deadline passed.
	CancelledByDeadline = "deadline"
	// CancelledByGraphReplaced: the run stopped because its graph was
	// replaced ([ErrGraphReplaced]).
	CancelledByGraphReplaced = "graph-replaced"
	// CancelledByGraphDeleted: the run stopped because its graph was
	// deleted ([ErrGraphDeleted]).
	CancelledByGraphDeleted = "graph-deleted"
	// CancelledByHost: a cause of the host's that has no code, given to
	// Run.CancelCause (any but ErrCancelled: context.Canceled,
	// context.DeadlineExceeded and ErrGraphReplaced too, as the code
	// follows where a cancel came from, not what its cause is) or to a
	// context.WithCancelCause's function (signal.NotifyContext's too,
	// ErrCancelled and context.DeadlineExceeded too, or one that wraps
	// ErrCancelled), or whose code [CheckCancelCode] refuses, or whose
	// methods panic.
	CancelledByHost = "host"
	// CancelledByDrain: [Run.Drain] or [Executor.Drain] drained the run,
	// with a cause that has no code of the host's, and no cancel came
	// before the calls under way had ended: it started no node from the
	// drain on, and its calls under way ended and were recorded.
	CancelledByDrain = "drain"
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
	CancelledByGraphReplaced, CancelledByGraphDeleted, CancelledByHost, CancelledByDrain}

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
// nil cause is [ErrCancelled], and the error's text then names code
// (`executor: cancelled (code "shutdown")`), as does a cancelled run's
// error: a host's log of the cause reads as a stop, not a failure.
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

// Error is the cause's text, or, for ErrCancelled (a nil cause), one
// that names the code: ErrCancelled's own says that a run was cancelled,
// which a host's log of a shutdown's cause (not a run's) misreads.
func (e *codedError) Error() string {
	if e.err == ErrCancelled {
		return fmt.Sprintf("executor: cancelled (code %q)", e.code)
	}
	return e.err.Error()
}

func (e *codedError) Unwrap() error      { return e.err }
func (e *codedError) CancelCode() string { return e.code }

// CheckCancelCode returns nil if code may be a host's cancel code: 1 to
// [MaxCancelCodeBytes] bytes, each a lower-case ASCII letter, a digit, or
// one of '-', '.', '_' and ':' (such as "shutdown" or "acme:deploy"), and
// not one of the executor's own codes (CancelledByCancel, ...,
// CancelledByHost, CancelledByDrain). Otherwise it returns an error wrapping
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

// cancelOrigin keeps, for a run's handle, whether its Run.Cancel or
// Run.CancelCause cancelled the run first, before its context (Start's
// ctx) ended or the executor stopped it, as only the first cancel counts.
type cancelOrigin struct {
	ctx      context.Context // the run's
	mu       sync.Mutex
	byHandle bool  // the handle's first cancel found the run's context live
	cause    error // the cause it gave
	drained  bool  // that cancel ended a drain (see Run.Drain)
}

// cancelByHandle cancels the run with cause, as Run.Cancel and
// Run.CancelCause do, and notes that it did so first if the run's context
// had not ended. It notes so before the cancel, under the origin's mutex,
// which cancelledBy takes too: a run that ends once the cancel is done
// finds the note. The context may end all the same between the check
// and the cancel (Start's ctx's cancel, the executor's stop); cancelledBy
// then finds that the context's cause or Err is not the handle's.
func (r *Run) cancelByHandle(cause error) {
	o := &r.origin
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.byHandle && o.ctx.Err() == nil {
		o.byHandle, o.cause = true, cause
	}
	r.cancel(cause)
}

// cancelledBy returns the cancel code of the run, whose context has
// ended, cause being its context.Cause made safe (see safeCause), as the
// package-level cancelledBy does, but for where the cancel came from: a
// run that its handle cancelled first gives the host's code, if its cause
// has one, CancelledByDrain for the end of a drain (see endDrain),
// CancelledByCancel for ErrCancelled (Run.Cancel) and
// CancelledByHost for any other cause, context.Canceled and
// context.DeadlineExceeded among them. When the context's cause is not
// the one the handle gave, or its Err is context.DeadlineExceeded (which
// a cancel function never gives), the context ended first, or the
// executor stopped the run; a context that ended with a cause equal to
// the handle's as the handle cancelled it, the two at once, counts as the
// handle's (so does one of its type, when == cannot compare them: see
// sameError).
func (r *Run) cancelledBy(cause error) (code string, bad error) {
	o := &r.origin
	o.mu.Lock()
	byHandle, given, drained := o.byHandle, o.cause, o.drained
	o.mu.Unlock()
	ctxErr := o.ctx.Err()
	if !byHandle || ctxErr == context.DeadlineExceeded || !sameError(context.Cause(o.ctx), given) {
		return cancelledBy(cause, ctxErr)
	}
	defer func() {
		if p := recover(); p != nil {
			code = CancelledByHost
			bad = fmt.Errorf("%w: the cancel cause, a %T, panicked in its methods: %v", ErrInvalidCancelCode, cause, p)
		}
	}()
	if code, bad, ok := hostCode(cause); ok {
		return code, bad
	}
	if drained {
		return CancelledByDrain, nil
	}
	if cause == ErrCancelled {
		return CancelledByCancel, nil
	}
	return CancelledByHost, nil
}

// sameError says whether a, the run's context's cause, is b, the cause
// its handle gave: a == b, or, when == panics (a value of a type that it
// cannot compare, as a struct with a slice, a map, or an interface field
// holding one), true, as == panics only for two values of one type: the
// executor's own causes (ErrGraphReplaced, ErrGraphDeleted, wrapped or
// not, context.Canceled) are pointers, never of such a type, so a is the
// cause the handle gave, or one of its type that the run's context got
// at the same instant, which counts as the handle's, as an equal cause
// does. (Taken as
// another cause, the handle's cancel with a host's multi-error that
// wraps ErrGraphReplaced said CancelledByGraphReplaced.)
func sameError(a, b error) (same bool) {
	defer func() {
		if recover() != nil {
			same = true
		}
	}()
	return a == b
}

// hostCode returns the code of a [CancelCoder] in cause's chain, the first
// found, and ok; a code that CheckCancelCode refuses gives
// CancelledByHost and the refusal. It returns ok false if the chain has
// none. It panics if cause's methods do.
func hostCode(cause error) (code string, bad error, ok bool) {
	var c CancelCoder
	if cause == nil || !errors.As(cause, &c) {
		return "", nil, false
	}
	code = c.CancelCode()
	if bad = CheckCancelCode(code); bad != nil {
		return CancelledByHost, bad, true
	}
	return code, nil, true
}

// cancelledBy returns the cancel code of a run cancelled with cause, its
// context's context.Cause, ctxErr being the context's Err, when the
// context ended first (Start's ctx, or its cause given to the run's
// context's cancel by the executor's stop) and not the run's handle (see
// [Run.cancelledBy]): a host's code from a [CancelCoder] in cause's
// chain, if any, else the executor's own, which follows what ended the
// context: CancelledByDeadline for a deadline (ctxErr
// context.DeadlineExceeded), CancelledByContext for context.Canceled,
// CancelledByGraphReplaced and CancelledByGraphDeleted for the executor's
// stop, and CancelledByHost for any other cause, context.DeadlineExceeded
// or ErrCancelled given to a cancel function among them. A host's code
// that CheckCancelCode refuses gives CancelledByHost and the refusal (an
// error wrapping ErrInvalidCancelCode), as does a cause whose methods
// panic; else bad is nil.
func cancelledBy(cause, ctxErr error) (code string, bad error) {
	defer func() {
		if p := recover(); p != nil {
			code = CancelledByHost
			bad = fmt.Errorf("%w: the cancel cause, a %T, panicked in its methods: %v", ErrInvalidCancelCode, cause, p)
		}
	}()
	if code, bad, ok := hostCode(cause); ok {
		return code, bad
	}
	switch {
	case errors.Is(cause, ErrGraphReplaced):
		return CancelledByGraphReplaced, nil
	case errors.Is(cause, ErrGraphDeleted):
		return CancelledByGraphDeleted, nil
	case ctxErr == context.DeadlineExceeded:
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
