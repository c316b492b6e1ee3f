package executor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor/schedule"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/progress"
)

// job is a node a worker runs, with what it needs from the run's state
// copied under the lock. A worker reuses its job from one node to the
// next (see work); a rescuer that takes over a node keeps using the job of
// the worker it replaced, which then never touches it again.
type job struct {
	r    *run
	step schedule.Step
	id   string
	kind string
	ko   *KindOptions
	prev dirty.State // the node's stored state when it started
	deps []depRef

	// Set by load; read says that it read the inputs (see tryFrom).
	reqDeps []Dep
	read    bool
	in      string // the input hash
	idem    string // the idempotency key
	start   time.Time

	// What a rescuer needs to continue the node's attempts after the
	// call of attempt number attempt was abandoned.
	gen     Generator
	attempt int
	wg      *sync.WaitGroup
	then    func(result) bool

	call *inflight // the first attempt's call, reused while it can be

	// An output made and paid for that the asset store could not store:
	// the next attempt puts it again rather than call the generator, and
	// so does a cancel (see cancelledAfter).
	unput *Asset

	depBuf [4]depRef // embedded: most nodes have at most 4 dependencies

	// A worker's own job, reused from node to node, hands out its
	// requests' Deps and its calls' states from blocks, each for many
	// nodes, rather than allocating them node by node (see takeDeps). A
	// generator may keep them, so no block is ever reused: one kept keeps
	// its block, a few KiB, alive.
	blocks    bool
	depBlock  []Dep
	callBlock []callState
}

// Sizes of a job's blocks (see job.blocks), in elements: each fills
// most of a size class of the allocator (6 KiB of 96-byte Deps, 4 KiB of
// 112-byte callStates).
const (
	depBlockLen  = 64
	callBlockLen = 36
)

// takeDeps returns a new slice of n Deps, from the job's block if it
// has blocks and n is small.
func (j *job) takeDeps(n int) []Dep {
	if !j.blocks || n > depBlockLen/4 {
		return make([]Dep, n)
	}
	k := len(j.depBlock)
	if cap(j.depBlock)-k < n {
		j.depBlock, k = make([]Dep, 0, depBlockLen), 0
	}
	j.depBlock = j.depBlock[:k+n]
	return j.depBlock[k : k+n : k+n]
}

// takeCall returns a new, zero callState, from the job's block if it has
// blocks.
func (j *job) takeCall() *callState {
	if !j.blocks {
		return new(callState)
	}
	if len(j.callBlock) == cap(j.callBlock) {
		j.callBlock = make([]callState, 0, callBlockLen)
	}
	j.callBlock = j.callBlock[:len(j.callBlock)+1]
	return &j.callBlock[len(j.callBlock)-1]
}

func (j *job) rescue(err error) bool {
	if te := (*TimeoutError)(nil); errors.As(err, &te) {
		r := j.r
		r.e.log.Warn("regen: attempt timed out: its call is abandoned (its context cancelled), and the node retried if its attempts allow",
			"run", r.handle.id, "graph", r.key, "node", j.id, "kind", j.kind, "attempt", j.attempt, "timeout", te.Timeout)
	}
	res, ok := j.r.tryFrom(j, j.attempt+1, err)
	return ok && j.then(res)
}

// callState is what one call of a generator keeps: its reporter and its
// context, allocated together.
type callState struct {
	rep reporter
	ctx attemptCtx
}

type depRef struct {
	n             graph.Node
	id, hash, ref string
}

// newJob fills j, new or reused, for step st. Fields are set one by one:
// copying a whole job would cost write barriers on every pointer in it.
// Called with mu held.
func (r *run) newJob(j *job, st schedule.Step, kind string) {
	n := st.Node
	ds := r.g.Deps(n)
	j.r, j.step, j.id, j.kind, j.ko = r, st, r.id(n), kind, &r.kinds[r.g.KindOf(n)]
	j.prev = r.view.Get(n)
	j.reqDeps, j.read, j.in, j.idem, j.start = nil, false, "", "", time.Time{}
	j.gen, j.attempt, j.wg, j.then = nil, 0, nil, nil
	j.unput = nil // another node's output is not this one's
	j.deps = j.depBuf[:0]
	if len(ds) > len(j.depBuf) {
		j.deps = make([]depRef, 0, len(ds))
	}
	j.deps = j.deps[:len(ds)]
	for i, d := range ds {
		s := r.view.Get(d)
		j.deps[i] = depRef{n: d, id: r.id(d), hash: s.OutputHash, ref: s.AssetRef}
	}
}

// hashInputs computes the node's input hash and idempotency key, from
// its dependencies' output hashes: early cutoff needs nothing more, so
// their assets are read (load) only for a node that runs.
func (r *run) hashInputs(j *job) {
	var hashBuf [8]string
	hashes := hashBuf[:0]
	if len(j.deps) > len(hashBuf) {
		hashes = make([]string, 0, len(j.deps))
	}
	for _, d := range j.deps {
		hashes = append(hashes, d.hash)
	}
	// One string holds both: the input hash is within the key.
	var buf [256]byte
	b := append(buf[:0], r.key...)
	b = append(b, '/')
	b = append(b, j.id...)
	b = append(b, '/')
	prefix := len(b)
	b = dirty.AppendInputHash(b, j.prev.Rev, hashes)
	end := len(b)
	b = appendTake(b, r.made, j.prev)
	j.idem = string(b)
	j.in = j.idem[prefix:end]
}

