package executor

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/regengraph/regen/planner"
)

// Sentinel errors of the executor.
var (
	// ErrMissingGenerator: a kind in the plan has no generator. A
	// [*MissingGeneratorError] wraps it.
	ErrMissingGenerator = errors.New("executor: missing generator")
	// ErrRunFailed: some nodes failed. A [*RunError] wraps it.
	ErrRunFailed = errors.New("executor: run failed")
	// ErrCancelled: the run was cancelled, by its context or [Run.Cancel].
	ErrCancelled = errors.New("executor: run cancelled")
	// ErrTimeout: an attempt outlived its kind's timeout. A
	// [*TimeoutError] wraps it.
	ErrTimeout = errors.New("executor: attempt timed out")
	// ErrInvalidOutput: a kind's validator refused a generator's output,
	// or its URL, Hash or Meta is not valid UTF-8 without NUL, or a bulk
	// call's [Outcome] for a node is empty. A validator's refusal and an
	// empty Outcome fail the attempt, which is retried; text that is not
	// valid UTF-8 without NUL, a bug of the generator that a retry would
	// make again, fails the node at once (a [*PermanentError] wraps it).
	ErrInvalidOutput = errors.New("executor: invalid output")
	// ErrInvalidRequest: the caller's input was refused, and nothing was
	// done: a bad [Options] value ([New]); a bad [RunRequest] of Start,
	// Run or Plan (no graph, an empty graph key, text that is not valid
	// UTF-8 without NUL, a run ID taken, or a bad mark, whose
	// [*dirty.MarkError] it wraps too, and so [dirty.ErrInvalidMark] and
	// the graph's error); an Edit of no node, of a malformed or unknown
	// node ID (a [*graph.IDError], wrapping [graph.ErrMalformedID] or
	// [graph.ErrUnknownNode], which it wraps too), or with a graph not the
	// key's that Edit could not take for it (a [*GraphMismatchError]); a
	// Forget with a graph not the key's, or of a key without one; a
	// Resume or RerunFailed with a graph not the run's, or of a run whose
	// graph is no longer the key's (with [ErrGraphReplaced] or
	// [ErrGraphDeleted]), or of a run that Abandon recorded, or bad
	// [ResumeOptions]; an Abandon with an empty run ID or reason.
	// errors.Is finds it, and errors.As the specific error, in each: the
	// same call made again is refused again, and a host answers all of
	// them as bad input (HTTP 400, say) by this one check. A call refused
	// because of what is under way in the executor is no bad input: it
	// wraps [ErrBusy] instead.
	ErrInvalidRequest = errors.New("executor: invalid request")
	// ErrBusy: a call about a run was refused, and nothing was done,
	// because of a call or a run under way in this executor, which it
	// must not overlap: a Resume, RerunFailed or Abandon of a run that is
	// still going on here, its record saying running (a Resume or
	// RerunFailed of a run whose record says it ended waits for its end
	// instead, see [Executor.Resume]); a Resume or
	// RerunFailed of a run of a graph key while another Resume or
	// RerunFailed of the key is under way (its call, or the run it
	// started, until that run has ended); a Resume, RerunFailed or
	// Abandon of a run while an Abandon of it, or a refused Resume that
	// records it as interrupted, is under way, or an Abandon of a run
	// that a Resume of it is resuming. The request was good: the same
	// call made once that has ended may well be taken (the error says
	// what to wait for), so a host answers it as a conflict to retry
	// later (HTTP 409, say, with Retry-After), not as bad input. It never
	// wraps [ErrInvalidRequest]. A store's refusal of a graph key that
	// another process runs may match it too, so that one check answers
	// both (github.com/regengraph/regen/executor/pgstore's *LockedError
	// does).
	ErrBusy = errors.New("executor: busy")
	// ErrClosed: the executor was closed ([Executor.Close]): it starts no
	// run, and calls its stores no more (Edit, Plan, Abandon, Forget,
	// Output and Outputs).
	ErrClosed = errors.New("executor: closed")
	// ErrGraphReplaced: a run of another graph on the run's graph key (a
	// lecture made longer or shorter, another template) started after it,
	// so the key's graph is that run's, or newer runs made the run's
	// graph again (after a DeleteGraph, or another graph's run): the run
	// stopped, as cancelled, and committed nothing more; or a Resume or
	// RerunFailed of a run of an older graph was refused (with
	// [ErrInvalidRequest]). See [GraphStateID].
	ErrGraphReplaced = errors.New("executor: graph replaced by a newer run")
	// ErrGraphDeleted: the graph's states were deleted during the run
	// (DeleteGraph): the run stopped, as cancelled, and committed nothing
	// more, so that it does not make the graph again; nor does it write
	// its record again if the deletion deleted it (the DeleteGraph of
	// MemoryStore and of pgstore deletes the graph's run records too):
	// its Report keeps the record, and its stream still ends. Or a Resume
	// or RerunFailed of a run of a deleted graph was refused (with
	// [ErrInvalidRequest]).
	ErrGraphDeleted = errors.New("executor: graph deleted during the run")
	// ErrTemplateMismatch: [Executor.CheckTemplates] found Options that
	// do not match the templates. A [*TemplateMismatchError] wraps it.
	ErrTemplateMismatch = errors.New("executor: options do not match the templates")
	// ErrNotClean: [Executor.Output] was asked for the output of a node
	// whose state is not clean (dirty, running, failed or cancelled): its
	// stored asset, if any, is not made from its current inputs. The
	// error names the node's status.
	ErrNotClean = errors.New("executor: node not clean")
)

