package executor

import (
	"crypto/sha256"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/regengraph/regen/executor/schedule"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/progress"
)

// Mode says when a node may start. See [Dataflow] and [Staged].
type Mode = schedule.Mode

// The modes.
const (
	// Dataflow starts a node as soon as its own dependencies are done,
	// under the batch keys' limits. It is the default.
	Dataflow = schedule.Dataflow
	// Staged runs the plan's stages in order: the groups of a stage in
	// parallel, the next stage once the whole stage has settled.
	Staged = schedule.Staged
)

// Rate limits the starts of one batch key: at most Starts (an int) per
// Per (a time.Duration), as in Rate{Starts: 3, Per: time.Second}. It is
// [schedule.Rate], whose fields go doc lists there.
type Rate = schedule.Rate

// RetryPolicy says how a kind's failed attempts are retried. Zero fields
// take their defaults; [New] refuses a value out of the range a field's
// doc gives. An error wrapped with [Permanent], a generator's
// panic ([PanicError]), and an output whose URL, Hash or Meta is not
// valid UTF-8 without NUL (see [ErrInvalidOutput]) are never retried; a bulk call's panic (a
// PanicError whose In is "bulk call") is, each of its nodes alone. A node waits out its backoff
// holding its worker and its batch key's slot, so that the nodes behind
// it under the key wait too; a node that failed in a bulk call is retried
// alone, with Generate. A node's attempt reads its dependencies' outputs
// first, until a read succeeds: a read that fails with an error that may
// pass (the asset store's calls are retried within the read, with
// backoff, within Options.StoreRetry) is a failed attempt, retried as a failed call
// is, its error the node's (a node of a bulk call is then retried alone);
// a lost output ([ErrNotFound]) or an error wrapped in Permanent fails
// the node at once, that read not counted as an attempt.
type RetryPolicy struct {
	// MaxAttempts is the most attempts per node, the first included: 0
	// (the default) or more. An output made and paid for whose Put kept
	// failing is not made again: the node's next attempts only put it
	// again, and each counts as an attempt; a cancel of the run puts it
	// once more, as the next attempt, if one is left (not a run stopped
	// because its graph was replaced or deleted: no resume could use
	// it). Nor is an output made and stored whose commit kept failing
	// (its retries within Options.StoreRetry spent): the node's next
	// attempts, after their backoff (cut short by a cancel of the run,
	// whose commits Options.StoreTimeout then bounds), commit it again,
	// each counting as an attempt, with a node.retrying; meanwhile the
	// results of the run's other nodes are committed as they come. Once its attempts
	// are used up the node fails ("record result: ..."), and the resume
	// or rerun that follows makes it again: no state refers to the stored
	// output, which a prune of unreferenced assets then deletes. Default:
	// 3.
	MaxAttempts int
	// InitialInterval is the wait before the second attempt: 0 (the
	// default) or more. Default: 1s.
	InitialInterval time.Duration
	// BackoffFactor multiplies the wait after each retry: 0 (the
	// default) or a finite factor of at least 1 (1 keeps the wait the
	// same; a factor below 1, NaN or an infinity is refused). Default: 2.
	BackoffFactor float64
	// MaxInterval caps the wait: 0 (the default) or more. Default: 1
	// minute, or InitialInterval when that is longer.
	MaxInterval time.Duration
	// Jitter spreads each wait uniformly over ±Jitter of itself, from 0
	// to 1. Default: 0, no jitter.
	Jitter float64
}

// withDefaults fills the zero fields with their defaults, and takes the
// values that New refuses (see check) as their defaults too, for
// [RetryPolicy.Backoff], which has no error to return.
func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 3
	}
	if p.InitialInterval <= 0 {
		p.InitialInterval = time.Second
	}
	if !validFactor(p.BackoffFactor) || p.BackoffFactor == 0 {
		p.BackoffFactor = 2
	}
	if p.MaxInterval <= 0 {
		p.MaxInterval = max(time.Minute, p.InitialInterval)
	}
	if !(p.Jitter >= 0 && p.Jitter <= 1) { // NaN too
		p.Jitter = 0
	}
	return p
}

// validFactor reports whether f is a BackoffFactor New takes: 0 (the
// default) or a finite factor of at least 1.
func validFactor(f float64) bool {
	return f == 0 || f >= 1 && !math.IsInf(f, 0)
}