// appendTake appends to an idempotency key what tells this making of a
// node from the others made from the same inputs: made, the token of the
// making of the key's graph (see GraphStateID), so that a graph deleted
// and made again, whose revisions start again from 0, gets new keys; and,
// for a node whose stored output was disowned (forced, or its asset lost:
// its state forgot its inputs but keeps its output), the output it
// replaces, so that a provider that deduplicates makes another take
// instead of returning the one replaced. Both are stored before the node
// runs, so the key is the same for every attempt, and on a resume. (An
// output that early cutoff finds lost, its state not disowned, gets the
// same ending there: see cutoff.)
func appendTake(b []byte, made string, prev dirty.State) []byte {
	if made != "" {
		b = append(b, '/')
		b = append(b, made...)
	}
	if prev.InputHash == "" && prev.OutputHash != "" {
		b = appendAfter(b, prev.OutputHash)
	}
	return b
}

// appendAfter appends to an idempotency key the output it replaces, whose
// hash is output: "/after-" and 16 hex digits.
func appendAfter(b []byte, output string) []byte {
	sum := sha256.Sum256([]byte(output))
	b = append(b, "/after-"...)
	return hex.AppendEncode(b, sum[:8])
}

// load reads the dependencies' assets for the node's request.
func (r *run) load(j *job) error {
	// The generator may keep the request: its Deps are its own.
	deps := j.takeDeps(len(j.deps))
	if err := r.readDeps(j, deps); err != nil {
		return err
	}
	j.reqDeps, j.read = deps, true
	return nil
}

// unread returns what becomes of j's node when the read of its inputs
// failed with err in attempt number next, and true, if that ends its
// attempts: a read that no retry can fix (a lost input, [ErrNotFound];
// an error wrapped in [Permanent]) fails the node, the attempt not
// counted (a first attempt's node fails at attempt 0, with no
// node.started), and a cancel of the run ends it (a first attempt's node
// has not started). Otherwise the read is a failed attempt of the node,
// retried under its kind's policy as a failed call is, and unread returns
// false; a first attempt's node starts then (node.started), so that its
// node.retrying follows that event, as a called node's does. Worth it: a
// read already made its store calls again (see retryStore), so what
// failed is an outage of the asset store that the kind's backoff, of
// seconds, may outlast.
func (r *run) unread(j *job, next int, err error) (result, bool) {
	switch {
	case r.dctx.Err() != nil && next == 1:
		return r.newResult(j, unstarted, 0, nil), true // the cancel (or drain) kept it from starting
	case r.ctx.Err() != nil:
		return r.newResult(j, cancelled, next-1, r.cause()), true
	case errors.Is(err, ErrNotFound) || !retryable(err):
		return r.newResult(j, failed, next-1, err), true
	case next == 1 && !r.started(j, ""):
		return r.newResult(j, unstarted, 0, nil), true
	}
	return result{}, false
}

// The fewest dependencies read with one GetMany call. A store across a
// network gets one call for two or more: it saves a round trip a
// dependency after the first (the lecture's videos read a narration and
// an image). The in-memory stores ([localAssets]) get it for four or
// more: a call costs them no round trip, and the batch's slices would
// cost most nodes of a lecture two allocations more.
const (
	batchReadMin      = 2
	localBatchReadMin = 4
)

// localAssets is implemented by the asset stores that live in the
// process, to which a call costs no round trip.
type localAssets interface{ local() }

// readDeps reads the assets of j's dependencies into deps: in one call
// when there are enough of them (see batchReadMin) and the asset store is
// an [AssetBatchGetter], one Get each otherwise. When the one call fails
// they are read one by one, so that an error names the dependency (and a
// passing failure of the store may pass).
func (r *run) readDeps(j *job, deps []Dep) error {
	if bg := r.batchGet; bg != nil && len(j.deps) >= r.e.batchReadMin {
		refs := make([]string, len(j.deps))
		for i, d := range j.deps {
			refs[i] = d.ref
		}
		if assets, err := bg.GetMany(r.ctx, refs); err == nil && len(assets) == len(refs) && sameRefs(refs, j.deps) {
			for i, d := range j.deps {
				deps[i] = Dep{Node: d.n, NodeID: d.id, Asset: assets[i]}
			}
			return nil
		}
	}
	for i, d := range j.deps {
		a, err := r.e.opts.Assets.Get(r.ctx, d.ref)
		if err != nil {
			err = r.retryStore(r.ctx, err, "read the output of", d.id, func() (err error) {
				a, err = r.e.opts.Assets.Get(r.ctx, d.ref)
				return err
			})
		}
		if err != nil {
			return fmt.Errorf("read the output of %s: %w", d.id, err)
		}
		deps[i] = Dep{Node: d.n, NodeID: d.id, Asset: a}
	}
	return nil
}

// sameRefs reports whether refs still holds deps' refs, in their order:
// a store that reordered them (against AssetBatchGetter's contract) may
// have answered in its order, and its answer is not used (the refs are
// then read one by one).
func sameRefs(refs []string, deps []depRef) bool {
	for i, d := range deps {
		if refs[i] != d.ref {
			return false
		}
	}
	return true
}

