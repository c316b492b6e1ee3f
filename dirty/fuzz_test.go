package dirty_test

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/internal/testgraph"
)

// FuzzCompute computes dirty sets of random templates (with shared batch
// keys, previous-segment chains, all-segments fan-ins, kinds listed out
// of dependency order) from 1 to 12 segments, with states, marks (some of
// them malformed, unknown or of a reason that cannot be marked) and
// missing assets drawn from the fuzzer's bytes, and checks the set
// against a naive reference: exactly the marked, not clean and missing
// nodes and their descendants, each with the strongest reason of its
// own, or upstream from its lowest-indexed dependency in the set, and a
// chain back to a root, and every root cause (Set.Causes) that a
// brute-force reachability finds. A bad mark must be a *MarkError, and nothing may
// panic.
func FuzzCompute(f *testing.F) {
	f.Add(uint64(1), uint8(3), []byte{}, []byte{})
	f.Add(uint64(2), uint8(5), []byte{1, 1, 1, 1, 2, 1, 1, 4, 1, 1}, []byte{0, 3, 1, 7})
	f.Add(uint64(3), uint8(12), []byte{1, 1, 1, 1, 1, 1, 1, 1, 9}, []byte{4, 2, 2, 9, 0, 0, 250, 1})
	f.Add(uint64(4), uint8(1), []byte{5, 3, 0, 1}, []byte{255, 255, 3, 3})
	f.Fuzz(func(t *testing.T, seed uint64, segs uint8, states, marks []byte) {
		tm := testgraph.RandomTemplate(rand.New(rand.NewPCG(seed, seed>>32)))
		g, err := graph.Build(tm, 10*(1+int(segs)%12))
		if err != nil {
			t.Fatalf("Build of a valid template: %v", err)
		}
		v := g.Len()
		byte0 := func(b []byte, i int) byte {
			if len(b) == 0 {
				return 0
			}
			return b[i%len(b)]
		}
		// States: with no bytes, a new graph; else a status per node from
		// the bytes (cycled), out-of-range ones included; a clean node
		// whose byte has bit 4 set has lost its asset.
		in := dirty.Input{}
		if len(states) > 0 {
			in.States = dirty.NewStates(v)
			for n := range v {
				b := byte0(states, n)
				in.States.Set(graph.Node(n), dirty.State{Status: dirty.Status(b % 8), AssetRef: "ref"})
			}
			in.AssetExists = func(n graph.Node, s dirty.State) bool {
				if s.Status != dirty.StatusClean {
					t.Fatalf("AssetExists called for %s, which is %v", g.NodeID(n), s.Status)
				}
				return byte0(states, int(n))&0x10 == 0
			}
		}
		// Marks: two bytes each, a node (or an unknown or malformed ID)
		// and a reason (0 and 5 to 12 are invalid).
		bad := false
		for i := 0; i+1 < len(marks); i += 2 {
			m := dirty.Mark{Reason: dirty.Reason(marks[i+1] % 13)}
			switch x := int(marks[i]); {
			case x < v:
				m.ID = g.NodeID(graph.Node(x))
			case x%3 == 0:
				m.ID = "no-such-kind"
				bad = true
			case x%3 == 1:
				m.ID = "bad id!"
				bad = true
			default:
				m.ID = g.KindName(0) + ":segment[99]"
				bad = true
			}
			if m.Reason < dirty.ReasonEdited || m.Reason > dirty.ReasonInputsChanged {
				bad = true
			}
			in.Marks = append(in.Marks, m)
		}
		s, err := dirty.Compute(g, in)
		if err != nil {
			var me *dirty.MarkError
			if !bad || !errors.As(err, &me) || !errors.Is(err, dirty.ErrInvalidMark) {
				t.Fatalf("Compute: %v (bad marks: %v)", err, bad)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("message has a newline: %q", err)
			}
			return
		}
		if bad {
			t.Fatalf("Compute accepted marks %+v", in.Marks)
		}
		checkSet(t, s)

		// The naive reference: each node's own reason, the strongest.
		own := make([]dirty.Reason, v)
		for _, m := range in.Marks {
			n, _ := g.Lookup(m.ID)
			if own[n] == 0 || m.Reason < own[n] {
				own[n] = m.Reason
			}
		}
		for n := range v {
			var r dirty.Reason
			switch st := dirty.StatusMissing; {
			case in.States == nil:
				r = dirty.ReasonNeverGenerated
			default:
				st = in.States.Status(graph.Node(n))
				switch st {
				case dirty.StatusMissing:
					r = dirty.ReasonNeverGenerated
				case dirty.StatusDirty:
					r = dirty.ReasonStale
				case dirty.StatusRunning:
					r = dirty.ReasonInterrupted
				case dirty.StatusFailed:
					r = dirty.ReasonFailed
				case dirty.StatusCancelled:
					r = dirty.ReasonCancelled
				case dirty.StatusClean:
					if (own[n] == 0 || own[n] > dirty.ReasonAssetMissing) && byte0(states, n)&0x10 != 0 {
						r = dirty.ReasonAssetMissing
					}
				}
			}
			if r != 0 && (own[n] == 0 || r < own[n]) {
				own[n] = r
			}
		}
		// Nodes in index order are a topological order.
		want := make([]dirty.Why, v)
		in2 := make([]bool, v)
		for n := range v {
			node := graph.Node(n)
			if own[n] != 0 {
				want[n], in2[n] = dirty.Why{Reason: own[n], From: graph.None, Root: node}, true
				continue
			}
			for _, d := range g.Deps(node) {
				if in2[d] {
					want[n], in2[n] = dirty.Why{Reason: dirty.ReasonUpstream, From: d, Root: want[d].Root}, true
					break
				}
			}
		}
		for n := range v {
			node := graph.Node(n)
			w, ok := s.Why(node)
			if ok != in2[n] || w != want[n] {
				t.Fatalf("%s: Why = %+v, %v; want %+v, %v", g.NodeID(node), w, ok, want[n], in2[n])
			}
			if !ok {
				continue
			}
			chain := s.Chain(node)
			if len(chain) == 0 || chain[0] != node || chain[len(chain)-1] != w.Root {
				t.Fatalf("%s: Chain %v does not run from the node to its root %d", g.NodeID(node), chain, w.Root)
			}
			if s.Explain(node) == "" {
				t.Fatalf("%s: no explanation", g.NodeID(node))
			}
		}
		checkCauses(t, s)
	})
}