// Backoff returns the wait before attempt number next (2 for the first
// retry), before jitter. A field that [New] would refuse counts as its
// default.
func (p RetryPolicy) Backoff(next int) time.Duration {
	p = p.withDefaults()
	d := float64(p.InitialInterval) * math.Pow(p.BackoffFactor, float64(next-2))
	if d >= float64(p.MaxInterval) || math.IsInf(d, 0) || math.IsNaN(d) {
		// >=: float64(MaxInterval) may round up past the longest
		// Duration, which would not convert back.
		return p.MaxInterval
	}
	return time.Duration(d)
}

func (p RetryPolicy) wait(next int) time.Duration {
	d := p.Backoff(next)
	if p.Jitter > 0 {
		// A float64 at or past 2^63 does not convert to a Duration (it
		// gave a negative wait, so an immediate retry).
		if f := float64(d) * (1 + p.Jitter*(2*rand.Float64()-1)); f < math.MaxInt64 {
			d = time.Duration(f)
		} else {
			d = math.MaxInt64
		}
	}
	return d
}

// Validator checks a generator's output before it is accepted. A refusal
// counts as a failed attempt. It runs on the worker once the generator
// has returned, as part of the attempt: the attempt's timeout and a
// cancel of the run bound it as they bound the call, so a validator that
// hangs makes the attempt time out (or be cancelled) and cannot hold the
// run; its late verdict is thrown away. So a cancel that comes while it
// runs gives it the call's grace (see [Generator]) and drops the output
// if it has not ended by then (the node is cancelled, and a resume makes
// it again); a bulk call's timeout covers the checks of all its
// outcomes, and so does its grace at a cancel; and the output of a call abandoned at
// its deadline is not checked. It has no context and should be quick: a
// check that needs a provider belongs in the generator, under its
// context.
type Validator func(req Request, out Asset) error

// ValidateNarration is the lecture's narration check: the narration's
// Length must fit its 10-second segment within ±5% (graph.CheckNarration).
func ValidateNarration(_ Request, out Asset) error {
	if err := graph.CheckNarration(out.Length.Seconds()); err != nil {
		return wrap(ErrInvalidOutput, "", err, "")
	}
	return nil
}

// defaultNarration is [ValidateNarration] as the default of a kind named
// asset:narration: its error also says where the check comes from and how
// a host whose asset:narration is not a lecture segment's narration
// changes it, since its template may not be the lecture's.
func defaultNarration(req Request, out Asset) error {
	if err := ValidateNarration(req, out); err != nil {
		return fmt.Errorf("%w (the default check of a kind named %s, a lecture segment's narration: set Options.Kinds[%q].Validate to check it otherwise)",
			err, graph.KindNarration, graph.KindNarration)
	}
	return nil
}

// KindOptions tunes one kind of node. Zero fields take their defaults
// (in Options.Kinds, those of Options.Default first); [New] refuses a
// value out of the range a field's doc gives.
type KindOptions struct {
	// Retry is the kind's retry policy. Default: see [RetryPolicy].
	Retry RetryPolicy
	// Timeout bounds each attempt of a node called alone (a bulk call
	// has BatchTimeout): 0 (the default) or more. Default: 10 minutes.
	Timeout time.Duration
	// BatchTimeout bounds each bulk call of the kind (a [BatchGenerator]'s
	// GenerateBatch, which makes many nodes at once and may take longer
	// than one node's call); Timeout still bounds each node retried alone
	// after it. A call that spans kinds (that share a BatchGenerator) has
	// the longest BatchTimeout among its nodes' kinds, so that none of
	// its nodes is cut shorter than its own kind allows: 0 (the default)
	// or more. Default: Timeout.
	BatchTimeout time.Duration
	// Validate checks each output before it is accepted. Default: none,
	// except ValidateNarration for a kind named asset:narration, as the
	// lecture's is, in any template, whose error then says so: a host
	// whose asset:narration is not a 10-second segment's narration sets
	// a Validate of its own (one that returns nil accepts everything).
	Validate Validator
	// Estimate is the expected duration of one node, for the ETA before
	// any node of the kind has been generated: 0 or more. Default: 0,
	// none: until then a node of the kind counts as the mean of the kinds
	// with a duration seen or an estimate, and the ETA is unknown (0)
	// while no kind has either.
	Estimate time.Duration
	// BatchWindow lets a bulk call of the kind wait for more nodes, in
	// Dataflow mode, when the kind's generator is a [BatchGenerator] and
	// the kind has a batch key. There its nodes become ready one by one,
	// as their dependencies end, and without a window a call takes those
	// ready when a worker is free: often one. With a window, a call that
	// could take more nodes than are ready (its key's free slots allow
	// more, within MaxBatch, Limits, Rates and Workers), while more nodes
	// of the kind in the run's plan still wait on their dependencies,
	// waits up to BatchWindow, counted from when its first node became
	// ready, for more to become ready; it then starts with those that
	// are. It never waits once the call is full, nor when no more nodes
	// of the kind can come (every other one has started or settled, was
	// skipped after a failure upstream, or waits on a node of the kind
	// that has not started), nor in Staged mode, where a
	// stage's nodes are ready at once (New logs a warning for a window
	// set with Options.Mode Staged); a cancel ends the wait at once.
	// Other kinds' nodes start meanwhile, those that share the batch key
	// too (they may make the nodes the call waits for), but for the kinds
	// of the key that share the kind's BatchGenerator, whose calls span
	// them (see [BatchGenerator]): their nodes count as the kind's, and
	// their call waits up to the longest BatchWindow among them. Options.Workers
	// counts each node of a call: a cap below the key's concurrency makes
	// the calls smaller. The ETA of a run's events does not count the
	// waits. A negative
	// window is refused by New. Default: 0, no window: a call
	// takes the nodes ready when a worker takes its first.
	BatchWindow time.Duration
}