// retryStore calls a store's call again, after a jittered backoff
// (storeWait), when its first call failed with err: a connection lost once
// must not fail a node, nor make its provider generate it again (and
// bill it twice) because its Put failed, nor leave a run's record saying
// it runs. It stops at [ErrNotFound], at an error that no retry can fix
// ([Permanent]), once ctx ends, or once its waits would take more than
// Options.StoreRetry (5 calls in all by default), and returns the last
// call's error (with ctx's cause if ctx ended).
// what and about name the call in the log. The caller makes the first
// call itself, so that the call's closure is made only on failure.
func (r *run) retryStore(ctx context.Context, err error, what, about string, call func() error) error {
	rs := r.e.storeRetries()
	rs.graph = r.key
	return r.e.retryStoreWithin(ctx, rs, r.handle.id, err, what, about, call)
}

// retryStore is [run.retryStore] for the calls of run runID, or of no run
// ("": a preview of [Executor.Plan], an Edit, a Forget), of graph key
// graphKey ("" when not known yet), which the log names.
func (e *Executor) retryStore(ctx context.Context, runID, graphKey string, err error, what, about string, call func() error) error {
	rs := e.storeRetries()
	rs.graph = graphKey
	return e.retryStoreWithin(ctx, rs, runID, err, what, about, call)
}

// retryStoreWithin is [Executor.retryStore] with the budget of rs: a
// budget below 0 retries until ctx ends (the final record of a run, which
// Options.StoreTimeout bounds).
func (e *Executor) retryStoreWithin(ctx context.Context, rs storeRetries, runID string, err error, what, about string, call func() error) error {
	for {
		err = hostError(err, inStore)
		if err == nil || errors.Is(err, ErrNotFound) || !retryable(err) {
			return err
		}
		if ctx.Err() != nil {
			return stoppedBy(ctx, err)
		}
		wait, ok := rs.next()
		if !ok {
			return err
		}
		attrs := []any{"run", runID, "call", what, "about", about, "err", err}
		if rs.graph != "" {
			attrs = append(attrs[:2:2], append([]any{"graph", rs.graph}, attrs[2:]...)...)
		}
		e.log.Warn("regen: store call failed, retrying", attrs...)
		if !sleep(ctx, wait) {
			return stoppedBy(ctx, err)
		}
		err = call()
	}
}

// defaultStoreRetry is the default of Options.StoreRetry, the budget of a
// store call's waits between its tries: 1.5 s, the sum of storeWait's
// first four backoffs, so 5 calls at most.
const defaultStoreRetry = 1500 * time.Millisecond

// storeRetries returns a store call's retry budget, Options.StoreRetry's.
func (e *Executor) storeRetries() storeRetries {
	return storeRetries{budget: e.opts.StoreRetry}
}

// storeRetries counts the failures of a store call and the waits between
// its tries, against a budget of waits.
type storeRetries struct {
	budget   time.Duration // the waits in all; below 0, no bound
	waited   time.Duration
	failures int
	graph    string // the graph key of the run whose call it is, for the log
}

// next returns the wait before the next try, after one more failure, and
// false when that wait would take the waits past the budget: the call is
// then given up. Jittered waits below their backoff leave the budget no
// more room for another try: with 1.5 s, the fifth wait (800 ms at
// least) never fits after the first four (750 ms at least).
func (rs *storeRetries) next() (time.Duration, bool) {
	rs.failures++
	d := storeWait(rs.failures)
	if rs.budget >= 0 && rs.waited+d > rs.budget {
		return 0, false
	}
	rs.waited += d
	return d, true
}

// storeWait returns the wait of retryStore before its next call, after
// failures failed calls (1 after the first), and of a commit of states
// that failed (a run's plan's or results', Edit's, Forget's) before it is
// made again: a backoff that doubles from 100 ms (100, 200, 400, 800 ms)
// up to maxStoreBackoff, with "equal" jitter: drawn uniformly from half
// of it to all of it, from the source that [RetryPolicy].Jitter draws
// from (math/rand/v2's). So the calls that failed together (many nodes
// reading one asset from a store that stalled; the commits of several
// Edits or runs of one key, which would all reload and commit again at
// once) come back spread over half of each wait, not all at one instant
// on a store that struggles; and no wait is longer than its backoff, so
// that the waits between a call's 5 tries under the default
// Options.StoreRetry still add up to 1.5 s at most (0.75 s at least).
func storeWait(failures int) time.Duration {
	d := maxStoreBackoff
	if failures < 6 {
		d = time.Duration(1<<failures) * 50 * time.Millisecond
	}
	return d - rand.N(d/2+1)
}

// maxStoreBackoff caps storeWait's backoff: a store call retried for long
// (a run's final record, within Options.StoreTimeout) tries again every
// 1.6 s to 3.2 s.
const maxStoreBackoff = 3200 * time.Millisecond

// stoppedBy is the error of a store call whose retries ctx ended: err,
// and ctx's cause, so that the caller (and its caller) can tell that its
// context ended, as when the store returns the context's error itself.
func stoppedBy(ctx context.Context, err error) error {
	cause := causeOf(ctx)
	if errors.Is(err, cause) {
		return err
	}
	return fmt.Errorf("%w (retry stopped: %w)", err, cause)
}

// request returns the request of an attempt of j's node.
func (j *job) request(attempt int, p Reporter) Request {
	r, n := j.r, j.step.Node
	return Request{GraphKey: r.key, RunID: r.handle.id, Node: n, ID: r.g.ID(n), NodeID: j.id,
		Rev: j.prev.Rev, Deps: j.reqDeps, Attempt: attempt, IdempotencyKey: j.idem, Progress: p}
}

