package schedule

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/internal/strictjson"
	"github.com/regengraph/regen/planner"
)

// SnapshotVersion is the version of the snapshot form that
// [Machine.Snapshot] writes. [Restore] reads it and every earlier one:
// version 1 is version 2 without "parts" (see [Snapshot]).
const SnapshotVersion = 2

// ErrInvalidSnapshot is wrapped by the errors of [Restore] and
// [Snapshot.UnmarshalJSON] for a snapshot they refuse.
var ErrInvalidSnapshot = errors.New("schedule: invalid snapshot")

// SnapshotError is a snapshot that [Restore] or [Snapshot.UnmarshalJSON]
// refuses: Problem says what is wrong with it and what is allowed. It
// wraps [ErrInvalidSnapshot].
type SnapshotError struct {
	// Problem says what is wrong.
	Problem string
	// Mismatch says the snapshot is of another plan or Config (its
	// fingerprint is another), rather than corrupt.
	Mismatch bool
	// Differs says, with Mismatch, what differs from the snapshot's, in
	// this order: "plan" (the graph's template or segments, the plan's
	// nodes, stages or batch keys), then the [Config] fields "Mode",
	// "Workers", "Caps", "Rates", "Windows", "MaxBatch" and "Shared",
	// each as the machine takes it (a cap that lowers no concurrency, say,
	// is no difference; a change of Mode may change the Windows that
	// apply, and so may a change of Shared, as kinds that share calls
	// share a window). When the plan differs, Caps, Rates, Windows and
	// Shared are not compared, as
	// what the machine takes of them depends on the plan. It is nil when
	// the snapshot cannot say: one of version 1. A snapshot whose Rates
	// alone differ is restored, not refused (see [Restore]).
	Differs []string
}

func (e *SnapshotError) Error() string { return "schedule: invalid snapshot: " + e.Problem }

// Unwrap returns [ErrInvalidSnapshot].
func (e *SnapshotError) Unwrap() error { return ErrInvalidSnapshot }

func badSnapshot(format string, args ...any) error {
	return &SnapshotError{Problem: fmt.Sprintf(format, args...)}
}

// stateLetters are the states' letters in a snapshot's "states", by
// State.
const stateLetters = "prRsfkSc"

// Snapshot is a machine's state at one point of its run, from
// [Machine.Snapshot]: [Restore] makes a machine from it that answers
// every further call as the snapshotted one does. Its zero value is no
// snapshot, which Restore refuses, and which its JSON form writes as
// null. It is immutable and shares no memory
// with the machine: it may be copied, and kept while the machine goes on.
//
// # JSON form
//
// [Snapshot.MarshalJSON] writes it as one JSON object, version 2, whose
// keys come in this order, and the same state gives the same bytes:
//
//	{"version": 2,
//	 "fingerprint": "3f1c…",              // 64 hex digits: the plan and Config
//	 "parts": {"plan": "9a0e…", "mode": "…", "workers": "…", "caps": "…",
//	           "rates": "…", "windows": "…", "maxBatch": "…",
//	           "shared": "…"},                // 16 hex digits each
//	 "states": "ssRRrrpp",                // one letter a planned node, in Plan.Nodes order
//	 "ready": [12, 9],                    // the Ready nodes, in the order they became ready
//	 "readySince": [{"node": 12, "at": "2025-01-01T00:00:03Z"}],
//	 "held": [{"stage": 2, "nodes": [14, 13]}],
//	 "running": [{"node": 3, "rateStart": "2025-01-01T00:00:01Z", "call": 3, "callNodes": 2}],
//	 "rates": [{"key": "asset:image", "starts": ["2025-01-01T00:00:01Z"]}],
//	 "halted": true,
//	 "wake": "2025-01-01T00:00:05Z"}
//
// Nodes are graph.Node numbers, and times are RFC 3339 in UTC, to the
// nanosecond; a rate's start at the zero time, from a driver whose clock
// begins there, is written as such (0001-01-01T00:00:00Z). The states' letters are p pending, r ready, R running,
// s succeeded, f failed, k skipped, S superseded and c cancelled.
// "readySince" gives, by ascending node, when a Ready node of a kind
// with a batch window ([Config.Windows]) became ready, once a call has
// noted it; "held" the nodes of each later stage, in Staged mode, whose
// dependencies have all succeeded, in the order in which they become
// Ready when their stage opens; "running", by ascending node, the start
// that a running node's rate counts ([Rate]: none once refunded), and,
// with [Config.MaxBatch], the first node of its bulk call and how many
// nodes that call took; "rates" the starts of each rate-limited batch
// key, by key, ascending by time, that may still be in its window (the
// calls charged to it with [Machine.ChargeAt] among them): the machine
// has no clock, so for a key of the plan those from the first that was
// in the window at the key's latest start or charge (the later ones
// drop those that left it since), and for a key the plan has not, whose
// starts the machine carries since it inherited them ([Machine.Inherit]),
// those in the window at the latest time passed to a call that started
// a node (Next, More), charged a call or settled one with SucceedAt;
// "wake" what [Machine.Wake] answers. Keys with nothing to say ("readySince", "held",
// "running", "rates", "halted", "wake", "rateStart", "call",
// "callNodes") are left out. The nodes running on each key, the workers
// in use, the stages settled (and so reported by
// [Result.StagesFinished]) and how many dependencies each node waits on
// follow from the states, and are not written.
//
// "fingerprint" is a SHA-256 of what the machine takes from its plan
// and [Config]: the graph's template and segments, the plan's nodes with
// their stages and batch keys, each key's concurrency (after
// [Config.Caps]) and [Rate], the batch windows that apply, the mode,
// [Config.Workers], [Config.MaxBatch] and the kinds that share calls
// ([Config.Shared]; none adds nothing, so that a snapshot without them
// has the fingerprint it had before Shared came). A Config that differs only in
// what the machine ignores, or decides nothing by (a rate of a key the
// plan has not, say, which only carries inherited starts: see
// [Restore]), has the same one. The same plan and Config have the same fingerprint in
// every process, and in every release that writes version 1 or 2.
// "parts" holds the first 8 bytes, in hex, of a SHA-256 of each part of
// it: the plan (with each batch key's concurrency before Config.Caps)
// and each Config field as the machine takes it ("shared" left out when
// no kind shares calls), so that Restore can say
// which differs ([SnapshotError.Differs]) and restore a snapshot under
// other rates. With the same fingerprint, the plan's digest alone may
// differ, for a batch key whose concurrency a cap lowers to the same
// limit in a plan assembled by hand: the machine takes it as the same,
// and Restore restores the snapshot, as it does one of version 1,
// without checking that digest (it cannot make the other plan's); the
// other digests must then be the machine's.
//
// Version 1, which earlier releases wrote, is version 2 without "parts":
// it restores as ever, and the machine then writes version 2, which
// those releases refuse. A snapshot whose "rates" hold the starts of a
// key the plan has not, which a machine carries since it inherited them
// ([Machine.Inherit]), is of version 2 too, but the releases of version
// 2 from before machines carried them refuse it, as a key of "rates"
// that is not the plan's: a driver that may go back to one of those
// does not give a machine whose snapshots it keeps the starts of a key
// its plan has not. A later release may write another version;
// Restore then refuses a version it does not know with a
// [*SnapshotError] that says so.
type Snapshot struct {
	s snapshotForm
}