// FuzzNewStates makes the states of n nodes and sets them from the
// fuzzer's bytes (node in or out of range, status in or out of range,
// and whether the state has more than a status), against a model: Len,
// Get, Status and Count agree with it after each Set, and a Clone is
// equal and independent. A node out of range (two below 0 and two past
// the last, of every n, the states of no node too) is missing to Get and
// Status, and Set refuses it with ErrNodeOutOfRange, recording nothing.
// A negative n gives the states of no node, as 0 does.
func FuzzNewStates(f *testing.F) {
	f.Add(0, []byte{})
	f.Add(3, []byte{0, 1, 0, 2, 9, 1, 1, 3, 0, 0, 1, 1})
	f.Add(1, []byte{0, 255, 1})
	f.Add(-1, []byte{})
	// Nodes 0, 2, 1 and 0 of 3, then 3 and -2, out of range.
	f.Add(3, []byte{2, 1, 0, 4, 9, 1, 3, 3, 0, 2, 1, 1, 5, 1, 0, 0, 2, 1})
	f.Add(-1, []byte{2, 1, 1})
	f.Fuzz(func(t *testing.T, n int, ops []byte) {
		if n > 1<<12 {
			return // the memory is the caller's
		}
		s := dirty.NewStates(n)
		n = max(n, 0)
		model := make([]dirty.State, n)
		check := func(s *dirty.States) {
			t.Helper()
			var counts [8]int
			if s.Len() != n {
				t.Fatalf("Len %d, want %d", s.Len(), n)
			}
			for i, want := range model {
				counts[want.Status]++
				if got := s.Get(graph.Node(i)); got != want || s.Status(graph.Node(i)) != want.Status {
					t.Fatalf("node %d: Get %+v, Status %v; want %+v", i, got, s.Status(graph.Node(i)), want)
				}
			}
			for st := range dirty.Status(8) {
				if s.Count(st) != counts[st] {
					t.Fatalf("Count(%v) = %d, want %d", st, s.Count(st), counts[st])
				}
			}
			for _, out := range []graph.Node{-2, -1, graph.Node(n), graph.Node(n + 1)} {
				if got := s.Get(out); got != (dirty.State{}) || s.Status(out) != dirty.StatusMissing {
					t.Fatalf("node %d out of range: Get %+v, Status %v; want missing", out, got, s.Status(out))
				}
			}
		}
		check(s)
		var clone *dirty.States
		var cloned []dirty.State
		for len(ops) >= 3 {
			node := graph.Node(int(ops[0])%(n+4) - 2)
			st := dirty.State{Status: dirty.Status(ops[1] % 8)}
			if ops[2]&1 != 0 {
				st.Rev, st.AssetRef = int64(ops[2]), "ref"
			}
			ops = ops[3:]
			err := s.Set(node, st)
			if node < 0 || int(node) >= n {
				if !errors.Is(err, dirty.ErrNodeOutOfRange) {
					t.Fatalf("Set(%d) of %d states: %v, want ErrNodeOutOfRange", node, n, err)
				}
				check(s)
				continue
			}
			if err != nil {
				t.Fatalf("Set(%d) of %d states: %v", node, n, err)
			}
			if st.Status > dirty.StatusCancelled {
				st.Status = dirty.StatusDirty
			}
			model[node] = st
			check(s)
			if clone == nil && len(ops)%2 == 0 {
				clone, cloned = s.Clone(), slices.Clone(model)
			}
		}
		if clone != nil {
			model = cloned
			check(clone)
		}
	})
}