// Options configures an [Executor]. The zero value of every field but
// Generators gives its default; [New] refuses a value out of the range a
// field's doc gives (a negative duration or count, say) with an error
// wrapping [ErrInvalidRequest] that names the field and what it allows. [New] copies its maps (Generators, Rates,
// Limits, Kinds): changing them afterwards changes nothing.
type Options struct {
	// Generators regenerate nodes, one per kind. Required.
	Generators Registry
	// States keeps node states and graph versions. Default: with Assets
	// unset too, a new [MemoryStore] serves as States, Assets and (if
	// unset) Runs, so that a host can prune what runs leave behind
	// (Executor.States().(*MemoryStore)); otherwise a new [MemoryStates].
	States StateStore
	// Assets keeps generated assets. Default: see States; otherwise a new
	// [MemoryAssets].
	Assets AssetStore
	// Runs keeps run records. Default: see States; otherwise a new
	// [MemoryRuns].
	Runs RunStore
	// Sink receives the runs' progress events. A sink that fails never
	// fails a run; wrap a slow one in progress.Buffered. A run logs its
	// failures when they start, once a minute while they go on, when the
	// sink recovers and at the run's end, with the count of events lost,
	// not once an event. A sink that also implements
	// progress.LastEventReader (progress.Memory, Buffered and Fanout over
	// such sinks, progress/redisstream's Stream) lets a Resume or
	// RerunFailed end the stream of a run it finds interrupted with a
	// final event (see the package doc's Progress). Default: none.
	Sink progress.Sink
	// Logger logs what goes wrong outside a run's result, as warnings: a
	// failing sink, a store call retried, names in Kinds, Rates or Limits
	// that a run's graph has none of, a BatchWindow that applies to
	// nothing (both once per shape of graph, see Kinds; New warns of one
	// in Staged mode), a BatchGenerator of a
	// kind without a batch key (once per kind), a bulk generator that
	// returns another number of outcomes than its requests, a bulk
	// generator's panic (once a call, with its stack), an attempt that
	// timed out (its node, kind, attempt and timeout), a bulk call that
	// timed out (its batch key, kinds, number of requests and timeout,
	// and whether it ignored its context past its grace), generators that
	// ignore their context (at the run's end, once its Grace has passed:
	// the count of their calls, and the nodes and kinds of the first ten,
	// a bulk call's named "bulk call of batch key K", its kinds listed),
	// and the panic of a call abandoned
	// at its timeout or at a cancel, whose outcome is thrown away. A run's
	// records carry its ID (run) and its graph key (graph). Default: slog.Default() when New is called, as in
	// progress.Buffered and progress/redisstream; slog.New(slog.DiscardHandler)
	// silences it.
	Logger *slog.Logger
	// Mode is Dataflow or Staged. Default: Dataflow.
	Mode Mode
	// Workers caps the nodes of one run running at once, across all its
	// batch keys. It is per run, not the executor's: 50 runs with
	// Workers 4 may have 200 calls in flight; for a cap across all the
	// runs of the executor, use Limits (per batch key).
	// Each node of a bulk call counts, as it holds a slot of its batch
	// key: a cap below a key's concurrency makes its bulk calls smaller.
	// Default: 0, no cap beyond the batch keys' concurrency, and at most
	// 64 singles of the run at once.
	Workers int
	// Rates limits the starts of batch keys, for provider quotas: at most
	// Starts nodes of the key start in any window of Per. Each run's
	// scheduling applies the rate to the run's own node starts, and gives
	// a start back when early cutoff keeps the node, which makes no call;
	// a quota shared by all the runs of the executor then spaces the
	// generator calls of all their attempts (a retry takes a start too: a
	// provider counts its calls), taken once the call has room under
	// Limits. A bulk call takes the starts of all its nodes at once, when
	// it starts, so that the window holds for the nodes' real starts; the
	// calls waiting for the quota take their turns in the order they came. A call whose run is
	// cancelled after it took its starts, before its generator is
	// called, gives them back: the quota counts the calls made, and a
	// resume's do not wait for those never made. A node waits for the
	// quota holding its worker and its batch slot; cancelling the run ends
	// the wait. The ETA counts the starts the quota holds (a retry's and
	// other runs' too), and the start of each retry still in its backoff
	// (not of one that only puts an output made, which takes none).
	// The quota is this executor's, in this process: executors of other
	// processes keep their own, so that N workers may start N times the
	// rate at the provider (give each its share). Default: none.
	Rates map[string]Rate
	// Limits caps the generator calls in flight of a batch key across all
	// the runs of the executor, for a provider's concurrency quota; each
	// run also keeps to its plan's concurrency for the key, and runs at
	// most the limit of its nodes at once when that is lower (so that a
	// bulk call gets as many nodes as the limit allows, not what is left
	// of a slot the limit has no room for). A node of a
	// bulk call counts as one call, and a bulk call takes no more nodes
	// than the limit. A call waits for room before its attempt's timeout
	// starts, holding its worker and its run's slot. A call abandoned at
	// its timeout or at a cancel gives its room back at once, so a
	// generator that ignores its context can leave more calls running at
	// the provider than the limit while its retry goes on. The ETA of a
	// run counts the other runs' nodes of the key not settled yet (those
	// waiting in their schedule or for room, and those in flight; of a
	// drained or cancelled run, those under way alone), as it
	// counts their starts under Rates: the limit takes the runs' calls in
	// turns, so each other run's work counts up to the run's own (at the
	// cost of the key's cheapest kind), and all of it is divided over the
	// limit. Like Rates, the
	// limit is this executor's: other processes' executors keep their
	// own. Default: none.
	Limits map[string]int
	// Kinds tunes kinds by name; kinds not listed use Default. A run logs
	// a warning for a name its graph has no kind of, as for a batch key of
	// Rates or Limits that no kind of its graph has: a misspelt key would
	// otherwise go unnoticed. Only the executor's first run of each shape
	// of graph (its kinds and their batch keys: a template, of any length)
	// logs them, not each run of it (it remembers 1024 shapes: past
	// that, it forgets them, and warns again). [Executor.CheckTemplates] finds them at a
	// host's start-up.
	Kinds map[string]KindOptions
	// Default tunes the kinds not in Kinds, and fills zero fields of
	// those that are.
	Default KindOptions
	// Converge re-plans at the end of a run, while nodes are dirty (for
	// example edits made during the run), for at most this many extra
	// rounds. A round with a failed node ends the run: it is not retried
	// by another round. (A node edited while it ran is superseded, not
	// failed, even if its attempts failed: a later round remakes it with
	// its new parameters.) Default: 0, no extra round: nodes edited during
	// the run are left dirty (and listed as superseded), and the run still
	// succeeds; [Report].Dirty lists them.
	Converge int
	// MaxBatch caps the nodes of one bulk call. Default: 0, as many as
	// the batch key has free slots.
	MaxBatch int
	// Grace is how long a finished run waits for generators that ignore
	// their context before it returns without them. Default: 5 seconds.
	Grace time.Duration
	// StoreTimeout bounds the store calls of a run once it is cancelled.
	// A cancel does not interrupt the upload (asset Put) and commit of
	// results already made (they were paid for) nor the run's final
	// record; but a store that stalls (a lost connection, a failover) must
	// not hold a cancelled run: from the cancel on, the run's uploads and
	// commits get this long in all, and are then abandoned, their results
	// not recorded; its final record then gets as long again (if it fails
	// too, the stored record still says running, as after a crash, and
	// the Report's RecordErr says so). So a
	// stalled store holds a cancelled run at most twice this, plus Grace.
	// The Sink is not bounded (except when a Resume, RerunFailed or
	// Abandon ends the stream of a run it records as interrupted: the
	// look-up of the stream's last event and the publish of its final
	// event get this long each, as the run's record does): wrap a sink
	// that may stall in
	// progress.Buffered, which never blocks. StoreTimeout also bounds the
	// final record of a run that was not cancelled; until a run is
	// cancelled its commits wait for the state store. The final record's
	// PutRun is tried again, with backoff (up to 3.2 s between tries),
	// until StoreTimeout ends, so that a run store down for less than
	// that as the run ends still gets it. Default: 30 seconds.
	StoreTimeout time.Duration
	// StoreRetry bounds how long a store call that fails with an error
	// that may pass (a lost connection, a database restarting or failing
	// over) is retried: the waits between its tries add up to StoreRetry
	// at most. The waits double from 100 ms up to 3.2 s, each drawn at
	// random from half of its backoff to all of it, so that the callers
	// whose calls failed together do not all try again at one instant;
	// the call is given up when the next wait would take the waits past
	// StoreRetry (so up to one wait, 3.2 s at most, before it), and its
	// last error stands. It bounds a run's reads, Puts, commits (a
	// commit's reloads included) and the record at its start, the store
	// calls of a Start before the run starts, of [Executor.Plan], Resume,
	// RerunFailed, Abandon, Edit and Forget; not the run's final record,
	// which [Options].StoreTimeout bounds. A cancelled run's store calls
	// still end StoreTimeout after the cancel, and ctx still ends those
	// of the calls that take one. An error wrapped in [Permanent], or
	// [ErrNotFound], is never retried. Set it above the outages that the
	// stores may have (a Postgres failover takes seconds to tens of
	// seconds): a run's call that gives up fails the node it is of (whose
	// next attempt, if its kind's RetryPolicy gives one, tries again), or
	// the run's start. 0 or more; default: 1.5 s, five calls at most
	// (0.75 s of waits at least).
	StoreRetry time.Duration
	// SkipAssetCheck trusts clean states without asking the asset store
	// whether their assets still exist. Default: false, check.
	SkipAssetCheck bool
}