// cutoff reports whether the node can keep its stored result: it was
// made from the same inputs and its asset is still there.
func (r *run) cutoff(j *job) bool {
	p := j.prev
	if p.InputHash != j.in || p.OutputHash == "" || p.AssetRef == "" {
		return false
	}
	ok, err := r.e.opts.Assets.Exists(r.ctx, p.AssetRef)
	if err != nil {
		// Regenerating would pay the provider for what may be there.
		err = r.retryStore(r.ctx, err, "check the stored output of", j.id, func() (err error) {
			ok, err = r.e.opts.Assets.Exists(r.ctx, p.AssetRef)
			return err
		})
	}
	if err == nil && !ok {
		// Its output, made from these very inputs, is lost: it is made
		// again as another take, with a key of its own (see appendTake),
		// as a node whose asset the check at the start of the run found
		// lost. The asset stays lost on a resume, which gets the same key.
		// (j.in, which held a part of the old key, keeps it.)
		j.idem = string(appendAfter([]byte(j.idem), p.OutputHash))
	}
	return err == nil && ok
}

// nodeEvent emits a node event from a worker, outside mu: the counts are
// those of the last settled node.
func (r *run) nodeEvent(t progress.Type, j *job, attempt int, err error, msg string) {
	if r.em.sink == nil {
		return
	}
	r.em.emit(progress.Event{Type: t, Node: j.id, Kind: j.kind, BatchKey: j.step.Key, Stage: j.step.Stage, Attempt: attempt,
		Error: errText(err), Message: msg, Done: int(r.settled.Load()), Total: int(r.planned.Load()), ETA: r.etaNow()})
}

// retryingEvent emits the event of a node about to wait out its backoff
// before attempt number next, from a worker, outside mu. Its ETA is
// computed at once, the backoff counted (its node's next call is set
// after it): the last ETA counted down would not count the wait.
func (r *run) retryingEvent(j *job, next int, err error, msg string) {
	r.mu.Lock()
	now := time.Now()
	eta := r.eta.afresh(now, r.m.Len()-r.m.Settled())
	r.setETA(eta, now)
	r.mu.Unlock()
	r.em.emit(progress.Event{Type: progress.NodeRetrying, Node: j.id, Kind: j.kind, BatchKey: j.step.Key, Stage: j.step.Stage, Attempt: next,
		Error: errText(err), Message: msg, Done: int(r.settled.Load()), Total: int(r.planned.Load()), ETA: eta})
}

// started publishes node.started for j's node, with msg, unless the run
// is cancelled (or drained) first: the check is made under the emitter's lock, so
// that a cancel either comes before the event, and the node has not
// started (see unstarted), or after it, and the node settles with an
// event too (node.cancelled, with no call if the call had not begun). It
// reports whether the node started. Without a sink, it checks the run's
// context alone.
func (r *run) started(j *job, msg string) bool {
	if r.em.sink == nil {
		return r.dctx.Err() == nil
	}
	ok := false
	r.em.emitIf(progress.Event{Type: progress.NodeStarted, Node: j.id, Kind: j.kind, BatchKey: j.step.Key, Stage: j.step.Stage, Attempt: 1, Message: msg,
		Done: int(r.settled.Load()), Total: int(r.planned.Load()), ETA: r.etaNow()},
		func() bool { ok = r.dctx.Err() == nil; return ok })
	return ok
}

func (r *run) newResult(j *job, o outcome, attempts int, err error) result {
	return result{n: j.step.Node, id: j.id, kind: j.kind, key: j.step.Key, outcome: o, rev: j.prev.Rev,
		attempts: attempts, err: err, stage: j.step.Stage}
}

// kept is the result of a node that early cutoff keeps: it made no
// provider call, so its start no longer counts against its batch key's
// rate, and a node held back by the rate may start at once.
func (r *run) kept(j *job) result {
	if len(r.e.opts.Rates) > 0 {
		r.mu.Lock()
		if ok, err := r.m.Refund(j.step.Node); err == nil && ok {
			r.wakeIdle(time.Time{}, true)
		}
		r.mu.Unlock()
	}
	return r.unchangedResult(j)
}

// unchangedResult keeps the stored result: the node is clean again.
func (r *run) unchangedResult(j *job) result {
	res := r.newResult(j, unchanged, 0, nil)
	res.state = j.prev
	res.state.Status, res.state.LastError = dirty.StatusClean, "" // UpdatedAt: see commit
	return res
}

// runOne runs a node with a single-node generator. It reports false when
// this goroutine was abandoned (see watch.go): a rescuer then finishes the
// node and hands its result to then.
func (r *run) runOne(gen Generator, j *job, wg *sync.WaitGroup, then func(result) bool) (result, bool) {
	r.hashInputs(j)
	if r.cutoff(j) {
		return r.kept(j), true
	}
	j.gen, j.wg, j.then = gen, wg, then
	return r.tryFrom(j, 1, nil)
}