// FuzzMarkJSON reads a mark from any JSON, as a host reads marks sent by
// a client. Whatever the input, nothing panics; a mark read with a
// reason writes back as JSON that reads as the same mark, and writing
// that again gives the same bytes. A mark read without one has reason
// 0, which MarshalText refuses.
func FuzzMarkJSON(f *testing.F) {
	for _, s := range []string{
		`{"id": "script", "reason": "edited"}`, `{"ID": "script", "Reason": "forced"}`,
		`{"id": "asset:image:segment[3]", "reason": "asset missing"}`, `{"id": "x", "reason": "inputs changed"}`,
		`{"id": "x", "reason": "upstream"}`, `{"id": "x", "reason": "Edited"}`, `{"id": "x", "reason": 1}`,
		`{"id": "x"}`, `{"id": 7, "reason": "edited"}`, `{"reason": "edited", "reason": "forced"}`,
		`{}`, `null`, `[]`, `"edited"`, `{"id": "a\u2028\"b", "reason": "never generated"}`,
		`{"Id": "x", "reason": "edited"}`, `{"id": "x", "ID": "y"}`, `{"id": "x", "reason": "edited", "extra": 1}`,
		`{"id": "x", "reason": "edited"} {}`, `{"id": 1e999}`, `{"id": "x", "reason": "` + strings.Repeat("k", 200) + `"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var m dirty.Mark
		if err := json.Unmarshal(data, &m); err != nil {
			refused(t, data, err)
			return
		}
		out, err := json.Marshal(m)
		if err != nil {
			if m.Reason != 0 {
				t.Fatalf("Marshal of %+v read from %q: %v", m, data, err)
			}
			return
		}
		var back dirty.Mark
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("Unmarshal(%s), written from %+v: %v", out, m, err)
		}
		if back != m {
			t.Fatalf("mark %+v read from %q reads back as %+v from %s", m, data, back, out)
		}
		if again, err := json.Marshal(back); err != nil || string(again) != string(out) {
			t.Fatalf("mark %+v writes %s, then %s (%v)", m, out, again, err)
		}
	})
}

// FuzzStateJSON reads a state from any JSON, as a store reads the states
// it keeps. Whatever the input, nothing panics; a state read writes back
// without error as JSON that reads as the same state, and writing that
// again gives the same bytes.
func FuzzStateJSON(f *testing.F) {
	for _, s := range []string{
		`{"status":"failed","rev":7,"inputHash":"in","outputHash":"out","assetRef":"s3://bucket/key","attempts":3,"lastError":"timeout","updatedAt":"2025-03-01T12:00:00Z"}`,
		`{"status":"clean","rev":-1,"updatedAt":"2025-03-01T12:00:00.123456789+02:00"}`,
		`{"status":"gone"}`, `{"status":"Clean"}`, `{"status":1}`, `{"Status":"running","REV":3}`,
		`{"updatedAt":"0000-01-01T00:00:00+01:00"}`, `{"updatedAt":"9999-12-31T23:59:59-23:59"}`,
		`{"updatedAt":"not a time"}`, `{"updatedAt":null}`, `{"rev":9223372036854775808}`, `{"attempts":1e3}`,
		`{}`, `null`, `[]`, `{"status":"clean","status":"dirty"}`, `{"status":"clean","extra":1}`,
		`{"rev":` + strings.Repeat("9", 200) + `}`, `{"updatedAt":"` + strings.Repeat("k", 200) + `"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var s dirty.State
		if err := json.Unmarshal(data, &s); err != nil {
			refused(t, data, err)
			return
		}
		out, err := json.Marshal(s)
		if err != nil {
			t.Fatalf("Marshal of %+v read from %q: %v", s, data, err)
		}
		var back dirty.State
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("Unmarshal(%s), written from %+v: %v", out, s, err)
		}
		if diff := cmp.Diff(s, back); diff != "" {
			t.Fatalf("state read from %q does not survive a round trip (-read +again):\n%s\nJSON %s", data, diff, out)
		}
		if again, err := json.Marshal(back); err != nil || string(again) != string(out) {
			t.Fatalf("state %+v writes %s, then %s (%v)", s, out, again, err)
		}
	})
}

// refused checks the error of a Mark or a State refused: for JSON that
// parses, a *dirty.JSONError wrapping ErrInvalidJSON, whose message does
// not quote a long literal of the input whole.
func refused(t *testing.T, data []byte, err error) {
	t.Helper()
	if !json.Valid(data) {
		return // encoding/json's syntax error, before the decoder runs
	}
	var je *dirty.JSONError
	if !errors.As(err, &je) || !errors.Is(err, dirty.ErrInvalidJSON) {
		t.Fatalf("%q refused with %T %v, not a *dirty.JSONError", data, err, err)
	}
	if n := len(err.Error()); n > 1024 {
		t.Fatalf("%q refused with a message of %d bytes: %.300s", data, n, err)
	}
}