// kindOptions returns the options of the named kind, defaults applied.
func (o *Options) kindOptions(kind string) KindOptions {
	k, ok := o.Kinds[kind]
	if !ok {
		k = o.Default
	}
	k = resolve(k, &o.Default)
	if k.Validate == nil && kind == graph.KindNarration {
		k.Validate = defaultNarration
	}
	return k
}

// resolve returns k with its zero fields filled from base (Options.Default
// for an entry of Options.Kinds; nil for Options.Default itself) and then
// from their defaults.
func resolve(k KindOptions, base *KindOptions) KindOptions {
	if base != nil {
		d := base.Retry
		if k.Retry.MaxAttempts <= 0 {
			k.Retry.MaxAttempts = d.MaxAttempts
		}
		if k.Retry.InitialInterval <= 0 {
			k.Retry.InitialInterval = d.InitialInterval
		}
		if k.Retry.BackoffFactor <= 0 {
			k.Retry.BackoffFactor = d.BackoffFactor
		}
		if k.Retry.MaxInterval <= 0 {
			k.Retry.MaxInterval = d.MaxInterval
		}
		if k.Retry.Jitter <= 0 {
			k.Retry.Jitter = d.Jitter
		}
		if k.Timeout <= 0 {
			k.Timeout = base.Timeout
		}
		if k.BatchTimeout <= 0 {
			k.BatchTimeout = base.BatchTimeout
		}
		if k.Validate == nil {
			k.Validate = base.Validate
		}
		if k.Estimate <= 0 {
			k.Estimate = base.Estimate
		}
		if k.BatchWindow <= 0 {
			k.BatchWindow = base.BatchWindow
		}
	}
	k.Retry = k.Retry.withDefaults()
	if k.Timeout <= 0 {
		k.Timeout = 10 * time.Minute
	}
	if k.BatchTimeout <= 0 {
		k.BatchTimeout = k.Timeout
	}
	return k
}

