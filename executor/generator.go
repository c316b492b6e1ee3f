package executor

import (
	"context"
	"slices"

	"github.com/regengraph/regen/graph"
)

// Request is what a [Generator] gets to regenerate one node.
type Request struct {
	// GraphKey identifies the graph, for example the lecture.
	GraphKey string
	// RunID identifies the run.
	RunID string
	// Node is the node's index in the run's graph.
	Node graph.Node
	// ID is the node's kind and segment; NodeID its text form.
	ID     graph.ID
	NodeID string
	// Rev is the revision of the node's own parameters, which the host
	// keeps and the generator reads (see Executor.Edit); an edit bumps it.
	Rev int64
	// Deps are the node's dependencies' outputs, read from the asset
	// store, in the graph's dependency order. The caller must not modify
	// their Data.
	Deps []Dep
	// Attempt counts from 1. An attempt whose read of the node's inputs
	// failed makes no call (see RetryPolicy), so a node's first call may
	// have an Attempt of 2 or more.
	Attempt int
	// IdempotencyKey is stable for the same graph, node and inputs:
	// "<graph key>/<node ID>/<input hash>/<making>", where making tells
	// one making of the key's graph from the next (a graph deleted and
	// made again, whose revisions start again from 0, gets new keys). It
	// is the same for every attempt of the node, in this run and in a
	// resume, and for a later run of the same inputs. A node made again
	// from the same inputs because it was forced (another take), or
	// because its stored output was lost, gets a key of its own, ending
	// in "/after-<16 hex digits>" that name the output it replaces, so
	// that a provider that deduplicates makes a new output rather than
	// return the old one. Pass it to a provider that deduplicates
	// requests, so a retried attempt is not billed twice.
	IdempotencyKey string
	// Progress reports node-level progress to the run's events. It is
	// never nil and is safe for concurrent use. Notes sent after Generate
	// returned, or after the attempt was abandoned, are dropped.
	Progress Reporter
}

// Dep is one dependency's output.
type Dep struct {
	Node   graph.Node
	NodeID string
	Asset  Asset
}

// Note is node-level progress from a generator. Its fields longer than
// [MaxEventText] bytes are cut (Message, Reasoning) or left out
// (PreviewURL, which a cut would break: the event's Message then ends
// with "[preview URL of N bytes left out]") in the event.
type Note struct {
	Message    string
	PreviewURL string
	Reasoning  string
}

// Reporter receives node-level progress. Each note becomes a "message"
// event of the run.
type Reporter interface {
	Report(Note)
}

// ReporterFunc adapts a function to a [Reporter].
type ReporterFunc func(Note)

// Report calls f.
func (f ReporterFunc) Report(n Note) { f(n) }

// Generator regenerates one node: it makes the node's asset from its
// request and returns it, with its content hash (when Hash is empty the
// executor hashes Data, or URL when there is no Data). An asset returned
// with a nil error is the node's output, a zero Asset too (an empty
// output), unlike a bulk call's empty [Outcome], a slot left unfilled.
// It must honour ctx; one that does not still cannot hold the run,
// because the executor stops waiting at the attempt's deadline, or a
// grace after a cancel, and throws the late result away. At a cancel of
// the run, ctx ends and the call has a grace of a tenth of the kind's
// Timeout, at most a second (cut to Options.StoreTimeout, and ending at
// the attempt's deadline at the latest), to return the
// output it has made, which is kept (stored and committed), so that a
// resume does not pay for it again; a run stopped because its graph was
// replaced or deleted gives no grace. A returned error is retried by the kind's retry policy
// unless it wraps a [*PermanentError]. A panic in Generate is recovered
// and becomes a [*PanicError] for that node alone; the run goes on.
// Generate may be called concurrently for different nodes. ctx and
// req.Progress serve the one call: ctx is cancelled when Generate returns
// (a goroutine that watches it then ends), and notes sent after the
// return are dropped, while req and its Deps stay the generator's to
// keep. Once Generate has returned its asset, a cancel of the run does
// not interrupt the asset's Put nor its commit: the result was paid for.
type Generator interface {
	Generate(ctx context.Context, req Request) (Asset, error)
}

// GeneratorFunc adapts a function to a [Generator].
type GeneratorFunc func(ctx context.Context, req Request) (Asset, error)

// Generate calls f.
func (f GeneratorFunc) Generate(ctx context.Context, req Request) (Asset, error) { return f(ctx, req) }