// snapshotForm is a Snapshot's JSON form.
type snapshotForm struct {
	Version     int           `json:"version"`
	Fingerprint string        `json:"fingerprint"`
	Parts       *partsForm    `json:"parts,omitempty"`
	States      string        `json:"states"`
	Ready       []graph.Node  `json:"ready"`
	ReadySince  []nodeTime    `json:"readySince,omitempty"`
	Held        []heldStage   `json:"held,omitempty"`
	Running     []runningNode `json:"running,omitempty"`
	Rates       []rateStarts  `json:"rates,omitempty"`
	Halted      bool          `json:"halted,omitempty"`
	Wake        time.Time     `json:"wake,omitzero"`
}

// partsForm is a snapshot's "parts": a digest of each part of its
// fingerprint.
type partsForm struct {
	Plan     string `json:"plan"`
	Mode     string `json:"mode"`
	Workers  string `json:"workers"`
	Caps     string `json:"caps"`
	Rates    string `json:"rates"`
	Windows  string `json:"windows"`
	MaxBatch string `json:"maxBatch"`
	// Shared is left out when no kind shares calls (Config.Shared), as
	// snapshots before it were.
	Shared string `json:"shared,omitempty"`
}

// list returns the parts' digests and names, in Differs order.
func (p *partsForm) list() [8]struct{ name, digest string } {
	return [8]struct{ name, digest string }{{"plan", p.Plan}, {"Mode", p.Mode}, {"Workers", p.Workers},
		{"Caps", p.Caps}, {"Rates", p.Rates}, {"Windows", p.Windows}, {"MaxBatch", p.MaxBatch}, {"Shared", p.Shared}}
}

type nodeTime struct {
	Node graph.Node `json:"node"`
	At   time.Time  `json:"at"`
}

type heldStage struct {
	Stage int          `json:"stage"`
	Nodes []graph.Node `json:"nodes"`
}

type runningNode struct {
	Node graph.Node `json:"node"`
	// RateStart is a pointer so that a start at the zero time, which a
	// driver whose clock begins there makes, is written too.
	RateStart *time.Time  `json:"rateStart,omitempty"`
	Call      *graph.Node `json:"call,omitempty"`
	CallNodes int         `json:"callNodes,omitempty"`
}

type rateStarts struct {
	Key    string      `json:"key"`
	Starts []time.Time `json:"starts"`
}

// snapshotShape is the JSON form's objects, for strictjson.CheckForm.
// The top-level keys are listed: strictjson.Names would add the keys of
// the objects within.
var snapshotShape = func() *strictjson.Object {
	return &strictjson.Object{
		Keys: []string{"fingerprint", "halted", "held", "parts", "rates", "ready", "readySince", "running", "states", "version", "wake"},
		Items: map[string]*strictjson.Object{
			"parts":      {Keys: strictjson.Names(partsForm{})},
			"readySince": {Keys: strictjson.Names(nodeTime{})},
			"held":       {Keys: strictjson.Names(heldStage{})},
			"running":    {Keys: strictjson.Names(runningNode{})},
			"rates":      {Keys: strictjson.Names(rateStarts{})},
		},
	}
}()

// snapshotJSON is what the members of a snapshot's JSON form hold.
var snapshotJSON = func() *jsonForm {
	const node = "a node, an integer such as "
	j := &jsonForm{
		top: `an object, such as {"version": 2, "fingerprint": "3f1c…", …}`,
		members: map[string]jsonMember{
			"version":           {"", "version", fmt.Sprintf("an integer, 1 to %d", SnapshotVersion)},
			"fingerprint":       {"", "fingerprint", fmt.Sprintf("a string of %d lowercase hex digits", 2*sha256.Size)},
			"parts":             {"", "parts", `an object of the parts' digests, such as {"plan": "9a0e…", "mode": "…", …}`},
			"states":            {"", "states", fmt.Sprintf("a string, one letter a planned node, of %q", stateLetters)},
			"ready":             {"", "ready", "a list of nodes, such as [12, 9]"},
			"readySince":        {"", "readySince", `a list, such as [{"node": 12, "at": "2025-01-01T00:00:03Z"}]`},
			"readySince.node":   {"", `readySince: an entry's "node"`, node + "12"},
			"readySince.at":     {"", `readySince: an entry's "at"`, `a time in a string, such as "2025-01-01T00:00:03Z"`},
			"held":              {"", "held", `a list, such as [{"stage": 2, "nodes": [14, 13]}]`},
			"held.stage":        {"", `held: an entry's "stage"`, "an integer, a stage"},
			"held.nodes":        {"", `held: an entry's "nodes"`, "a list of nodes, such as [14, 13]"},
			"running":           {"", "running", `a list, such as [{"node": 3, "rateStart": "2025-01-01T00:00:01Z"}]`},
			"running.node":      {"", `running: an entry's "node"`, node + "3"},
			"running.rateStart": {"", `running: an entry's "rateStart"`, `a time in a string, such as "2025-01-01T00:00:01Z"`},
			"running.call":      {"", `running: an entry's "call"`, node + "3"},
			"running.callNodes": {"", `running: an entry's "callNodes"`, "an integer, 1 or more"},
			"rates":             {"", "rates", `a list, such as [{"key": "asset:image", "starts": ["2025-01-01T00:00:01Z"]}]`},
			"rates.key":         {"", `rates: an entry's "key"`, "a string, the batch key"},
			"rates.starts":      {"", `rates: an entry's "starts"`, `a list of times in strings, such as ["2025-01-01T00:00:01Z"]`},
			"halted":            {"", "halted", "true or false"},
			"wake":              {"", "wake", `a time in a string, such as "2025-01-01T00:00:05Z"`},
		},
		entries: map[string]string{
			"ready":        node + "12",
			"readySince":   `an object such as {"node": 12, "at": "2025-01-01T00:00:03Z"}`,
			"held":         `an object such as {"stage": 2, "nodes": [14, 13]}`,
			"held.nodes":   node + "14",
			"running":      `an object such as {"node": 3, "rateStart": "2025-01-01T00:00:01Z"}`,
			"rates":        `an object such as {"key": "asset:image", "starts": ["2025-01-01T00:00:01Z"]}`,
			"rates.starts": `a time in a string, such as "2025-01-01T00:00:01Z"`,
		},
	}
	for _, name := range strictjson.Names(partsForm{}) {
		j.members["parts."+name] = jsonMember{"", fmt.Sprintf("parts: %q", name), fmt.Sprintf("a string of %d lowercase hex digits", 2*partDigest)}
	}
	return j
}()

