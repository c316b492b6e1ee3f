package fake

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
)

// Errors of a [Fake]'s attempts, for errors.Is.
var (
	// ErrFailed: the node is listed in [Options.Fail]. The error also
	// wraps an [*executor.PermanentError], so it is not retried.
	ErrFailed = errors.New("fake: injected failure")
	// ErrFlaky: the attempt failed at random ([Options.Flaky]). It is
	// retryable.
	ErrFlaky = errors.New("fake: flaky attempt")
)

// DefaultNarration is the Length of narration outputs when
// [Options.Narration] is 0: one segment, which the lecture's narration
// check accepts.
const DefaultNarration = graph.SegmentLength

// Options configures a [Fake]. The zero value gives instant, always
// successful generators.
type Options struct {
	// Seed seeds the latencies and the flaky outcomes. Default: 0.
	Seed uint64
	// Latency is the median latency of an attempt, per kind name. Kinds
	// not listed use Default.
	Latency map[string]time.Duration
	// Default is the median latency of the kinds not in Latency.
	// Default: 0, no wait.
	Default time.Duration
	// Sigma is the log-normal sigma of the latency: an attempt takes
	// median·exp(Sigma·Z) with Z standard normal. Default: 0, always the
	// median.
	Sigma float64
	// Fail lists the node IDs whose generator fails every attempt, with
	// an error wrapping [ErrFailed] that the executor does not retry.
	// Default: none.
	Fail map[string]bool
	// Flaky is the probability, from 0 to 1, that an attempt fails with a
	// retryable error wrapping [ErrFlaky]. Default: 0, never.
	Flaky float64
	// Narration is the Length of the outputs of the lecture's
	// asset:narration kind. Default: [DefaultNarration], 10 s.
	Narration time.Duration
}

// Fake is a deterministic fake generator: see the package documentation.
// It is safe for concurrent use. New copies the Options, maps included,
// so changing them afterwards does not change the Fake.
type Fake struct {
	opts  Options
	calls atomic.Int64
}

// New returns a fake generator. Options are the caller's to check: New
// panics on a negative duration, a negative or NaN Sigma, or a Flaky
// outside [0, 1], which are programming errors in a test or an example.
func New(o Options) *Fake {
	bad := func(format string, args ...any) {
		panic("fake: " + fmt.Sprintf(format, args...))
	}
	if o.Default < 0 {
		bad("Options.Default %v: want 0 or more", o.Default)
	}
	for kind, d := range o.Latency {
		if d < 0 {
			bad("Options.Latency[%q] %v: want 0 or more", kind, d)
		}
	}
	if o.Sigma < 0 || math.IsNaN(o.Sigma) || math.IsInf(o.Sigma, 0) {
		bad("Options.Sigma %v: want a finite value from 0", o.Sigma)
	}
	if !(o.Flaky >= 0 && o.Flaky <= 1) {
		bad("Options.Flaky %v: want a probability from 0 to 1", o.Flaky)
	}
	if o.Narration < 0 {
		bad("Options.Narration %v: want 0 (default) or more", o.Narration)
	}
	if o.Narration == 0 {
		o.Narration = DefaultNarration
	}
	o.Latency, o.Fail = maps.Clone(o.Latency), maps.Clone(o.Fail)
	return &Fake{opts: o}
}

// LectureMedians returns median latencies for the lecture template's
// kinds, as real providers might have them: script 20 s, narration 3 s,
// image 8 s, video 30 s, music 20 s, timeline 10 s. They are the issue's
// schedule-quality workload. Each call returns a new map.
func LectureMedians() map[string]time.Duration {
	return map[string]time.Duration{
		graph.KindScript:    20 * time.Second,
		graph.KindNarration: 3 * time.Second,
		graph.KindImage:     8 * time.Second,
		graph.KindVideo:     30 * time.Second,
		graph.KindMusic:     20 * time.Second,
		graph.KindTimeline:  10 * time.Second,
	}
}

// Registry returns a registry with f as the generator of each kind
// given; with no kinds, of each kind of the lecture template.
func (f *Fake) Registry(kinds ...string) executor.Registry {
	if len(kinds) == 0 {
		for _, k := range graph.Lecture().Kinds {
			kinds = append(kinds, k.Name)
		}
	}
	reg := make(executor.Registry, len(kinds))
	for _, k := range kinds {
		reg[k] = f
	}
	return reg
}