// tryFrom makes attempts from number next on, with j's generator, until
// one succeeds, the policy gives up, or the run is cancelled (or drained:
// no attempt is made after a drain but the Put of an output already
// made, at once, see noRetry and drainedAfter). prev is the
// error of attempt next-1, or nil for the first. An attempt reads the
// node's inputs first, until a read succeeds (see unread).
// It reports false when this goroutine was abandoned by a hung generator;
// see runOne.
func (r *run) tryFrom(j *job, next int, prev error) (result, bool) {
	for {
		if prev != nil {
			made := next - 1
			if r.ctx.Err() != nil {
				if !retryable(prev) {
					return r.newResult(j, cancelled, made, prev), true // nothing to put again
				}
				return r.cancelledAfter(j, made, prev), true
			}
			if !retryable(prev) || made >= j.ko.Retry.MaxAttempts {
				return r.newResult(j, failed, made, prev), true
			}
			if r.noRetry(j) {
				return r.newResult(j, cancelled, made, prev), true
			}
			wait := j.ko.Retry.wait(next)
			if r.callAt != nil {
				// For the ETA, the node starts over after its backoff.
				r.backoffs.Add(1)
				r.putRetry[j.step.Node].Store(j.unput != nil)
				r.callAt[j.step.Node].Store(time.Now().Add(wait).UnixNano())
			}
			if r.em.sink != nil { // no text that nobody reads
				r.retryingEvent(j, next, prev,
					fmt.Sprintf("attempt %d of %d in %v", next, j.ko.Retry.MaxAttempts, wait))
			}
			slept := sleep(r.dctx, wait)
			if r.callAt != nil {
				r.backoffs.Add(-1)
			}
			if !slept && r.ctx.Err() == nil { // drained: no new call
				return r.drainedAfter(j, made, prev), true
			}
			if !slept {
				return r.cancelledAfter(j, made, r.cause()), true
			}
		}
		if !j.read {
			if err := r.load(j); err != nil {
				if res, done := r.unread(j, next, err); done {
					return res, true
				}
				prev, next = err, next+1
				continue
			}
		}
		if j.unput != nil {
			// The output is paid for: only its Put is tried again, as
			// attempt number next.
			res, err := r.store(j, *j.unput, next)
			if err == nil {
				return res, true
			}
			prev, next = err, next+1
			continue
		}
		var c *inflight
		if next == 1 {
			if j.call == nil {
				j.call = new(inflight)
			}
			c = j.call
		} else {
			// A later attempt gets its own call: an abandoned earlier call
			// may still end.
			c = new(inflight)
		}
		// Each call gets its own reporter and context, in one piece (see
		// takeCall): a generator may keep them.
		cs := j.takeCall()
		cs.rep = reporter{run: r, node: j.id, stage: int32(j.step.Stage), attempt: int32(next), call: c}
		rep := &cs.rep
		req := j.request(next, rep)
		j.attempt = next
		if next > 1 && r.callAt != nil {
			// Past its backoff, the node waits for room under Limits or
			// for a start of the key's quota, as a first attempt does:
			// for the ETA, not under way until its call starts.
			r.callAt[j.step.Node].Store(0)
		}
		if err := r.acquire(c, j.step.Key, 1); err != nil {
			if next == 1 {
				return r.newResult(j, unstarted, 0, nil), true
			}
			return r.newResult(j, cancelled, next-1, r.drainedRetry(err, prev)), true
		}
		// The rate counts starts, a retry's too (a provider's quota counts
		// every call): taken once there is room for the call, so that
		// waiting for room does not bunch them.
		rated, err := r.awaitQuota(j.step.Key, 1)
		if next == 1 && (err != nil || !r.started(j, "")) {
			rated.giveBack() // no call
			c.release()
			return r.newResult(j, unstarted, 0, nil), true
		}
		if err != nil {
			c.release()
			return r.newResult(j, cancelled, next-1, r.drainedRetry(err, prev)), true
		}
		// The timeout runs from the call, not from the start of the node:
		// loading its inputs, waiting for room under Options.Limits or for
		// a start under Options.Rates, and publishing its start do not
		// shorten it.
		now := time.Now()
		if j.start.IsZero() {
			j.start = now
		}
		if r.callAt != nil {
			r.callAt[j.step.Node].Store(now.UnixNano())
		}
		c.node, c.kind = j.id, j.kind // for the log, if the call outlives the run
		// A cancel gives the call a grace to return its output, which
		// the provider may have made and billed already: it is stored
		// and committed, as a bulk call's are, so that a resume does
		// not pay for it again. Its timeout gives none: a retry follows.
		if cause := r.watch.begin(c, &cs.ctx, now, j.ko.Timeout, callGrace(j.ko.Timeout), false, j.wg, j); cause != nil {
			// Cancelled since it started: its node.started went out, so
			// it settles as cancelled, with no call.
			rated.giveBack()
			c.release()
			return r.newResult(j, cancelled, next-1, cause), true
		}
		rep.word = c.begun
		a, err := protect(func() (Asset, error) { return j.gen.Generate(c.ctx, req) })
		if err == nil && c.state.Load() == c.begun {
			// The host's check is part of the attempt: its timeout and a
			// cancel bound it as they bound the call. The output of a call
			// abandoned meanwhile is thrown away unchecked.
			err = check(j.ko.Validate, &req, a)
		}
		if !r.watch.end(c) {
			r.latePanic(err, "generator", "node", j.id, "kind", j.kind, "attempt", next)
			r.watch.ended() // after the log: Close waits for it
			return result{}, false
		}
		if err != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) && r.watch.timedOut(c) {
			// It returned in its grace after the run's cancel, cut short:
			// cancelled with the run's cause, as when abandoned (another
			// error, a validator's refusal say, is the node's own, as for
			// a bulk call's node).
			err = r.cause()
		}
		if err == nil {
			var res result
			if res, err = r.accept(j, a, next); err == nil {
				return res, true
			}
		}
		prev, next = err, next+1
	}
}