// Version returns the snapshot's version: [SnapshotVersion] for one
// that [Machine.Snapshot] made, the version it was written in for one
// that decoded, 0 for the zero Snapshot.
func (s Snapshot) Version() int { return s.s.Version }

// MarshalJSON writes the snapshot in its JSON form (see [Snapshot]): the
// same state gives the same bytes. The zero Snapshot, which is no
// snapshot, is written as null, which [Snapshot.UnmarshalJSON] reads as
// leaving the value as it is: a host's record that holds no snapshot yet
// reads back with none. It fails only for a time outside the years 0 to
// 9999, as encoding/json does for a time.Time.
func (s Snapshot) MarshalJSON() ([]byte, error) {
	if s.s.Version == 0 {
		return []byte("null"), nil
	}
	if s.s.Ready == nil {
		s.s.Ready = []graph.Node{} // "ready": [], never null
	}
	return json.Marshal(s.s)
}

// UnmarshalJSON reads a snapshot in its JSON form, strictly: unknown
// keys, keys that differ in case, repeated keys, data after the object,
// a member of another JSON type (a string for "version", an object for
// "ready"), a null entry of a list or member of an entry (which
// encoding/json would read as node 0, or a start at the zero time), an
// entry of a list without a member that [Machine.Snapshot] always
// writes (a "readySince" entry's "node" or "at", a "held" entry's
// "stage" or "nodes", a "running" entry's "node", a "rates" entry's
// "key" or "starts"), an entry of "rates" of the empty key (which
// Restore would drop as a key it does not rate), a version other
// than 1 to
// [SnapshotVersion], and "parts" in version 1 or missing in a later one,
// are refused with a [*SnapshotError], whose Problem names the member
// and what it holds in the form's words ("ready: want a list of nodes,
// such as [12, 9], not an object"). A time written with another offset
// than UTC is read as the same instant in UTC, and a key's rate starts
// listed out of order (by hand, or by a release that wrote the wall
// times of a driver's time.Now() in the order they were made, across a
// step back of the wall clock) are taken by time, so that the snapshot
// writes back as [Machine.Snapshot] would. It checks the form alone;
// [Restore] checks the snapshot against its plan and Config. JSON null
// leaves s as it is, as encoding/json does for a null value, and as
// [Config.UnmarshalJSON] and planner.Plan's UnmarshalJSON do. On error
// it leaves s unchanged.
func (s *Snapshot) UnmarshalJSON(data []byte) error {
	if string(bytes.Trim(data, " \t\r\n")) == "null" { // JSON's whitespace only
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		if errors.Is(err, io.EOF) {
			return badSnapshot("bad JSON: no JSON value: want an object")
		}
		return badSnapshot("bad JSON: %v", strictjson.Bound(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badSnapshot("bad JSON: data after the snapshot object")
	}
	if err := strictjson.CheckForm(raw, snapshotShape); err != nil {
		return badSnapshot("bad JSON: %v", strictjson.Bound(err))
	}
	var f snapshotForm
	dec = json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) || errors.As(timeTypes(raw), &te) {
			_, problem := snapshotJSON.typeProblem(te)
			return badSnapshot("%s", problem)
		}
		return badSnapshot("bad JSON: %v", strictjson.Bound(err))
	}
	if _, problem, ok := snapshotJSON.nullProblem(raw); ok {
		return badSnapshot("%s", problem)
	}
	if f.Version < 1 || f.Version > SnapshotVersion {
		return badSnapshot("version %d: this release reads versions 1 to %d", f.Version, SnapshotVersion)
	}
	switch {
	case f.Version == 1 && f.Parts != nil:
		return badSnapshot(`"parts" in version 1: it came with version 2`)
	case f.Version > 1 && f.Parts == nil:
		return badSnapshot(`missing "parts": version %d has them`, f.Version)
	case f.Parts != nil:
		for _, p := range f.Parts.list() {
			if p.name == "Shared" && p.digest == "" {
				continue // no kind shares calls
			}
			if !isHex(p.digest, partDigest) {
				return badSnapshot("parts: %s %q: want %d lowercase hex digits", strings.ToLower(p.name[:1])+p.name[1:], cut(p.digest), 2*partDigest)
			}
		}
	}
	if !isHex(f.Fingerprint, sha256.Size) {
		return badSnapshot("fingerprint %q: want %d lowercase hex digits", cut(f.Fingerprint), 2*sha256.Size)
	}
	for i, r := range f.States {
		if !strings.ContainsRune(stateLetters, r) {
			return badSnapshot("states: %q at %d is no state's letter: want one of %q", string(r), i, stateLetters)
		}
	}
	if f.Ready == nil {
		return badSnapshot(`missing "ready": want the Ready nodes, [] for none`)
	}
	if err := entries(raw, &f); err != nil {
		return err
	}
	// Times written with another offset are the same instants: in UTC,
	// the snapshot is the one the machine would take, and writes the
	// same bytes.
	f.Wake = utc(f.Wake)
	for k := range f.ReadySince {
		f.ReadySince[k].At = utc(f.ReadySince[k].At)
	}
	for k, r := range f.Running {
		if r.RateStart != nil {
			at := utc(*r.RateStart)
			f.Running[k].RateStart = &at
		}
	}
	for _, r := range f.Rates {
		for k, t := range r.Starts {
			r.Starts[k] = utc(t)
		}
		ascending(r.Starts)
	}
	s.s = f
	return nil
}

// entryMembers are the members that every entry of a snapshot's lists
// has, as Machine.Snapshot writes them, in the order they are checked.
var entryMembers = []struct {
	list    string
	members []string
}{
	{"readySince", []string{"node", "at"}},
	{"held", []string{"stage", "nodes"}},
	{"running", []string{"node"}},
	{"rates", []string{"key", "starts"}},
}