// TemplateMismatchError lists, each sorted, what of an executor's Options
// matches nothing in the templates that [Executor.CheckTemplates] was
// given.
type TemplateMismatchError struct {
	// Missing: kinds with no generator in Options.Generators.
	Missing []string
	// UnknownKinds: names in Options.Kinds that are no kind.
	UnknownKinds []string
	// UnknownKeys: keys in Options.Rates or Options.Limits that are no
	// kind's batch key.
	UnknownKeys []string
	// IdleBatchOptions: kinds given a BatchWindow or a BatchTimeout in
	// Options.Kinds that no bulk call takes: without a batch key, or
	// whose generator is not a BatchGenerator.
	IdleBatchOptions []string
}

func (e *TemplateMismatchError) Error() string {
	var parts []string
	for _, p := range []struct {
		names []string
		what  string
	}{
		{e.Missing, "kinds without a generator in Options.Generators"},
		{e.UnknownKinds, "names in Options.Kinds that are no kind of the templates"},
		{e.UnknownKeys, "keys in Options.Rates or Options.Limits that are no batch key of the templates"},
		{e.IdleBatchOptions, "kinds with a BatchWindow or a BatchTimeout that no bulk call takes (give them a batch key and a BatchGenerator)"},
	} {
		if len(p.names) > 0 {
			parts = append(parts, fmt.Sprintf("%s: %s", p.what, firstNames(p.names, quote)))
		}
	}
	return fmt.Sprintf("%v: %s", ErrTemplateMismatch, strings.Join(parts, "; "))
}

// Unwrap returns [ErrTemplateMismatch].
func (e *TemplateMismatchError) Unwrap() error { return ErrTemplateMismatch }

// GraphMismatchError refuses an [Executor.Edit] (or [EditChanges]) whose
// graph is not the key's graph, the graph of its newest run, when Edit
// could not make it an edit of the key's graph (see Edit): the key's
// graph has not some node named (Missing), or it is of another template,
// or it was not found (no record of it, and the key's states did not
// bound it). Nothing was committed. It wraps
// [ErrInvalidRequest]. A host reloads the key's graph, the one whose
// [Fingerprint] is Current (with [GraphOf], from the newest of the key's
// records whose Record.Graph is Current), checks that the edit still
// means something for it, and calls Edit again with it.
type GraphMismatchError struct {
	// GraphKey is the graph key of the edit.
	GraphKey string
	// Given is the fingerprint of the graph given.
	Given string
	// Current is the fingerprint of the key's graph, as [GraphStateID]
	// keeps it, and as Record.Graph of the key's newest run has it.
	Current string
	// Missing lists the node IDs named that the key's graph has not, in
	// the order of the graph given, when Edit found the key's graph; it
	// is nil when it did not (another template, the key's graph not
	// found, or from EditChanges, which does not look for it).
	Missing []string
}

func (e *GraphMismatchError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v: edit %s: the graph given (fingerprint %s) is not the key's graph (%s, of its newest run)",
		ErrInvalidRequest, quote(e.GraphKey), short(e.Given), short(e.Current))
	if len(e.Missing) > 0 {
		fmt.Fprintf(&b, ", which has no node %s", firstNames(e.Missing, nil))
	}
	b.WriteString(": edit with the graph of the key's newest run (see Fingerprint and Record.Graph), or, to change the key's graph, " +
		"start a run of the new graph with the edits as its edited marks")
	return b.String()
}

// Unwrap returns [ErrInvalidRequest].
func (e *GraphMismatchError) Unwrap() error { return ErrInvalidRequest }