// latePanic logs err, the outcome of a generator call that was
// abandoned (at its timeout, or at the run's cancel) before it returned,
// if it is a panic, the call's or its validator's: its result was thrown
// away unseen, and the panic would leave no other trace. call names what
// panicked when err does not say ("generator", or inBulkCall); attrs say
// which call it was.
func (r *run) latePanic(err error, call string, attrs ...any) {
	pe := (*PanicError)(nil)
	if !errors.As(err, &pe) {
		return
	}
	in := pe.In
	if in == "" {
		in = call
	}
	r.e.log.Warn("regen: generator or validator panicked after its call was abandoned (timed out, or its run cancelled); the attempt had already failed, and the panic changes nothing",
		append([]any{"run", r.handle.id, "graph", r.key}, append(attrs, "in", in, "panic", fmt.Sprint(pe.Value), "stack", string(pe.Stack))...)...)
}

// cancelledAfter is the result of j's node when the run is cancelled
// after made attempts, the last with err. An output made and paid for
// whose Put kept failing is put once more first, as the node's next
// attempt if its policy allows one: a cancel does not interrupt the
// upload of a result already made (see store), and were the output
// dropped, a resume would pay the provider for it again. If that Put
// fails too, the output is dropped and the node is cancelled. A run
// stopped because its graph was replaced or deleted puts nothing: no
// resume could use the output, which would be superseded (a deleted
// graph's an orphan), as no call is given a grace then (see
// watch.cancelAll).
func (r *run) cancelledAfter(j *job, made int, err error) result {
	if j.unput != nil && made < j.ko.Retry.MaxAttempts && !stoppedGone(r.cause()) {
		if res, perr := r.store(j, *j.unput, made+1); perr == nil {
			return res
		}
		made++ // the Put counts as an attempt
	}
	return r.newResult(j, cancelled, made, err)
}

// drainedAfter is the result of j's node when the run is drained during
// its backoff, after made attempts, the last with err: no call is made
// again, but an output made and paid for whose Put kept failing is put
// at once, as the node's next attempt, as a cancel does (see
// cancelledAfter), rather than after the rest of the backoff, as the
// drain waits for no node that has no call under way. If that Put fails
// too, the output is dropped and the node is cancelled, with that Put's
// error.
func (r *run) drainedAfter(j *job, made int, err error) result {
	if j.unput != nil && made < j.ko.Retry.MaxAttempts {
		res, perr := r.store(j, *j.unput, made+1)
		if perr == nil {
			return res
		}
		made, err = made+1, perr // the Put counts as an attempt
	}
	return r.newResult(j, cancelled, made, err)
}

// check runs the kind's validator, if any, on an output: a refusal is an
// error wrapping [ErrInvalidOutput], a panic a *PanicError. The caller
// runs it within the attempt's call (see watch), so that a validator that
// hangs is bounded by the attempt's timeout and by a cancel, as a
// generator that hangs is.
func check(v Validator, req *Request, a Asset) error {
	if v == nil {
		return nil
	}
	err := validate(v, *req, a)
	if err == nil {
		return nil
	}
	var pe *PanicError
	if !errors.Is(err, ErrInvalidOutput) && !errors.As(err, &pe) {
		err = wrap(ErrInvalidOutput, "", err, "")
	}
	return err
}

// accept takes an output that passed its check: it stores the asset and
// returns the result.
func (r *run) accept(j *job, a Asset, attempt int) (result, error) {
	if err := checkText(a); err != nil {
		return result{}, err
	}
	if a.Hash == "" {
		a.Hash = contentHash(a)
	}
	return r.store(j, a, attempt)
}

// store puts the asset that attempt number attempt made, and returns the
// result. The result is made and paid for: a cancel of the run does not
// interrupt its upload (its commit neither); StoreTimeout bounds both. A
// failed Put is tried again, not the generator, and once those calls are
// used up the node's next attempt puts the asset again, or, if the run is
// cancelled or drained first, its cancel or drain, at once (see
// cancelledAfter and drainedAfter).
func (r *run) store(j *job, a Asset, attempt int) (result, error) {
	key := r.key + "/" + j.id + "/" + a.Hash
	ref, err := r.e.opts.Assets.Put(r.bg, key, a)
	if err != nil {
		err = r.retryStore(r.bg, err, "store the asset of", j.id, func() (err error) {
			ref, err = r.e.opts.Assets.Put(r.bg, key, a)
			return err
		})
	}
	if err != nil {
		unput := a // moved to the heap here only, not on the hot path
		j.unput = &unput
		return result{}, fmt.Errorf("store asset: %w", err)
	}
	j.unput = nil
	res := r.newResult(j, generated, attempt, nil)
	if r.em.sink != nil { // only the ETA needs it
		res.took = time.Since(j.start)
	}
	// UpdatedAt is set by commit, once for the whole batch.
	res.state = dirty.State{Status: dirty.StatusClean, Rev: j.prev.Rev, InputHash: j.in, OutputHash: a.Hash,
		AssetRef: ref, Attempts: attempt}
	return res, nil
}