// entries refuses an entry of a snapshot's lists, read from raw as f,
// without a member that the form always has, or an entry of "rates" of
// the empty key: encoding/json reads a missing member as node 0, stage
// 0, the zero time or the empty key, whose starts Restore would drop as
// those of a key it does not rate, and a missing list as none, which
// writes back as null.
func entries(raw []byte, f *snapshotForm) error {
	if len(f.ReadySince)+len(f.Held)+len(f.Running)+len(f.Rates) > 0 {
		var lists map[string]json.RawMessage
		if err := json.Unmarshal(raw, &lists); err != nil { // read as f already: not expected
			return badSnapshot("bad JSON: %v", strictjson.Bound(err))
		}
		for _, l := range entryMembers {
			var list []map[string]json.RawMessage
			if raw := lists[l.list]; raw != nil {
				if err := json.Unmarshal(raw, &list); err != nil { // as above
					return badSnapshot("bad JSON: %v", strictjson.Bound(err))
				}
			}
			for k, e := range list {
				for _, m := range l.members {
					if _, ok := e[m]; !ok {
						return badSnapshot("%s[%d]: missing %q: want %s", l.list, k, m, snapshotJSON.members[l.list+"."+m].want)
					}
				}
			}
		}
	}
	for k, r := range f.Rates {
		if r.Key == "" {
			return badSnapshot(`rates[%d]: key "": want a batch key, not the empty string`, k)
		}
	}
	return nil
}

// timeTypes returns the *json.UnmarshalTypeError of the first time
// member of the snapshot's JSON form, raw, that is not a string (or
// null) or is a string that is not a time, which time.Time refuses in
// words that name no member; nil if there is none.
func timeTypes(raw []byte) error {
	var f struct {
		ReadySince []struct {
			At jsonTime `json:"at"`
		} `json:"readySince"`
		Running []struct {
			RateStart jsonTime `json:"rateStart"`
		} `json:"running"`
		Rates []struct {
			Starts []jsonTime `json:"starts"`
		} `json:"rates"`
		Wake jsonTime `json:"wake"`
	}
	return json.Unmarshal(raw, &f)
}

// jsonTime is a time member of a snapshot's JSON form, for timeTypes: a
// value that is not a string, or a string that time.Time does not read,
// is refused with a *json.UnmarshalTypeError, to which encoding/json adds
// the member.
type jsonTime struct{}

func (jsonTime) UnmarshalJSON(b []byte) error {
	kind := "number"
	switch b[0] {
	case 'n': // null
		return nil
	case '"':
		var t time.Time
		if t.UnmarshalJSON(b) == nil {
			return nil
		}
		kind = "string " + string(b) // the string as written, quoted
	case '{':
		kind = "object"
	case '[':
		kind = "array"
	case 't', 'f':
		kind = "bool"
	}
	return &json.UnmarshalTypeError{Value: kind, Type: reflect.TypeFor[time.Time]()}
}