// firstNames joins the first maxUnusedNamed of names, each through
// show when it is not nil, and says how many more there are.
func firstNames(names []string, show func(string) string) string {
	shown := slices.Clone(names[:min(len(names), maxUnusedNamed)])
	if show != nil {
		for i, n := range shown {
			shown[i] = show(n)
		}
	}
	s := strings.Join(shown, ", ")
	if more := len(names) - maxUnusedNamed; more > 0 {
		s += fmt.Sprintf(" and %d more", more)
	}
	return s
}

// MissingGeneratorError lists the kinds of a plan that have no generator.
// Nothing ran.
type MissingGeneratorError struct {
	Kinds []string
	// Unused lists, sorted, the names in Options.Generators that the
	// graph has no kind of: a misspelt kind is among them. The error's
	// text names the first 8.
	Unused []string
}

func (e *MissingGeneratorError) Error() string {
	msg := fmt.Sprintf("%v for kinds %s: register one per kind in Options.Generators", ErrMissingGenerator, strings.Join(e.Kinds, ", "))
	if len(e.Unused) > 0 {
		// A registry shared by many templates may hold many: the text
		// names the first few, as a hint.
		msg += fmt.Sprintf(" (it has generators for names the graph has no kind of: %s)", firstNames(e.Unused, nil))
	}
	return msg
}

// maxUnusedNamed is the most names of MissingGeneratorError.Unused that
// its text names.
const maxUnusedNamed = 8

// missingGenerators returns a *MissingGeneratorError if some kind of plan
// has no generator in reg, and nil otherwise.
func missingGenerators(reg Registry, plan *planner.Plan) error {
	missing := reg.Missing(planKinds(plan)...)
	if len(missing) == 0 {
		return nil
	}
	g := plan.Graph
	kinds := make(map[string]bool, g.Kinds())
	for k := range g.Kinds() {
		kinds[g.KindName(k)] = true
	}
	var unused []string
	for name := range reg {
		if !kinds[name] {
			unused = append(unused, name)
		}
	}
	slices.Sort(unused)
	return &MissingGeneratorError{Kinds: missing, Unused: unused}
}

// Unwrap returns [ErrMissingGenerator].
func (e *MissingGeneratorError) Unwrap() error { return ErrMissingGenerator }

// NodeError is a node's failure: its last attempt's error.
type NodeError struct {
	// Node is the node ID.
	Node string
	// Attempt is the number of the last attempt.
	Attempt int
	Err     error
}

func (e *NodeError) Error() string {
	return fmt.Sprintf("node %s (attempt %d): %v", e.Node, e.Attempt, e.Err)
}

// Unwrap returns the attempt's error.
func (e *NodeError) Unwrap() error { return e.Err }

// RunError is a run that ended with failed nodes. It wraps
// [ErrRunFailed] and each node's [*NodeError], so errors.Is and errors.As
// reach them.
type RunError struct {
	RunID string
	// Failed are the failed nodes' errors, by node in the graph's order
	// (not the order they failed in, which varies from run to run), so
	// that the same failures give the same list and the same text.
	Failed []*NodeError
}

// The most node errors the text of a [RunError] lists, and the most
// bytes of each.
const (
	maxListedFailures = 10
	maxListedBytes    = 1000
)

// Error says how many nodes failed and gives the errors of the first 10,
// one a line, each cut at 1,000 bytes, then how many more failed: the
// text is the run's record's Error and its final event's, which must stay
// small when thousands of nodes fail (a provider down for a long graph)
// or a provider's error is a whole page. Failed holds them all, in full.
func (e *RunError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v: run %s: %d node(s) failed", ErrRunFailed, quote(e.RunID), len(e.Failed))
	for i, f := range e.Failed {
		if i == maxListedFailures {
			fmt.Fprintf(&b, "\n\t... and %d more", len(e.Failed)-i)
			break
		}
		b.WriteString("\n\t")
		text := f.Error()
		if len(text) > maxListedBytes {
			cut := maxListedBytes
			for cut > 0 && !utf8.RuneStart(text[cut]) {
				cut--
			}
			text = text[:cut] + "..."
		}
		b.WriteString(text)
	}
	return b.String()
}

// Unwrap returns ErrRunFailed and the node errors.
func (e *RunError) Unwrap() []error {
	errs := []error{ErrRunFailed}
	for _, f := range e.Failed {
		errs = append(errs, f)
	}
	return errs
}

// PanicError is a generator's panic, recovered, with the stack of the
// goroutine that panicked. A single generator's panic fails its node at
// once. A bulk call's panic (In "bulk call") says nothing about each of
// its nodes: each is retried alone, as after any failed bulk call, and a
// node whose attempts end with it keeps it in its [*NodeError]; the
// panic is logged once a call, with its stack, through Options.Logger,
// as its nodes may well succeed alone. An error that a generator, a bulk
// call's outcome or a validator returned, and whose own methods panic (a
// typed nil pointer, var e *MyErr; return e, whose Error reads its
// fields), is replaced by a PanicError too, whose Value says so: it fails
// its node at once, rather than the host's process when it is reported.
// So is a store's error whose methods panic (In "store"): the store call
// fails, as after any error that no retry can fix.
type PanicError struct {
	Value any
	Stack []byte
	// In is what panicked: "generator" when empty, "validator", "bulk
	// call" (a BatchGenerator's GenerateBatch), or "store" (the methods
	// of an error that a store returned).
	In string
}