// checkText refuses an asset whose text fields are not valid UTF-8 or
// hold NUL: stores keep them as text (a SQL database refuses NUL), so the
// same output is refused whatever the store, and before it is stored.
// The refusal is permanent: such a field is a bug of the host's generator
// (a hash's raw bytes, a stray byte in a URL), made again at every
// attempt, so a retry would pay the provider for nothing.
func checkText(a Asset) error {
	bad := func(s string) bool { return !storableText(s) }
	switch {
	case bad(a.URL):
		return Permanent(fmt.Errorf("%w: URL %q is not valid UTF-8 without NUL", ErrInvalidOutput, a.URL))
	case bad(a.Hash):
		return Permanent(fmt.Errorf("%w: Hash %q is not valid UTF-8 without NUL", ErrInvalidOutput, a.Hash))
	}
	for _, k := range sortedKeys(a.Meta) {
		if bad(k) || bad(a.Meta[k]) {
			return Permanent(fmt.Errorf("%w: Meta[%q] = %q is not valid UTF-8 without NUL", ErrInvalidOutput, k, a.Meta[k]))
		}
	}
	return nil
}

// storableText reports whether s is valid UTF-8 without NUL, which any
// store can keep as text.
func storableText(s string) bool {
	return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}

// validate runs a host's validator, turning its panic into a
// *PanicError, as for a generator.
func validate(v Validator, req Request, a Asset) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &PanicError{Value: p, Stack: debug.Stack(), In: "validator"}
		}
	}()
	return hostError(v(req, a), "validator")
}

// contentHash is the default content hash: SHA-256 of the data, or of
// the URL when the host keeps the data.
func contentHash(a Asset) string {
	var sum [32]byte
	if a.Data != nil {
		sum = sha256.Sum256(a.Data)
	} else {
		sum = sha256.Sum256([]byte("url:" + a.URL))
	}
	return hex.EncodeToString(sum[:])
}