// checkKinds refuses the KindOptions that no run can use: a value out of
// its range (a negative duration or count, a BackoffFactor or Jitter out
// of range), in Default or in Kinds (in name order, so that the same
// options give the same error).
func (o *Options) checkKinds() error {
	if err := o.Default.check("Options.Default", nil); err != nil {
		return err
	}
	for _, name := range sortedKeys(o.Kinds) {
		if err := o.Kinds[name].check(fmt.Sprintf("Options.Kinds[%q]", name), &o.Default); err != nil {
			return err
		}
	}
	return nil
}

// check refuses the fields of k out of range, naming them after where,
// k's place in Options, and saying what 0 gives there: in an entry of
// Options.Kinds (base, Options.Default, not nil), Options.Default's value
// when it has one.
func (k KindOptions) check(where string, base *KindOptions) error {
	// zero returns k with one field set to 0, resolved in its place and
	// without Options.Default.
	zero := func(set func(*KindOptions)) (here, own KindOptions) {
		z := k
		set(&z)
		return resolve(z, base), resolve(z, nil)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s.%s", ErrInvalidRequest, where, fmt.Sprintf(format, args...))
	}
	p := k.Retry
	switch {
	case k.Timeout < 0:
		d, o := zero(func(z *KindOptions) { z.Timeout = 0 })
		return bad("Timeout %v: want 0 (%s) or more", k.Timeout, zeroGives(d.Timeout, o.Timeout, ""))
	case k.BatchTimeout < 0:
		gives := "default: the kind's Timeout"
		if base != nil && base.BatchTimeout > 0 {
			gives = fmt.Sprintf("Options.Default's: %v", base.BatchTimeout)
		}
		return bad("BatchTimeout %v: want 0 (%s) or more", k.BatchTimeout, gives)
	case k.Estimate < 0:
		d, o := zero(func(z *KindOptions) { z.Estimate = 0 })
		return bad("Estimate %v: want 0 (%s) or more", k.Estimate, zeroGives(d.Estimate, o.Estimate, "none"))
	case k.BatchWindow < 0:
		d, o := zero(func(z *KindOptions) { z.BatchWindow = 0 })
		return bad("BatchWindow %v: want 0 (%s) or more", k.BatchWindow, zeroGives(d.BatchWindow, o.BatchWindow, "no window"))
	case p.MaxAttempts < 0:
		d, o := zero(func(z *KindOptions) { z.Retry.MaxAttempts = 0 })
		return bad("Retry.MaxAttempts %d: want 0 (%s) or more", p.MaxAttempts, zeroGives(d.Retry.MaxAttempts, o.Retry.MaxAttempts, ""))
	case p.InitialInterval < 0:
		d, o := zero(func(z *KindOptions) { z.Retry.InitialInterval = 0 })
		return bad("Retry.InitialInterval %v: want 0 (%s) or more", p.InitialInterval, zeroGives(d.Retry.InitialInterval, o.Retry.InitialInterval, ""))
	case !validFactor(p.BackoffFactor):
		d, o := zero(func(z *KindOptions) { z.Retry.BackoffFactor = 0 })
		return bad("Retry.BackoffFactor %v: want 0 (%s) or a finite factor of at least 1 (1 keeps the wait the same)", p.BackoffFactor, zeroGives(d.Retry.BackoffFactor, o.Retry.BackoffFactor, ""))
	case p.MaxInterval < 0:
		// Its own default follows InitialInterval: 1 minute, or
		// InitialInterval when that is longer.
		gives := "default"
		if base != nil && base.Retry.MaxInterval > 0 {
			gives = fmt.Sprintf("Options.Default's: %v", base.Retry.MaxInterval)
		}
		return bad("Retry.MaxInterval %v: want 0 (%s) or more", p.MaxInterval, gives)
	case !(p.Jitter >= 0 && p.Jitter <= 1): // NaN too
		d, o := zero(func(z *KindOptions) { z.Retry.Jitter = 0 })
		return bad("Retry.Jitter %v: want from 0 (%s) to 1", p.Jitter, zeroGives(d.Retry.Jitter, o.Retry.Jitter, "default: none"))
	}
	return nil
}

