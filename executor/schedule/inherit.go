package schedule

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/regengraph/regen/internal/strictjson"
)

// ErrInvalidRateStarts is wrapped by the errors of [Machine.Inherit], and
// of [RateStarts.MarshalJSON] and [RateStarts.UnmarshalJSON] (a
// [*RateStartsError]).
var ErrInvalidRateStarts = errors.New("schedule: invalid rate starts")

// RateStartsError is a [RateStarts] that [RateStarts.UnmarshalJSON] or
// [RateStarts.MarshalJSON] refuses: Problem says what is wrong and what
// is allowed, in the JSON form's words. It wraps [ErrInvalidRateStarts].
type RateStartsError struct {
	// Problem says what is wrong.
	Problem string
}

func (e *RateStartsError) Error() string { return "schedule: invalid rate starts: " + e.Problem }

// Unwrap returns [ErrInvalidRateStarts].
func (e *RateStartsError) Unwrap() error { return ErrInvalidRateStarts }

func badRateStarts(format string, args ...any) error {
	return &RateStartsError{Problem: fmt.Sprintf(format, args...)}
}

// RateStarts is the starts of one batch key that its [Rate] counts, from
// [Machine.RateStarts], for [Machine.Inherit].
//
// # JSON form
//
// A driver that keeps them between rounds (a workflow's input when it
// continues as new, say) writes them with [RateStarts.MarshalJSON] as
// one JSON object, as a [Snapshot]'s "rates" holds them:
//
//	{"key": "asset:image", "starts": ["2025-01-01T00:00:01Z", "2025-01-01T00:00:01.5Z"]}
//
// Times are RFC 3339 in UTC, to the nanosecond, in the order of Starts;
// no starts are written as []. A []RateStarts is a JSON array of them.
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
// returns them while they are in the window, [Machine.RateWait] counts
// them, and a Snapshot holds them until a later start, charge or
// SucceedAt finds they have left it, so that a round without the key
// passes its quota on to the next one. A driver keeps a key's rate in the Config of every round
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
// starts: a machine inherits once), and any call of the zero Machine,
// which has no Config to count starts by and would lose them without a
// word (make one with [New]). Like every other call it is part of the
// driver's record: a replay makes it again.
func (m *Machine) Inherit(starts []RateStarts) error {
	if m.g == nil {
		return fmt.Errorf("%w: the zero Machine has no plan: make one with New, whose Config's rates count the starts", ErrInvalidRateStarts)
	}
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

// The JSON form of a RateStarts, in its words.
const (
	rateStartsObject = `an object such as {"key": "asset:image", "starts": ["2025-01-01T00:00:01Z"]}`
	rateStartsKey    = "a string, the batch key"
	rateStartsList   = `a list of times in strings, such as ["2025-01-01T00:00:01Z"]`
	rateStartsTime   = `a time in a string, such as "2025-01-01T00:00:01Z"`
)

// rateStartsForm is a RateStarts' JSON form.
type rateStartsForm struct {
	Key    string      `json:"key"`
	Starts []time.Time `json:"starts"`
}

// rateStartsShape is the JSON form's object, for strictjson.CheckForm.
var rateStartsShape = &strictjson.Object{Keys: strictjson.Names(rateStartsForm{})}

// rateStartsLegacyShape is the object that encoding/json wrote of a
// RateStarts before it had a JSON form of its own (releases up to
// 607cc88): its Go field names, Starts null for none.
var rateStartsLegacyShape = &strictjson.Object{Keys: []string{"Key", "Starts"}}

// MarshalJSON writes rs in its JSON form (see [RateStarts]): the same
// starts, at the same instants, give the same bytes. A key that
// [RateStarts.UnmarshalJSON] would refuse (the empty key, one that is not
// UTF-8), or a time outside the years 0 to 9999 in UTC, is refused with
// a [*RateStartsError], so that what it writes always reads back.
func (rs RateStarts) MarshalJSON() ([]byte, error) {
	switch {
	case rs.Key == "":
		return nil, badRateStarts(`key "": want a batch key, not the empty string`)
	case !utf8.ValidString(rs.Key):
		return nil, badRateStarts("key %q, which is not UTF-8: %s", cut(rs.Key), notUTF8)
	}
	f := rateStartsForm{Key: rs.Key, Starts: make([]time.Time, len(rs.Starts))}
	for k, t := range rs.Starts {
		if f.Starts[k] = t.UTC().Round(0); f.Starts[k].Year() < 0 || f.Starts[k].Year() > 9999 {
			return nil, badRateStarts("starts[%d] is in the year %d: want the years 0 to 9999 in UTC", k, f.Starts[k].Year())
		}
	}
	return json.Marshal(f)
}

// UnmarshalJSON reads rs in the JSON form that [RateStarts.MarshalJSON]
// writes, strictly, and in the form that releases before it had one
// wrote (up to 607cc88: encoding/json's, with the Go field names "Key"
// and "Starts", both present, Starts null for none), so that the rate
// starts a driver kept across an upgrade still read. Refused, with a
// [*RateStartsError] that says what is allowed: unknown members (a
// misspelt "kee"), members that differ in case (but for both of the
// older form's), repeated
// members, data after the object, a missing, null or empty "key", a
// missing or null "starts" ([] for none), a member of another JSON type,
// a null start, a start that is not an RFC 3339 time or is outside the
// years 0 to 9999 in UTC, and JSON null (whose zero RateStarts, of the
// empty key, [Machine.Inherit] would ignore, losing a quota without a
// word) are refused with a [*RateStartsError] that says what is allowed.
// Times written with another offset than UTC are read as the same
// instants in UTC. On error it leaves rs unchanged.
func (rs *RateStarts) UnmarshalJSON(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		if errors.Is(err, io.EOF) {
			return badRateStarts("bad JSON: no JSON value: want %s", rateStartsObject)
		}
		return badRateStarts("bad JSON: %v", strictjson.Bound(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badRateStarts("bad JSON: data after the object")
	}
	switch raw[0] {
	case 'n':
		return badRateStarts("null: want %s (null would be the starts of no key, and lose a quota)", rateStartsObject)
	case '{':
	default:
		return badRateStarts("bad JSON: want %s, not %s", rateStartsObject, jsonKind(raw))
	}
	legacy, keyName, startsName := false, "key", "starts"
	if err := strictjson.CheckForm(raw, rateStartsShape); err != nil {
		if strictjson.CheckForm(raw, rateStartsLegacyShape) != nil {
			return badRateStarts("bad JSON: %v", strictjson.Bound(err))
		}
		// Key and Starts, both: the form of an older release, whose
		// members its errors name as it wrote them.
		legacy, keyName, startsName = true, "Key", "Starts"
	}
	var f struct {
		Key    json.RawMessage `json:"key"`    // or "Key", in the legacy form
		Starts json.RawMessage `json:"starts"` // or "Starts"
	}
	if err := json.Unmarshal(raw, &f); err != nil { // an object: not expected
		return badRateStarts("bad JSON: %v", strictjson.Bound(err))
	}
	var out RateStarts
	switch {
	case f.Key == nil || string(f.Key) == "null":
		return badRateStarts("missing %q: want %s", keyName, rateStartsKey)
	case f.Key[0] != '"' || json.Unmarshal(f.Key, &out.Key) != nil:
		return badRateStarts("key: want %s, not %s", rateStartsKey, jsonKind(f.Key))
	case out.Key == "":
		return badRateStarts(`key "": want a batch key, not the empty string`)
	}
	var starts []json.RawMessage
	switch {
	case legacy && string(f.Starts) == "null": // no starts, as encoding/json wrote a nil slice
		f.Starts = json.RawMessage("[]")
	}
	switch {
	case f.Starts == nil || string(f.Starts) == "null":
		return badRateStarts("missing %q: want %s, [] for none", startsName, rateStartsList)
	case f.Starts[0] != '[' || json.Unmarshal(f.Starts, &starts) != nil:
		return badRateStarts("starts: want %s, not %s", rateStartsList, jsonKind(f.Starts))
	}
	out.Starts = make([]time.Time, len(starts))
	for k, s := range starts {
		t := &out.Starts[k]
		switch {
		case string(s) == "null":
			return badRateStarts("starts[%d] is null: want %s", k, rateStartsTime)
		case s[0] != '"' || t.UnmarshalJSON(s) != nil:
			return badRateStarts("starts[%d]: want %s, not %s", k, rateStartsTime, jsonKind(s))
		}
		if *t = t.UTC(); t.Year() < 0 || t.Year() > 9999 {
			return badRateStarts("starts[%d] is in the year %d in UTC: want the years 0 to 9999", k, t.Year())
		}
	}
	*rs = out
	return nil
}

// jsonKind says what the JSON value v is, for a message: "a string"
// quoted as written, "the number 3", "an object"...
func jsonKind(v []byte) string {
	switch v[0] {
	case '"':
		return cut(string(v))
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "true or false"
	case 'n':
		return "null"
	}
	return "the number " + cut(string(v))
}
