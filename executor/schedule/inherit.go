package schedule

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// ErrInvalidRateStarts is wrapped by the errors of [Machine.Inherit].
var ErrInvalidRateStarts = errors.New("schedule: invalid rate starts")

// RateStarts is the starts of one batch key that its [Rate] counts, from
// [Machine.RateStarts], for [Machine.Inherit].
type RateStarts struct {
	// Key is the batch key.
	Key string
	// Starts are the times of the starts, oldest first from
	// [Machine.RateStarts]; [Machine.Inherit] takes them in any order.
	Starts []time.Time
}

// RateStarts returns, by ascending batch key, the starts that each
// key's rate still counts at now, oldest first, leaving out the keys
// with none: what a machine of the next plan inherits with
// [Machine.Inherit] when a driver continues as new (a workflow that
// starts anew with a new plan, say), so that its providers' quotas
// carry over. The keys are those of the plan with a rate in the Config,
// and those with a rate in the Config that the plan has not, whose
// starts this machine inherited: a round whose plan has no node of a
// key passes that key's starts on to the next round, until they leave
// the window. The times are those the driver passed this machine, on
// its clock (Inherit says how a driver with another clock gives them).
// It changes nothing, and returns new slices that the caller owns. It
// costs O(K log K + S) for K batch keys and S starts.
func (m *Machine) RateStarts(now time.Time) []RateStarts {
	var out []RateStarts
	add := func(ks *keyState) {
		if ks.rate.Starts == 0 {
			return
		}
		if first := ks.live(now); first < len(ks.starts) {
			out = append(out, RateStarts{Key: ks.name, Starts: slices.Clone(ks.starts[first:])})
		}
	}
	for ki := 1; ki < len(m.keys); ki++ {
		add(&m.keys[ki])
	}
	for ki := range m.carry {
		add(&m.carry[ki])
	}
	slices.SortFunc(out, func(a, b RateStarts) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// rated returns the state of the batch key with a rate named key, of
// the plan or carried (Machine.carry), or nil.
func (m *Machine) rated(key string) *keyState {
	for ki := 1; ki < len(m.keys); ki++ {
		if ks := &m.keys[ki]; ks.name == key {
			if ks.rate.Starts == 0 {
				return nil
			}
			return ks
		}
	}
	if k, ok := slices.BinarySearchFunc(m.carry, key, func(ks keyState, key string) int { return strings.Compare(ks.name, key) }); ok {
		return &m.carry[k]
	}
	return nil
}

// Inherit counts starts that an earlier machine made against this one's
// rates, as if they were its own: a driver that continues as new with a
// new plan gives it what the earlier machine's [Machine.RateStarts]
// returned, before the first [Machine.Next] or [Machine.More]. Of a
// key's starts it keeps the latest, up to its rate's Starts (the earlier
// ones cannot decide when the next start may come); a key that has no
// rate in this machine's Config is ignored, as its window is not known.
// The starts count until their rate's Per after them, as any start does,
// and a [Snapshot] holds them; no node counts them, so none is refunded.
// The starts of a key with a rate that the plan has not are kept too,
// though no node of this plan waits on them: [Machine.RateStarts]
// returns them while they are in the window, and a Snapshot holds
// them, so that a round without the key passes its quota on to the
// next one. A driver keeps a key's rate in the Config of every round
// for that.
//
// The starts must be times on the clock that the driver passes this
// machine, none later than the now of its first Next or More. The
// machine has no clock, and Inherit takes no time, so it cannot tell a
// start from a host whose clock runs ahead, or from a driver that passed
// the old machine another clock, from one made just now: such a start
// is taken as it is, and holds its key back until Per after it, longer
// than a start made at now would. A driver that continues on another host, or with another clock,
// brings the starts onto its own first: as no start was made later than
// the moment it inherits, it may give each as the earlier of the start
// and its now (which keeps them in order), or shift them all by the
// clocks' offset when it knows it.
//
// A key's starts may come in any order: they are taken by time (in
// O(S) when in order, O(S log S) else, for S starts), as [Restore] takes
// a snapshot's, so that the same starts in any order give the same
// machine. A driver that passes time.Now() gets them out of order from
// the JSON of RateStarts of a machine whose wall clock stepped back
// between two starts: the machine ordered them by their monotonic
// readings, which JSON does not keep. Inherit drops those readings and
// orders by wall time, so that the starts a driver read and the same
// starts read back from JSON give the same machine (a replay of its
// journal keeps what the first run kept).
//
// It refuses, with an error wrapping [ErrInvalidRateStarts], and changes
// nothing: a key given twice, and any call once a node has started (a
// machine restored from a snapshot of a run that started nodes, say) or
// a rate has counted a start (after an earlier Inherit that gave a key
// starts: a machine inherits once). Like every other call it is part of
// the driver's record: a replay makes it again.
func (m *Machine) Inherit(starts []RateStarts) error {
	for i, s := range m.state {
		if s == Running || (s.Terminal() && s != Skipped) {
			return fmt.Errorf("%w: node %q is %s: a node has started: inherit the starts before the first Next", ErrInvalidRateStarts, m.g.NodeID(m.nodes[i]), s)
		}
	}
	// No node has started: a key's starts were inherited, by this machine
	// or by the one a snapshot of it was taken of.
	for _, ks := range slices.Concat(m.keys, m.carry) {
		if len(ks.starts) > 0 {
			return fmt.Errorf("%w: batch key %q has inherited starts already: a machine inherits once, before its first Next", ErrInvalidRateStarts, cut(ks.name))
		}
	}
	seen := make(map[string]bool, len(starts))
	for _, rs := range starts {
		if seen[rs.Key] {
			return fmt.Errorf("%w: batch key %q twice: give each key once", ErrInvalidRateStarts, cut(rs.Key))
		}
		seen[rs.Key] = true
	}
	for _, rs := range starts {
		ks := m.rated(rs.Key)
		if ks == nil || len(rs.Starts) == 0 {
			continue
		}
		byTime := make([]time.Time, len(rs.Starts))
		for i, t := range rs.Starts {
			byTime[i] = t.Round(0) // by wall time, as from JSON
		}
		ascending(byTime)
		ks.starts, ks.first = byTime[max(0, len(byTime)-ks.rate.Starts):], 0
	}
	return nil
}