// zeroGives says what 0 gives a field, here in its place and own without
// Options.Default: Options.Default's value when that differs, else its
// default (none when that is 0).
func zeroGives[T comparable](here, own T, none string) string {
	var zero T
	switch {
	case here != own:
		return fmt.Sprintf("Options.Default's: %v", here)
	case here == zero:
		return none
	}
	return fmt.Sprintf("default: %v", here)
}

// warnStagedWindows logs, once, at New, the kinds whose BatchWindow
// applies to nothing as Options.Mode is Staged (see
// KindOptions.BatchWindow): Options.Default's window first, named so,
// then the kinds of Options.Kinds with a window of their own.
func (e *Executor) warnStagedWindows() {
	o := &e.opts
	if o.Mode != Staged {
		return
	}
	var kinds []string
	if o.Default.BatchWindow > 0 {
		kinds = append(kinds, "Options.Default")
	}
	for _, name := range sortedKeys(o.Kinds) {
		if o.Kinds[name].BatchWindow > 0 {
			kinds = append(kinds, name)
		}
	}
	if len(kinds) > 0 {
		e.log.Warn("regen: Options.Kinds or Options.Default gives a BatchWindow, but Options.Mode is Staged, where a stage's nodes are ready at once and no bulk call waits; it applies to nothing",
			"kinds", kinds)
	}
}