// Outcome is one node's result in a bulk call: its output, or the error
// of its attempt. An Outcome that is entirely zero (no Asset field set,
// no Err), as a slot of the call's result that its generator forgot to
// fill is, is no output: it fails the node's attempt with an error
// wrapping [ErrInvalidOutput] that names the node, and the node is
// retried alone, as after any failure in the batch. In a call that
// returns in its grace, once its context ended (see [BatchGenerator]),
// such a slot is a node that the call cut short, as one whose Err is the
// context's error: a timeout, or the run's cancel.
type Outcome struct {
	Asset Asset
	Err   error
}

// empty reports whether o is entirely zero: no output and no error.
func (o *Outcome) empty() bool {
	a := &o.Asset
	return o.Err == nil && a.Data == nil && a.URL == "" && a.Hash == "" && a.Length == 0 && a.Meta == nil
}

// BatchGenerator is a [Generator] that can also regenerate many nodes in
// one call, for hosts whose orchestrators already batch prompts and
// throttle providers. The executor detects it by type assertion and calls
// GenerateBatch with ready nodes of one batch key, up to the free slots
// of the key (each node holds one, within Options.MaxBatch), in node
// order: nodes of one kind, or of all the kinds of the key that
// Options.Generators gives this same BatchGenerator (the same comparable
// value, typically one pointer; a value that cannot be compared, such as
// a struct with a func field, shares with no other kind), so that a host
// with a kind per tile and one bulk client gets calls of many tiles.
// Each request's ID names its node's kind. Kinds of one key with other
// generators have calls of their own, so a GenerateBatch that must see
// one kind a call is registered as a value of its own for each kind
// (releases before sharing always made calls of one kind). In a call
// that spans kinds, each
// node keeps its own kind's options (its Validate, its retry policy and
// its Timeout when retried alone), and the call has the longest
// BatchTimeout and, in Dataflow mode, waits up to the longest BatchWindow
// among its kinds (see [KindOptions]). In
// Dataflow mode nodes become ready one by one, as their dependencies end,
// so that a call often gets one node: the kind's
// [KindOptions].BatchWindow lets a call wait a moment for more. The
// nodes of a kind without a batch key are no batch: each is a call of
// Generate, within the cap on singles (see Options.Workers), and the
// first run of a graph with such a kind whose generator is a
// BatchGenerator logs a warning (Options.Logger) that names the kind,
// once per kind, as its GenerateBatch goes unused. It returns one
// outcome per request, in order. A call that returns another number of
// outcomes fails as a whole: the executor logs a warning (Options.Logger)
// that names the call's kinds, the batch key and the two counts, and retries
// every node of the call alone with Generate, as after a failed first
// attempt (a kind whose Retry allows one attempt fails them). A node that
// fails in the batch is retried alone with Generate; the others are kept. A panic fails the
// whole call, and every node is then retried alone; it is a [*PanicError]
// with its stack (In "bulk call"), logged once through Options.Logger. The kind's BatchTimeout
// (by default its Timeout; see [KindOptions]; the longest of its kinds'
// for a call that spans kinds) bounds the whole call: at its end the call's context ends, and the
// call has a grace of a tenth of the timeout, at most a second, to return
// what it has made, which is kept, while each node cut short (its outcome
// the context's error) is retried alone, as timed out; the timeout is
// logged (Options.Logger) with the call's batch key and kinds. A cancel of the
// run ends the call's context too, with the same grace, cut to
// Options.StoreTimeout (after which the run stores nothing more): the
// outputs it returns then are kept (stored and committed, as a single generator's
// output returned within its own grace is), and each node it cut short is
// cancelled, so that a resume pays only for those. A run that stops
// because its graph was replaced or deleted ([ErrGraphReplaced],
// [ErrGraphDeleted]) gives no grace: no resume could use the outputs, so
// the call is abandoned at once, as a single generator's call is then, and its
// nodes are cancelled, nothing of it stored. Each node's kind's
// Validate checks its output within that grace too. A call that does
// not return, or whose checks do not end, in its grace is abandoned, and
// all its nodes are retried alone (cancelled, after a cancel).
type BatchGenerator interface {
	Generator
	GenerateBatch(ctx context.Context, reqs []Request) []Outcome
}

// Registry maps node kinds to their generators.
type Registry map[string]Generator

// Missing returns the kinds, among those given, that have no generator,
// sorted and without duplicates.
func (r Registry) Missing(kinds ...string) []string {
	var out []string
	for _, k := range kinds {
		if r[k] == nil {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