// inBulkCall is PanicError.In of a bulk call's panic, which is retried.
const inBulkCall = "bulk call"

// inStore is PanicError.In of a store's error whose methods panicked.
const inStore = "store"

func (e *PanicError) Error() string {
	in := e.In
	if in == "" {
		in = "generator"
	}
	return fmt.Sprintf("%s panicked: %v", in, e.Value)
}

// TimeoutError is an attempt that outlived its kind's timeout; its late
// result, if any, was thrown away.
type TimeoutError struct {
	// Timeout is the bound it outlived: the kind's Timeout, or for a
	// node of a bulk call, the call's: its KindOptions.BatchTimeout, the
	// longest of the call's kinds when the call spans kinds that share a
	// BatchGenerator.
	Timeout time.Duration
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("%v after %v", ErrTimeout, e.Timeout)
}

// Unwrap returns [ErrTimeout].
func (e *TimeoutError) Unwrap() error { return ErrTimeout }

// PermanentError marks an error that retrying cannot fix: the node fails
// at once. Make one with [Permanent].
type PermanentError struct {
	Err error
}

func (e *PermanentError) Error() string { return e.Err.Error() }

// Unwrap returns the wrapped error.
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err so that the executor does not retry it. It returns
// nil for a nil err.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// errPrefix starts the text of every sentinel error of the package.
const errPrefix = "executor: "

// sentinels are the package's sentinel errors, whose text starts with
// errPrefix.
var sentinels = [...]error{
	ErrMissingGenerator, ErrRunFailed, ErrCancelled, ErrTimeout, ErrInvalidOutput,
	ErrInvalidRequest, ErrBusy, ErrClosed, ErrGraphReplaced, ErrGraphDeleted,
	ErrInvalidAge, ErrConflict, ErrNotFound, ErrNotClean, errStoresLate,
}

// errStoresLate is the cause with which the store calls of a cancelled run
// end when the stores have not answered within Options.StoreTimeout of the
// cancel (see run.boundStoreCalls).
var errStoresLate = errors.New("executor: the stores did not answer")

// ownText returns the text of err without its "executor: " if the
// package's words start it: the text starts with that of a sentinel of
// the package which err wraps (the sentinel itself, a wrapError, an
// error made by fmt.Errorf("%w: ...", sentinel)). The text of any other
// error, a host's whose text happens to start with "executor: " too, is
// returned whole.
func ownText(err error) string {
	text := errText(err)
	if !strings.HasPrefix(text, errPrefix) {
		return text
	}
	for _, s := range sentinels {
		if strings.HasPrefix(text, s.Error()) && errors.Is(err, s) {
			return strings.TrimPrefix(text, errPrefix)
		}
	}
	return text
}

// wrapError is an error of the package that wraps one of its sentinels,
// outer, and another error, inner: a second sentinel, or an error whose
// text may start with one (a run's cancel cause, a store's error). Its
// text says "executor:" once: outer's text, what it is about (if any),
// inner's text without the "executor: " of the package's own (see
// ownText), and a detail (if any), joined by ": ", as in "executor:
// invalid request: graph replaced by a newer run: ...". errors.Is and
// errors.As find both. Make one with wrap.
type wrapError struct {
	outer, inner error
	what, detail string
}

// wrap returns the error of outer, about what, for inner, with a
// detail; what and detail may be empty.
func wrap(outer error, what string, inner error, detail string) error {
	return &wrapError{outer: outer, inner: inner, what: what, detail: detail}
}

func (e *wrapError) Error() string {
	var b strings.Builder
	b.WriteString(e.outer.Error())
	for _, s := range [...]string{e.what, ownText(e.inner), e.detail} {
		if s != "" {
			b.WriteString(": ")
			b.WriteString(s)
		}
	}
	return b.String()
}

// Unwrap returns outer and inner.
func (e *wrapError) Unwrap() []error { return []error{e.outer, e.inner} }

// retryable reports whether err may be retried: a panic is not, but a
// bulk call's, whose nodes are retried alone.
func retryable(err error) bool {
	var p *PermanentError
	var pe *PanicError
	return !errors.As(err, &p) && (!errors.As(err, &pe) || pe.In == inBulkCall)
}