// warnUnbatched logs the kinds of g that have no batch key and whose
// generator is a BatchGenerator, which the executor calls node by node,
// with Generate (see BatchGenerator): its GenerateBatch goes unused. The
// graph is known only when a run starts: each kind is warned of once, at
// the first run of a graph that has it.
func (e *Executor) warnUnbatched(g *graph.Graph, runID, graphKey string) {
	var kinds []string
	e.unbatchedMu.Lock()
	for ki := range g.Kinds() {
		name := g.KindName(ki)
		if key, _ := g.BatchKey(ki); key != "" || e.unbatched[name] {
			continue
		}
		if _, ok := e.opts.Generators[name].(BatchGenerator); ok {
			if e.unbatched == nil {
				e.unbatched = map[string]bool{}
			}
			e.unbatched[name] = true
			kinds = append(kinds, name)
		}
	}
	e.unbatchedMu.Unlock()
	if len(kinds) > 0 {
		slices.Sort(kinds)
		e.log.Warn("regen: Options.Generators gives a BatchGenerator to kinds without a batch key; the executor calls their Generate, a node a call, and never GenerateBatch (give the kinds a batch key in the template to batch them)",
			"run", runID, "graph", graphKey, "kinds", kinds)
	}
}

// maxWarnedShapes bounds the shapes of graph that an executor remembers
// having warned of (see warnUnknownKeys).
const maxWarnedShapes = 1024

// warnUnknownKeys logs the names of Options.Kinds that g has no kind of,
// the keys of Options.Rates and Options.Limits that no kind of g batches
// under, and the kinds of Options.Kinds with a BatchWindow or a
// BatchTimeout that no bulk call of g's takes (no batch key, or a generator that is not a
// BatchGenerator), once per executor for each shape of graph: its kinds'
// names and batch keys, all that the warnings depend on, so that the
// runs of one template (of any length) warn once, at the first, whose
// run and graph key the records name, and those of another template
// warn again. The executor keeps up to maxWarnedShapes shapes seen, a
// hash of each; past that it forgets them all, and their runs warn again.
func (e *Executor) warnUnknownKeys(g *graph.Graph, runID, graphKey string) {
	o := &e.opts
	if len(o.Kinds) == 0 && len(o.Rates) == 0 && len(o.Limits) == 0 {
		return
	}
	kinds := make([]graph.Kind, g.Kinds())
	h := sha256.New()
	for ki := range kinds {
		key, _ := g.BatchKey(ki)
		kinds[ki] = graph.Kind{Name: g.KindName(ki), BatchKey: key}
		fmt.Fprintf(h, "%q %q;", kinds[ki].Name, key)
	}
	var shape [sha256.Size]byte
	h.Sum(shape[:0])
	e.shapesMu.Lock()
	_, seen := e.shapes[shape]
	if !seen {
		if len(e.shapes) >= maxWarnedShapes {
			clear(e.shapes) // forgotten: their runs warn again
		}
		if e.shapes == nil {
			e.shapes = map[[sha256.Size]byte]struct{}{}
		}
		e.shapes[shape] = struct{}{}
	}
	e.shapesMu.Unlock()
	if seen {
		return
	}
	m := o.mismatch(kinds)
	if len(m.UnknownKinds) > 0 {
		e.log.Warn("regen: Options.Kinds names kinds the graph does not have; they apply to nothing",
			"run", runID, "graph", graphKey, "kinds", m.UnknownKinds)
	}
	if len(m.UnknownKeys) > 0 {
		e.log.Warn("regen: Options.Rates or Options.Limits name batch keys no kind of the graph has; they apply to nothing",
			"run", runID, "graph", graphKey, "keys", m.UnknownKeys)
	}
	if len(m.IdleBatchOptions) > 0 {
		e.log.Warn("regen: Options.Kinds gives a BatchWindow or a BatchTimeout to kinds that no bulk call takes (no batch key, or a generator that is not a BatchGenerator); it applies to nothing",
			"run", runID, "graph", graphKey, "kinds", m.IdleBatchOptions)
	}
}