// Calls returns the number of attempts f has started: calls of Generate,
// including those that failed or were cancelled.
func (f *Fake) Calls() int { return int(f.calls.Load()) }

// Generate waits the node's latency ([Fake.Latency]) with a timer that
// honours ctx, then fails as the Options say, or returns the node's
// output. The output's Data and Hash depend only on the node ID, req.Rev
// and the dependencies' output hashes; its Length is Options.Narration
// for the asset:narration kind and 0 otherwise. If ctx ends first,
// Generate returns ctx.Err().
func (f *Fake) Generate(ctx context.Context, req executor.Request) (executor.Asset, error) {
	f.calls.Add(1)
	id, kind := req.NodeID, req.ID.Kind
	switch {
	case id == "":
		id = req.ID.String()
	case kind == "":
		kind = kindOf(id)
	}
	if err := sleep(ctx, f.latency(kind, id, req.Rev, req.Attempt)); err != nil {
		return executor.Asset{}, err
	}
	if f.opts.Fail[id] {
		return executor.Asset{}, executor.Permanent(fmt.Errorf("%w: %s fails every attempt", ErrFailed, id))
	}
	if f.opts.Flaky > 0 && f.rng("flaky", id, req.Rev, req.Attempt).Float64() < f.opts.Flaky {
		return executor.Asset{}, fmt.Errorf("%w: %s, attempt %d", ErrFlaky, id, req.Attempt)
	}
	return f.output(kind, id, req), nil
}

// Latency returns how long attempt number attempt of the node, at
// parameters revision rev, takes: the median of the node's kind times
// exp(Sigma·Z), with Z standard normal drawn from (Seed, nodeID, rev,
// attempt). It is a pure function of those values and the Options.
func (f *Fake) Latency(nodeID string, rev int64, attempt int) time.Duration {
	return f.latency(kindOf(nodeID), nodeID, rev, attempt)
}

// kindOf returns the kind of a node ID, or the ID itself if it does not
// parse.
func kindOf(nodeID string) string {
	if id, err := graph.ParseID(nodeID); err == nil {
		return id.Kind
	}
	return nodeID
}

func (f *Fake) latency(kind, id string, rev int64, attempt int) time.Duration {
	median, ok := f.opts.Latency[kind]
	if !ok {
		median = f.opts.Default
	}
	if f.opts.Sigma == 0 || median == 0 {
		return median
	}
	z := f.rng("latency", id, rev, attempt).NormFloat64()
	d := float64(median) * math.Exp(f.opts.Sigma*z)
	if d >= math.MaxInt64 {
		return math.MaxInt64
	}
	return time.Duration(d)
}

// rng returns a generator seeded by a hash of the Seed, a purpose and
// the attempt's coordinates, so that each purpose gets its own stream.
func (f *Fake) rng(purpose, id string, rev int64, attempt int) *rand.Rand {
	b := make([]byte, 0, 64+len(id))
	b = append(b, "regen-fake-v1\x00"...)
	b = append(b, purpose...)
	b = append(b, 0)
	b = binary.BigEndian.AppendUint64(b, f.opts.Seed)
	b = binary.BigEndian.AppendUint64(b, uint64(rev))
	b = binary.BigEndian.AppendUint64(b, uint64(attempt))
	b = append(b, id...)
	sum := sha256.Sum256(b)
	return rand.New(rand.NewPCG(binary.BigEndian.Uint64(sum[:8]), binary.BigEndian.Uint64(sum[8:16])))
}

// output is the node's asset for its revision and inputs.
func (f *Fake) output(kind, id string, req executor.Request) executor.Asset {
	data := fmt.Appendf(nil, "fake %s@%d", id, req.Rev)
	for _, d := range req.Deps {
		h := d.Asset.Hash
		if h == "" {
			sum := sha256.Sum256(d.Asset.Data)
			h = hex.EncodeToString(sum[:])
		}
		data = append(data, " <"...)
		data = append(data, h...)
		data = append(data, '>')
	}
	sum := sha256.Sum256(data)
	a := executor.Asset{Data: data, Hash: hex.EncodeToString(sum[:])}
	if kind == graph.KindNarration {
		a.Length = f.opts.Narration
	}
	return a
}

// sleep waits for d, or returns ctx.Err() if ctx ends first.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