// isHex reports whether s is n bytes in lowercase hex.
func isHex(s string, n int) bool {
	if len(s) != 2*n || strings.ToLower(s) != s {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// cut returns s, or its first bytes if it is long, for a message.
func cut(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// Snapshot returns the machine's state: [Restore], given it with the same
// plan and Config, makes a machine that answers every further call as
// this one does (Next, More, the transitions, Refund, ChargeAt, Halt
// and the queries alike), so that a driver, such as a workflow that continues as
// new, need not keep or replay the calls made so far. It changes
// nothing, is a query as the package doc lists them, and shares no
// memory with the machine. It costs O(D + R log R + K log K + S) time
// and allocates O(D + K + S) for D planned nodes, R of them Ready, K
// kinds (the plan's and Config's, hashed for its fingerprint; their
// batch keys sorted) and S starts that the rates count (sorted too, in
// O(S log S), when the wall clock stepped back between two of them); the
// other calls cost nothing more for it. The zero Machine, which New did
// not make, has none: its Snapshot is the zero Snapshot.
func (m *Machine) Snapshot() Snapshot {
	if m.g == nil {
		return Snapshot{} // the zero Machine: no snapshot
	}
	parts := m.parts()
	f := snapshotForm{Version: SnapshotVersion, Fingerprint: m.fingerprint(), Parts: &parts, Halted: m.halted, Wake: utc(m.wake)}
	states := make([]byte, len(m.nodes))
	var ready []int32
	for i, st := range m.state {
		states[i] = stateLetters[st]
		switch st {
		case Ready:
			ready = append(ready, int32(i))
			if m.win != nil && m.win[m.kindAt[i]] > 0 && !m.readyAt[i].IsZero() {
				f.ReadySince = append(f.ReadySince, nodeTime{Node: m.nodes[i], At: utc(m.readyAt[i])})
			}
		case Running:
			r := runningNode{Node: m.nodes[i]}
			if m.startAt != nil && m.counted[i] {
				at := utc(m.startAt[i])
				r.RateStart = &at
			}
			if m.callOf != nil {
				call := m.nodes[m.callOf[i]]
				r.Call, r.CallNodes = &call, int(m.callLen[m.callOf[i]])
			}
			f.Running = append(f.Running, r)
		}
	}
	f.States = string(states)
	slices.SortFunc(ready, func(a, b int32) int { return cmp.Compare(m.order[a], m.order[b]) })
	f.Ready = make([]graph.Node, len(ready))
	for k, i := range ready {
		f.Ready[k] = m.nodes[i]
	}
	for st := int(m.current) + 1; st < len(m.held); st++ {
		var nodes []graph.Node
		for _, i := range m.held[st] {
			if m.state[i] == Pending {
				nodes = append(nodes, m.nodes[i])
			}
		}
		if len(nodes) > 0 {
			f.Held = append(f.Held, heldStage{Stage: st, Nodes: nodes})
		}
	}
	for _, ks := range [2][]keyState{m.keys, m.carry} {
		for ki := range ks {
			if ks := &ks[ki]; ks.rate.Starts > 0 && len(ks.starts) > ks.first {
				f.Rates = append(f.Rates, ks.snapshotStarts())
			}
		}
	}
	slices.SortFunc(f.Rates, func(a, b rateStarts) int { return strings.Compare(a.Key, b.Key) })
	return Snapshot{s: f}
}

// snapshotStarts returns the key's starts that may still be in its
// rate's window, for a snapshot: in UTC, ascending.
func (ks *keyState) snapshotStarts() rateStarts {
	r := rateStarts{Key: ks.name, Starts: make([]time.Time, 0, len(ks.starts)-ks.first)}
	for _, t := range ks.starts[ks.first:] {
		r.Starts = append(r.Starts, utc(t))
	}
	ascending(r.Starts)
	return r
}

// ascending sorts a key's rate starts, which a snapshot holds as wall
// times, by time: a machine holds them by time on the clock the driver
// passes, which for time.Now() compares by its monotonic reading, so that a step back of the wall clock between two
// starts leaves their wall times out of order. It costs O(S) for S
// starts in order, O(S log S) else.
func ascending(starts []time.Time) {
	if !slices.IsSortedFunc(starts, time.Time.Compare) {
		slices.SortStableFunc(starts, time.Time.Compare)
	}
}

// utc returns t in UTC, without its monotonic reading; the zero time
// stays zero.
func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Round(0)
}

// fingerprint returns the SHA-256, in hex, of what the machine took from
// its plan and Config (see Snapshot).
func (m *Machine) fingerprint() string {
	b := make([]byte, 0, 64+8*len(m.nodes))
	b = append(b, "regen schedule v1\x00"...)
	num := func(v int64) { b = binary.AppendVarint(b, v) }
	str := func(s string) { num(int64(len(s))); b = append(b, s...) }
	b = m.appendGraph(b)
	num(int64(m.mode))
	num(int64(m.limit))
	num(int64(m.maxBatch))
	num(int64(len(m.stageLeft)))
	num(int64(len(m.keys)))
	for _, ks := range m.keys {
		str(ks.name)
		num(int64(ks.limit))
		num(int64(ks.rate.Starts))
		num(int64(ks.rate.Per))
	}
	num(int64(len(m.win)))
	for _, w := range m.win {
		num(int64(w))
	}
	num(int64(len(m.nodes)))
	for i, n := range m.nodes {
		num(int64(n))
		num(int64(m.stage[i]))
		num(int64(m.key[i]))
	}
	b = m.appendShared(b)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// appendGraph appends to b the graph the machine was made for, its
// segments, its nodes' count and its template's kinds, as the
// fingerprint and the "plan" part of parts hash it.
func (m *Machine) appendGraph(b []byte) []byte {
	num := func(v int64) { b = binary.AppendVarint(b, v) }
	str := func(s string) { num(int64(len(s))); b = append(b, s...) }
	t := m.g.Template()
	num(int64(m.g.Segments()))
	num(int64(m.g.Len()))
	num(int64(len(t.Kinds)))
	for _, k := range t.Kinds {
		str(k.Name)
		if k.PerSegment {
			num(1)
		} else {
			num(0)
		}
		str(k.BatchKey)
		num(int64(k.Concurrency))
		num(int64(len(k.Deps)))
		for _, d := range k.Deps {
			str(d.Kind)
			str(string(d.Scope))
		}
	}
	return b
}

// partDigest is the bytes of a part's digest in a snapshot's "parts".
const partDigest = 8

// parts returns the digests of the parts of the fingerprint (see
// Snapshot): the plan, and each Config field as the machine took it.
func (m *Machine) parts() partsForm {
	var b []byte
	num := func(v int64) { b = binary.AppendVarint(b, v) }
	str := func(s string) { num(int64(len(s))); b = append(b, s...) }
	digest := func(part string, write func()) string {
		b = append(b[:0], "regen schedule part\x00"...)
		str(part)
		write()
		sum := sha256.Sum256(b)
		return hex.EncodeToString(sum[:partDigest])
	}
	var p partsForm
	p.Plan = digest("plan", func() {
		b = m.appendGraph(b)
		num(int64(len(m.stageLeft)))
		num(int64(len(m.keys)))
		for _, ks := range m.keys {
			str(ks.name)
			num(int64(ks.conc))
		}
		num(int64(len(m.nodes)))
		for i, n := range m.nodes {
			num(int64(n))
			num(int64(m.stage[i]))
			num(int64(m.key[i]))
		}
	})
	p.Mode = digest("mode", func() { num(int64(m.mode)) })
	p.Workers = digest("workers", func() { num(int64(m.limit)) })
	p.Caps = digest("caps", func() {
		for _, ks := range m.keys {
			num(int64(ks.limit))
		}
	})
	p.Rates = digest("rates", func() {
		for _, ks := range m.keys {
			num(int64(ks.rate.Starts))
			num(int64(ks.rate.Per))
		}
	})
	p.Windows = digest("windows", func() {
		num(int64(len(m.win)))
		for _, w := range m.win {
			num(int64(w))
		}
	})
	p.MaxBatch = digest("maxBatch", func() { num(int64(m.maxBatch)) })
	if m.shares != nil {
		p.Shared = digest("shared", func() { b = m.appendShared(b) })
	}
	return p
}

// agrees reports whether theirs, the parts of a snapshot with the
// machine's fingerprint, are the machine's, but for the plan's: it holds
// each batch key's concurrency before Config.Caps, which the fingerprint
// leaves out, so that a plan whose concurrency differs where a cap
// lowers it to the same limit is the same to the machine, as for
// version 1. Every other part is of what the fingerprint holds.
func (m *Machine) agrees(theirs *partsForm) bool {
	ours := m.parts()
	ours.Plan = theirs.Plan
	return ours == *theirs
}

// differs returns what differs between the machine's parts and theirs,
// in Differs order: Caps, Rates, Windows and Shared only if the plan
// does not.
func (m *Machine) differs(theirs *partsForm) []string {
	ours := m.parts()
	a, b := ours.list(), theirs.list()
	var out []string
	for k := range a {
		if a[k].digest == b[k].digest {
			continue
		}
		if len(out) > 0 && out[0] == "plan" && (a[k].name == "Caps" || a[k].name == "Rates" || a[k].name == "Windows" || a[k].name == "Shared") {
			continue
		}
		out = append(out, a[k].name)
	}
	return out
}

// Restore returns a machine for the plan and Config in the state of s, a
// snapshot that [Machine.Snapshot] took of a machine made by [New] (or
// Restore) with the same plan and Config: it answers every further call
// as that machine does from then on. Times read back in UTC, without a
// monotonic clock reading: its [Machine.Wake] may answer in another zone
// than the original's, for the same instant (time.Time.Equal holds).
//
// # Other rates
//
// A snapshot of version 2 whose plan and Config differ from p and c in
// [Config.Rates] alone is restored under c's rates, as a workflow that
// continues as new with a provider's new quota needs: the rates are not
// part of the state, only of when a start may come. The new machine
// counts against each key's new rate the latest of the starts the
// snapshot holds for it, up to the new Starts (the earlier ones cannot
// decide when the next start may come); a key that lost its rate
// forgets its starts, and its running nodes' (a Refund of them gives
// nothing back); a key that gained one starts with none counted, as the
// machine kept no starts of a key without a rate. A snapshot, which has
// no clock, holds a key's starts from the first that was in the old
// rate's window at the key's last start (for a key the plan has not,
// at the latest start, charge or SucceedAt): under a longer Per those count
// until the new Per after them, though they may have left the old window
// since, while the starts that had left it by then count no more. A
// running node whose
// start is no longer held counts it no more, as after a Refund.
// [Machine.Wake] answers what the snapshotted machine's did, for its
// last Next under the old rates, until the next Next: a driver asks
// [Machine.WakeAt] for the new rates' answer.
//
// The starts that a machine carried for a key its plan has not
// ([Machine.Inherit]) are restored under c's rate of that key, which the
// fingerprint leaves out, whether or not the other rates differ: the
// latest of them up to its Starts, or none when c has no rate for it.
//
// The restored machine's own snapshots are of c, and restore under c
// (or, again, under other rates).
//
// # Errors
//
// A bad Config, or a plan the machine cannot run, is an error wrapping
// [ErrInvalidConfig], as for New. A snapshot of another plan or Config
// (its fingerprint differs, in more than the rates for version 2; its
// [SnapshotError.Differs] says in what), of another version, the zero
// Snapshot, one whose "parts" disagree with its fingerprint (each digest
// but the plan's, which may differ with the same fingerprint: see
// [Snapshot]), or one whose state disagrees with itself or with the
// plan (a node Ready whose dependency has not succeeded, a Ready node
// missing from the order, more nodes running on a key than its
// concurrency, a running node's rate start later than its key's first
// start but not among them, a node of a later stage started in Staged
// mode...) is a [*SnapshotError] wrapping [ErrInvalidSnapshot] that says
// what is wrong. It never panics. It costs O((D + E_D) log D + N + S log S) for
// D planned nodes with E_D edges among them in a graph of N nodes and S
// starts in the rates' windows, about what New does.
func Restore(p *planner.Plan, c Config, s Snapshot) (*Machine, error) {
	m, err := build(p, c)
	if err != nil {
		return nil, err
	}
	f := &s.s
	switch {
	case f.Version == 0:
		return nil, badSnapshot("no snapshot (the zero Snapshot, or none read from JSON null): take one with Machine.Snapshot")
	case f.Version < 0 || f.Version > SnapshotVersion:
		return nil, badSnapshot("version %d: this release reads versions 1 to %d", f.Version, SnapshotVersion)
	}
	rebase := false
	switch fp := m.fingerprint(); {
	case f.Fingerprint == fp && f.Parts != nil && !m.agrees(f.Parts):
		return nil, badSnapshot("parts: they disagree with the fingerprint, which is this plan and Config's")
	case f.Fingerprint != fp:
		var differs []string
		if f.Parts != nil {
			differs = m.differs(f.Parts)
		}
		if slices.Equal(differs, []string{"Rates"}) {
			rebase = true // see Restore's doc
			break
		}
		what := ""
		if len(differs) > 0 {
			names := slices.Clone(differs)
			for k, d := range names {
				if d != "plan" {
					names[k] = "Config." + d
				}
			}
			what = " (differs: " + strings.Join(names, ", ") + ")"
		}
		return nil, &SnapshotError{Mismatch: true, Differs: differs, Problem: fmt.Sprintf(
			"taken of another plan or Config%s: its fingerprint is %s, this plan and Config's %s", what, cut(f.Fingerprint), fp)}
	}
	if err := m.restore(f, rebase); err != nil {
		return nil, err
	}
	return m, nil
}

// name names node n for a snapshot's error.
func (m *Machine) name(n graph.Node) string {
	if m.g.Contains(n) {
		return fmt.Sprintf("%d (%q)", n, m.g.NodeID(n))
	}
	return fmt.Sprint(n)
}

// planned returns the position of node n, of the snapshot's part what,
// or an error if n is not in the plan.
func (m *Machine) planned(n graph.Node, what string) (int32, error) {
	i := m.pos(n)
	if i < 0 {
		return -1, badSnapshot("%s: node %s is not in the plan", what, m.name(n))
	}
	return int32(i), nil
}

// restore sets the state of f on a machine fresh from build, checking
// that its parts agree. With rebase, f was taken under other rates, and
// its rate starts are fitted to the machine's (see Restore).
func (m *Machine) restore(f *snapshotForm, rebase bool) error {
	if len(f.States) != len(m.nodes) {
		return badSnapshot("states: %d letters for %d planned nodes", len(f.States), len(m.nodes))
	}
	for i := range m.state {
		st := State(strings.IndexByte(stateLetters, f.States[i]))
		if st > Cancelled { // -1 as a State
			return badSnapshot("states: %q at %d is no state's letter: want one of %q", f.States[i], i, stateLetters)
		}
		m.state[i] = st
		if st.Terminal() {
			m.settled++
			m.stageLeft[m.stage[i]]-- // build counted every node
		}
	}
	for int(m.current) < len(m.stageLeft) && m.stageLeft[m.current] == 0 {
		m.current++
	}
	m.halted = f.Halted
	m.wake = f.Wake
	for i, n := range m.nodes {
		st := m.state[i]
		m.wait[i] = 0
		for _, dep := range m.g.Deps(n) {
			j := m.at[dep]
			if j < 0 {
				continue
			}
			switch ds := m.state[j]; {
			case ds == Succeeded:
				continue
			case st != Pending && st != Skipped && st != Ready:
				return badSnapshot("node %s is %s, but its dependency %s is %s, not succeeded", m.name(n), st, m.name(dep), ds)
			case st != Skipped && (ds == Failed || ds == Superseded || ds == Skipped):
				return badSnapshot("node %s is %s, but its dependency %s is %s: it would be skipped", m.name(n), st, m.name(dep), ds)
			}
			m.wait[i]++
		}
		switch {
		case st == Ready && m.wait[i] > 0:
			return badSnapshot("node %s is ready, but a dependency of it has not succeeded", m.name(n))
		case st == Cancelled && !m.halted:
			return badSnapshot("node %s is cancelled, but the machine is not halted: a cancel halts it", m.name(n))
		case m.mode == Staged && m.stage[i] > m.current && st != Pending && st != Skipped:
			// Staged mode makes a node of a later stage Ready, and so
			// starts it, only once every earlier stage has settled.
			return badSnapshot("node %s of stage %d is %s, but stage %d has not settled: in Staged mode a node of a later stage is pending or skipped until it has",
				m.name(n), m.stage[i], st, m.current)
		case st == Pending && m.wait[i] == 0 && (m.mode == Dataflow || m.stage[i] <= m.current):
			return badSnapshot("node %s is pending, but its dependencies have all succeeded: it is ready", m.name(n))
		}
	}
	if err := m.restoreReady(f); err != nil {
		return err
	}
	if err := m.restoreHeld(f); err != nil {
		return err
	}
	if err := m.restoreRunning(f, rebase); err != nil {
		return err
	}
	if err := m.restoreRates(f, rebase); err != nil {
		return err
	}
	return m.restoreWindows(f)
}

// restoreReady queues the Ready nodes in f's order, each numbered in it.
func (m *Machine) restoreReady(f *snapshotForm) error {
	for _, n := range f.Ready {
		i, err := m.planned(n, "ready")
		if err != nil {
			return err
		}
		if m.state[i] != Ready || m.order[i] != 0 {
			return badSnapshot("ready: node %s is %s, or listed twice: list each Ready node once", m.name(n), m.state[i])
		}
		m.seq++
		m.order[i] = m.seq
		ks := &m.keys[m.key[i]]
		ks.queue = append(ks.queue, i)
	}
	for i, st := range m.state {
		if st == Ready && m.order[i] == 0 {
			return badSnapshot("ready: node %s is Ready but not listed", m.name(m.nodes[i]))
		}
	}
	return nil
}

// restoreHeld sets the nodes of later stages that wait for their stage
// to open, in Staged mode.
func (m *Machine) restoreHeld(f *snapshotForm) error {
	if m.mode != Staged && len(f.Held) > 0 {
		return badSnapshot("held: nodes held for their stage in %s mode: only Staged holds them", m.mode)
	}
	prev := int(m.current)
	held := make([]bool, len(m.nodes))
	for _, h := range f.Held {
		if h.Stage <= prev || h.Stage >= len(m.held) || len(h.Nodes) == 0 {
			return badSnapshot("held: stage %d: want stages after %d (the first not settled) and before %d, ascending, each once with nodes",
				h.Stage, m.current, len(m.held))
		}
		prev = h.Stage
		for _, n := range h.Nodes {
			i, err := m.planned(n, fmt.Sprintf("held: stage %d", h.Stage))
			if err != nil {
				return err
			}
			if int(m.stage[i]) != h.Stage || m.state[i] != Pending || m.wait[i] != 0 || held[i] {
				return badSnapshot("held: stage %d: node %s is %s in stage %d, or waits on a dependency, or is listed twice: want each pending node of the stage whose dependencies have succeeded, once",
					h.Stage, m.name(n), m.state[i], m.stage[i])
			}
			m.held[h.Stage] = append(m.held[h.Stage], i)
			held[i] = true
		}
	}
	for i, st := range m.state {
		if st == Pending && m.wait[i] == 0 && m.mode == Staged && !held[i] {
			return badSnapshot("held: node %s of stage %d waits for its stage to open, but is not listed", m.name(m.nodes[i]), m.stage[i])
		}
	}
	return nil
}

// restoreRunning sets the running nodes' slots, rate starts and calls.
// With rebase, the rate start of a node whose key has no rate now is
// forgotten.
func (m *Machine) restoreRunning(f *snapshotForm, rebase bool) error {
	prev := graph.Node(-1)
	for _, r := range f.Running {
		i, err := m.planned(r.Node, "running")
		if err != nil {
			return err
		}
		if m.state[i] != Running || r.Node <= prev {
			return badSnapshot("running: node %s is %s, or out of order: want the Running nodes, ascending, each once", m.name(r.Node), m.state[i])
		}
		prev = r.Node
		ks := &m.keys[m.key[i]]
		ks.running++
		m.running++
		if r.RateStart != nil && !(rebase && ks.rate.Starts == 0) {
			if ks.rate.Starts == 0 {
				return badSnapshot("running: node %s has a rate start, but its batch key %q has no rate", m.name(r.Node), ks.name)
			}
			m.startAt[i], m.counted[i] = *r.RateStart, true
		}
		if (r.Call != nil) != (m.callOf != nil) || (r.Call == nil && r.CallNodes != 0) {
			return badSnapshot("running: node %s: a call and its nodes are given with MaxBatch, and only then (MaxBatch is %d)", m.name(r.Node), m.maxBatch)
		}
		if r.Call == nil {
			continue
		}
		call, err := m.planned(*r.Call, fmt.Sprintf("running: node %s's call", m.name(r.Node)))
		if err != nil {
			return err
		}
		switch cs := m.state[call]; {
		case cs == Pending || cs == Ready || cs == Skipped:
			return badSnapshot("running: node %s's call begins with node %s, which is %s: a call begins with a node that started", m.name(r.Node), m.name(*r.Call), cs)
		case m.key[call] != m.key[i] || m.callKind(m.g.KindOf(*r.Call)) != m.callKind(m.g.KindOf(r.Node)):
			// A call is of one batch key, and of one kind or the kinds
			// that share calls (Config.Shared).
			return badSnapshot("running: node %s's call begins with node %s, of another batch key or kind (one that shares no calls with its own, Config.Shared)", m.name(r.Node), m.name(*r.Call))
		case r.CallNodes < 1 || r.CallNodes > m.maxBatch || r.CallNodes > len(m.nodes):
			return badSnapshot("running: node %s's call has %d nodes: want 1 to MaxBatch, %d, and to the plan's %d nodes",
				m.name(r.Node), r.CallNodes, m.maxBatch, len(m.nodes))
		case m.callLen[call] != 0 && int(m.callLen[call]) != r.CallNodes:
			return badSnapshot("running: the call of node %s has %d nodes, and %d for another of its nodes", m.name(*r.Call), r.CallNodes, m.callLen[call])
		}
		m.callOf[i], m.callLen[call] = call, int32(r.CallNodes)
	}
	if n := m.countState(Running); n != m.running {
		return badSnapshot("running: %d nodes listed, but %d are Running", m.running, n)
	}
	for ki := range m.keys {
		ks := &m.keys[ki]
		if ks.limit > 0 && ks.running > ks.limit {
			return badSnapshot("running: %d nodes of batch key %q, over its concurrency %d", ks.running, ks.name, ks.limit)
		}
	}
	if m.limit > 0 && m.running > m.limit {
		return badSnapshot("running: %d nodes, over Workers %d", m.running, m.limit)
	}
	for i, call := range m.callOf {
		if m.state[i] == Running && m.state[call] == Running && m.callOf[call] != call {
			return badSnapshot("running: node %s's call begins with node %s, which runs in another call", m.name(m.nodes[i]), m.name(m.nodes[call]))
		}
	}
	if m.callOf != nil {
		members := make([]int32, len(m.nodes))
		for _, r := range f.Running {
			call := m.callOf[m.at[r.Node]]
			if members[call]++; members[call] > m.callLen[call] {
				return badSnapshot("running: the call of node %s has %d nodes, but more of them run", m.name(m.nodes[call]), m.callLen[call])
			}
		}
	}
	return nil
}

func (m *Machine) countState(s State) int {
	n := 0
	for _, st := range m.state {
		if st == s {
			n++
		}
	}
	return n
}

// restoreRates sets the starts in each rate's window, which the snapshot
// holds ascending (see ascending). With rebase, the
// starts of a key without a rate now are forgotten, and of a key's
// starts only the latest, up to its rate's Starts, are kept, once they
// are checked against the running nodes' rate starts.
func (m *Machine) restoreRates(f *snapshotForm, rebase bool) error {
	prev := ""
	for k, r := range f.Rates {
		if k > 0 && r.Key <= prev {
			return badSnapshot("rates: key %q after %q: want keys ascending, each once", cut(r.Key), cut(prev))
		}
		prev = r.Key
		ki := -1
		for j := 1; j < len(m.keys); j++ {
			if m.keys[j].name == r.Key {
				ki = j
			}
		}
		switch {
		case ki < 0 && len(r.Starts) == 0:
			return badSnapshot("rates: batch key %q has no starts: leave a key without starts out", cut(r.Key))
		case ki < 0:
			// A key the plan has not, whose starts the machine carried
			// from Inherit: the fingerprint leaves its rate out, so that
			// c may rate it otherwise, or not at all.
			if ks := m.rated(r.Key); ks != nil {
				ks.starts = slices.Clone(r.Starts[max(0, len(r.Starts)-ks.rate.Starts):])
			}
			continue
		case m.keys[ki].rate.Starts == 0 && rebase:
			continue
		case m.keys[ki].rate.Starts == 0:
			return badSnapshot("rates: batch key %q is not a key of the plan with a rate", cut(r.Key))
		}
		ks := &m.keys[ki]
		if len(r.Starts) == 0 || (len(r.Starts) > ks.rate.Starts && !rebase) {
			return badSnapshot("rates: batch key %q has %d starts: want 1 to its rate's %d (leave a key without starts out)", r.Key, len(r.Starts), ks.rate.Starts)
		}
		ks.starts = slices.Clone(r.Starts)
	}
	if err := m.checkRateStarts(f, false); err != nil || !rebase {
		return err
	}
	// The latest starts decide when the rate allows the next: with more
	// than Starts, the earlier ones cannot. A running node whose start is
	// no longer held counts it no more, as after a Refund.
	trimmed := false
	for ki := range m.keys {
		ks := &m.keys[ki]
		if n := len(ks.starts) - ks.rate.Starts; ks.rate.Starts > 0 && n > 0 {
			ks.starts = slices.Delete(ks.starts, 0, n)
			trimmed = true
		}
	}
	if trimmed {
		return m.checkRateStarts(f, true)
	}
	return nil
}

// checkRateStarts checks the running nodes' rate starts against their
// keys' starts: a start leaves a key's starts only once it has left the
// window, as have all before it, so a counted start not before the
// first of them is one of them, one for each node that counts it. It
// costs O((S + R) log(S + R)) for S starts and R running nodes. With
// uncount, a node whose start is not held counts it no more, instead.
func (m *Machine) checkRateStarts(f *snapshotForm, uncount bool) error {
	type counted struct {
		at   time.Time
		node graph.Node
	}
	byKey := make([][]counted, len(m.keys))
	for _, r := range f.Running {
		k := m.key[m.at[r.Node]]
		if ks := &m.keys[k]; r.RateStart != nil && ks.rate.Starts > 0 && len(ks.starts) > 0 && !r.RateStart.Before(ks.starts[0]) {
			byKey[k] = append(byKey[k], counted{*r.RateStart, r.Node})
		}
	}
	for k, starts := range byKey {
		if len(starts) == 0 {
			continue
		}
		ks := &m.keys[k]
		slices.SortStableFunc(starts, func(a, b counted) int { return a.at.Compare(b.at) })
		held := slices.SortedFunc(slices.Values(ks.starts), time.Time.Compare)
		j := 0
		for _, c := range starts {
			for j < len(held) && held[j].Before(c.at) {
				j++
			}
			if (j == len(held) || !held[j].Equal(c.at)) && uncount {
				m.counted[m.at[c.node]] = false
				continue
			}
			if j == len(held) || !held[j].Equal(c.at) {
				return badSnapshot("running: node %s has its rate start at %s, which batch key %q does not hold (or holds for another node): a start not before the key's first, %s, is among its starts, once for each node that counts it",
					m.name(c.node), c.at.Format(time.RFC3339Nano), ks.name, ks.starts[0].Format(time.RFC3339Nano))
			}
			j++
		}
	}
	return nil
}

// restoreWindows sets the batch windows' counts, and when the Ready
// nodes of windowed kinds became ready.
func (m *Machine) restoreWindows(f *snapshotForm) error {
	if m.win == nil {
		if len(f.ReadySince) > 0 {
			return badSnapshot("readySince: given, but no batch window applies to the plan")
		}
		return nil
	}
	clear(m.pending)
	clear(m.blocked)
	clear(m.readyN)
	for i, st := range m.state {
		k := m.kindAt[i]
		switch st {
		case Pending:
			m.pending[k]++
		case Ready:
			m.readyN[k]++
		}
		if m.win[k] == 0 {
			continue
		}
		m.sameWait[i] = 0
		for _, dep := range m.g.Deps(m.nodes[i]) {
			if j := m.at[dep]; j >= 0 && m.kindAt[j] == k && (m.state[j] == Pending || m.state[j] == Ready) {
				m.sameWait[i]++
			}
		}
		if st == Pending && m.sameWait[i] > 0 {
			m.blocked[k]++
		}
	}
	prev := graph.Node(-1)
	for _, r := range f.ReadySince {
		i, err := m.planned(r.Node, "readySince")
		if err != nil {
			return err
		}
		if m.state[i] != Ready || m.win[m.kindAt[i]] == 0 || r.Node <= prev || r.At.IsZero() {
			return badSnapshot("readySince: node %s is %s, of a kind without a window, out of order, or at the zero time: want Ready nodes of windowed kinds, ascending, each once, at a time",
				m.name(r.Node), m.state[i])
		}
		prev = r.Node
		m.readyAt[i] = r.At
	}
	for _, n := range f.Ready {
		if i := m.at[n]; m.win[m.kindAt[i]] > 0 && m.readyAt[i].IsZero() {
			m.fresh = append(m.fresh, i)
		}
	}
	return nil
}