// mismatch returns what of o names nothing among kinds (their Name and
// BatchKey alone count), each list sorted but UnknownKeys: the sorted
// keys of Rates, then those of Limits not among them. Missing is left to
// the caller.
func (o *Options) mismatch(kinds []graph.Kind) *TemplateMismatchError {
	names, keys := map[string]bool{}, map[string]bool{}
	bulk := map[string]bool{} // kinds with a batch key and a bulk generator
	for _, k := range kinds {
		names[k.Name] = true
		if k.BatchKey != "" {
			keys[k.BatchKey] = true
			_, bulk[k.Name] = o.Generators[k.Name].(BatchGenerator)
		}
	}
	m := &TemplateMismatchError{}
	for _, name := range sortedKeys(o.Kinds) {
		if !names[name] {
			m.UnknownKinds = append(m.UnknownKinds, name)
		} else if k := o.Kinds[name]; (k.BatchWindow > 0 || k.BatchTimeout > 0) && !bulk[name] {
			m.IdleBatchOptions = append(m.IdleBatchOptions, name)
		}
	}
	for _, key := range append(sortedKeys(o.Rates), sortedKeys(o.Limits)...) {
		if !keys[key] && !slices.Contains(m.UnknownKeys, key) {
			m.UnknownKeys = append(m.UnknownKeys, key)
		}
	}
	return m
}

// CheckTemplates checks the executor's Options against the templates of
// every graph it will run, at a host's start-up, so that a misspelt name
// fails there rather than showing as a warning in the log of each run
// (see Options.Logger) or as a [*MissingGeneratorError] at the first run
// of the kind. It returns nil when every kind of the templates has a
// generator in Options.Generators, every name in Options.Kinds is a kind
// of one of them, every key in Options.Rates and Options.Limits is one of
// their batch keys, and every kind given a BatchWindow or a BatchTimeout
// has a batch key and a BatchGenerator; otherwise a [*TemplateMismatchError] that lists
// what does not match, wrapping [ErrTemplateMismatch]. Pass all the
// templates that the executor serves: a key that only one of them uses is
// not unknown. A template that [graph.Template.Validate] refuses is an
// error wrapping [ErrInvalidRequest] and its error. A BatchGenerator
// given to a kind without a batch key, which runs log once, is allowed:
// one generator may serve every kind.
func (e *Executor) CheckTemplates(templates ...graph.Template) error {
	if len(templates) == 0 {
		return fmt.Errorf("%w: CheckTemplates of no template: pass the templates of the graphs the executor runs", ErrInvalidRequest)
	}
	var kinds []graph.Kind
	for i, t := range templates {
		if err := t.Validate(); err != nil {
			return fmt.Errorf("%w: template %d of %d: %w", ErrInvalidRequest, i+1, len(templates), err)
		}
		kinds = append(kinds, t.Kinds...)
	}
	m := e.opts.mismatch(kinds)
	seen := map[string]bool{}
	for _, k := range kinds {
		if !seen[k.Name] && e.opts.Generators[k.Name] == nil {
			m.Missing = append(m.Missing, k.Name)
		}
		seen[k.Name] = true
	}
	slices.Sort(m.Missing)
	slices.Sort(m.UnknownKeys)
	if len(m.Missing)+len(m.UnknownKinds)+len(m.UnknownKeys)+len(m.IdleBatchOptions) == 0 {
		return nil
	}
	return m
}