// runBatch runs nodes of one batch key with a bulk generator, of one kind
// or of the kinds that share it (see sharedKinds):
// one call for all of them, then each failure retried alone, in parallel.
// It reports false when this goroutine was abandoned; a rescuer then
// finishes the batch and hands its results to then.
func (r *run) runBatch(bg BatchGenerator, jobs []*job, wg *sync.WaitGroup, then func([]result) bool) ([]result, bool) {
	start := time.Now()
	c := new(inflight) // the bulk call; its notes are dropped once it is abandoned
	results := make([]result, len(jobs))
	var reqs []Request
	var reps []*reporter
	var idx []int
	// retries holds the nodes retried alone, with Generate, from attempt
	// 2 on: those whose inputs could not be read at once, and those that
	// failed in the bulk call. Each return of the batch's results waits
	// for them.
	var retries sync.WaitGroup
	retry := func(i int, e error) {
		j := jobs[i]
		retries.Add(1)
		go func() {
			store := func(res result) bool { results[i] = res; return true }
			j.gen, j.wg, j.then = bg, &retries, store
			res, ok := r.tryFrom(j, 2, e)
			if ok && store(res) {
				retries.Done()
			}
		}()
	}
	for i, j := range jobs {
		j.start = start
		r.hashInputs(j)
		if r.cutoff(j) {
			results[i] = r.kept(j)
			continue
		}
		if err := r.load(j); err != nil {
			if res, done := r.unread(j, 1, err); done {
				results[i] = res
			} else {
				retry(i, err) // not in the bulk call
			}
			continue
		}
		rep := &reporter{run: r, node: j.id, stage: int32(j.step.Stage), attempt: 1, call: c}
		reps = append(reps, rep)
		reqs, idx = append(reqs, j.request(1, rep)), append(idx, i)
	}
	if len(reqs) == 0 {
		retries.Wait()
		return results, true
	}
	// A cancel before the nodes' start is published keeps them from
	// starting (unstarted); one after it, before the call, cancels them.
	cancelAll := func(o outcome, cause error) ([]result, bool) {
		c.release()
		for _, i := range idx {
			results[i] = r.newResult(jobs[i], o, 0, cause)
		}
		retries.Wait()
		return results, true
	}
	key := jobs[idx[0]].step.Key
	if err := r.acquire(c, key, len(reqs)); err != nil {
		return cancelAll(unstarted, nil)
	}
	// Each node of the bulk call is a start for the key's quota, taken
	// once there is room for the call, all at once and stamped with the
	// call's start: taken one by one, the first stamps would be earlier
	// than the nodes' real start, and let the next call start too soon.
	rated, err := r.awaitQuota(key, len(reqs))
	if err != nil {
		return cancelAll(unstarted, nil)
	}
	msg := ""
	if r.em.sink != nil { // no text that nobody reads
		msg = fmt.Sprintf("in a batch of %d", len(reqs))
	}
	if !r.started(jobs[idx[0]], msg) {
		rated.giveBack() // no call
		return cancelAll(unstarted, nil)
	}
	for _, i := range idx[1:] { // the batch has started: all its nodes are
		r.nodeEvent(progress.NodeStarted, jobs[i], 1, nil, msg)
	}
	if r.callAt != nil {
		// For the ETA, the nodes are under way from here, as a single's
		// node is from its call: not while they wait for room or quota.
		at := time.Now().UnixNano()
		for _, i := range idx {
			r.callAt[jobs[i].step.Node].Store(at)
		}
	}
	// finish takes the bulk call's outcomes (or its error) to results,
	// retrying failures alone; checks holds the validator's verdicts on
	// the outcomes, made within the call, if the kind has a validator.
	finish := func(outs []Outcome, checks []error, err error) []result {
		if err == nil && len(outs) != len(reqs) {
			// A broken generator: the run may well succeed on the
			// retries, so nothing else would say that its bulk calls
			// turn into single ones.
			err = fmt.Errorf("bulk generator returned %d outcomes for %d requests", len(outs), len(reqs))
			r.e.log.Warn("regen: bulk generator returned another number of outcomes than its requests; the call fails, and each of its nodes is retried alone",
				"run", r.handle.id, "kind", callKinds(jobs, idx), "batch_key", key, "requests", len(reqs), "outcomes", len(outs))
		}
		if pe := (*PanicError)(nil); errors.As(err, &pe) {
			// A panic in the bulk call says nothing about each node: each
			// is retried alone (retryable), and may well succeed, so the
			// log keeps its stack.
			pe.In = inBulkCall
			r.e.log.Warn("regen: bulk generator panicked; the call fails, and each of its nodes is retried alone",
				"run", r.handle.id, "kind", callKinds(jobs, idx), "batch_key", key, "requests", len(reqs),
				"panic", fmt.Sprint(pe.Value), "stack", string(pe.Stack))
		}
		for k, i := range idx {
			j := jobs[i]
			e := err
			if e == nil {
				e = outs[k].Err
			}
			if e == nil && outs[k].empty() {
				e = fmt.Errorf("%w: the bulk call's outcome %d of %d, for node %s, is empty (no Asset field set, and no Err): want the node's output in Asset, or its error in Err",
					ErrInvalidOutput, k+1, len(outs), j.id)
			}
			if e == nil && checks != nil {
				e = checks[k]
			}
			if e == nil {
				res, aerr := r.accept(j, outs[k].Asset, 1)
				if aerr == nil {
					results[i] = res
					continue
				}
				e = aerr
			}
			retry(i, e)
		}
		retries.Wait()
		return results
	}
	// A call that spans kinds (see sharedKinds) has the longest of their
	// BatchTimeouts: none of its nodes is cut shorter than its kind's.
	timeout := jobs[idx[0]].ko.BatchTimeout
	for _, i := range idx[1:] {
		timeout = max(timeout, jobs[i].ko.BatchTimeout)
	}
	// timedOut logs a timeout of the bulk call, as a single node's attempt
	// logs its own (see job.rescue); abandoned says that the call ignored
	// its context's end past its grace.
	timedOut := func(err error, abandoned bool) {
		if te := (*TimeoutError)(nil); errors.As(err, &te) {
			r.e.log.Warn("regen: bulk call timed out: its context was cancelled, what it returned within its grace is kept, and its other nodes are retried alone if their attempts allow",
				"run", r.handle.id, "graph", r.key, "batch_key", key, "kind", callKinds(jobs, idx), "requests", len(reqs),
				"timeout", te.Timeout, "abandoned", abandoned)
		}
	}
	c.batch, c.kinds = key, callKindList(jobs, idx) // for the log, if the call outlives the run
	if cause := r.watch.begin(c, new(attemptCtx), time.Now(), timeout, callGrace(timeout), true, wg, rescueFunc(func(err error) bool {
		timedOut(err, true)
		return then(finish(nil, nil, err))
	})); cause != nil {
		rated.giveBack() // no call
		return cancelAll(cancelled, cause)
	}
	for _, rep := range reps {
		rep.word = c.begun
	}
	outs, err := protect(func() ([]Outcome, error) { return bg.GenerateBatch(c.ctx, reqs), nil })
	for k := range outs {
		outs[k].Err = hostError(outs[k].Err, "")
	}
	var checks []error
	if err == nil && len(outs) == len(reqs) {
		// The checks are part of the bulk call (see check), each node's
		// by its own kind's Validate, in a call that spans kinds too.
		for k := range outs {
			if c.state.Load() != c.begun {
				break // abandoned: the outcomes are thrown away unchecked
			}
			if v := jobs[idx[k]].ko.Validate; v != nil && outs[k].Err == nil && !outs[k].empty() {
				if checks == nil {
					checks = make([]error, len(outs))
				}
				checks[k] = check(v, &reqs[k], outs[k].Asset)
			}
		}
	}
	if !r.watch.end(c) {
		late := err // the bulk call's panic, or else the first of its checks
		for k := 0; late == nil && k < len(checks); k++ {
			if pe := (*PanicError)(nil); errors.As(checks[k], &pe) {
				late = checks[k]
			}
		}
		r.latePanic(late, inBulkCall, "kind", callKinds(jobs, idx), "batch_key", key, "requests", len(reqs))
		r.watch.ended() // after the log: Close waits for it
		return nil, false
	}
	if r.watch.timedOut(c) {
		// The call returned in its grace, after its timeout or the run's
		// cancel: the outcomes it made are kept, and those its context's
		// end cut short are timeouts, retried alone, or cancelled with
		// the run's cause. A slot left unfilled (an empty outcome) is a
		// node it did not get to, cut short too, not an invalid output.
		var cut error = &TimeoutError{Timeout: timeout}
		if r.ctx.Err() != nil {
			cut = r.cause()
		}
		timedOut(cut, false)
		for k := range outs {
			if e := outs[k].Err; outs[k].empty() || errors.Is(e, context.DeadlineExceeded) || errors.Is(e, context.Canceled) {
				outs[k].Err = cut
			}
		}
	}
	return finish(outs, checks, err), true
}

// sleep waits for d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
