package dirty_test

import (
	"encoding/json"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/graph"
)

func TestStatusText(t *testing.T) {
	names := []string{"missing", "clean", "dirty", "running", "failed", "cancelled"}
	for i, name := range names {
		s := dirty.Status(i)
		assert.Equal(t, name, s.String())
		b, err := s.MarshalText()
		require.NoError(t, err)
		assert.Equal(t, name, string(b))
		var back dirty.Status
		require.NoError(t, back.UnmarshalText([]byte(name)))
		assert.Equal(t, s, back)
	}
	assert.Equal(t, dirty.StatusMissing, dirty.Status(0), "the zero value is missing")
	assert.Equal(t, "Status(6)", dirty.Status(6).String())
	_, err := dirty.Status(6).MarshalText()
	require.EqualError(t, err, "dirty: invalid status 6")
	_, err = json.Marshal(dirty.State{Status: 200})
	require.ErrorContains(t, err, "dirty: invalid status 200")

	for _, bad := range []string{"", "Clean", "CLEAN", "clean ", "done", "1"} {
		s := dirty.StatusFailed
		err := s.UnmarshalText([]byte(bad))
		require.Error(t, err, "%q", bad)
		assert.Contains(t, err.Error(), "dirty: unknown status")
		assert.Contains(t, err.Error(), "want missing, clean, dirty, running, failed or cancelled")
		assert.Equal(t, dirty.StatusFailed, s, "unchanged on error")
	}
}

func TestStateJSON(t *testing.T) {
	in := dirty.State{
		Status:     dirty.StatusFailed,
		Rev:        7,
		InputHash:  "in",
		OutputHash: "out",
		AssetRef:   "s3://bucket/key",
		Attempts:   3,
		LastError:  "timeout",
		UpdatedAt:  time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC),
	}
	data, err := json.Marshal(in)
	require.NoError(t, err)
	assert.JSONEq(t, `{"status":"failed","rev":7,"inputHash":"in","outputHash":"out","assetRef":"s3://bucket/key","attempts":3,"lastError":"timeout","updatedAt":"2025-03-01T12:00:00Z"}`, string(data))
	var back dirty.State
	require.NoError(t, json.Unmarshal(data, &back))
	if diff := cmp.Diff(in, back); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	require.Error(t, json.Unmarshal([]byte(`{"status":"gone"}`), &back))
}

func TestStates(t *testing.T) {
	s := dirty.NewStates(5)
	assert.Equal(t, 5, s.Len())
	counts := func() []int {
		var out []int
		for st := dirty.StatusMissing; st <= dirty.StatusCancelled; st++ {
			out = append(out, s.Count(st))
		}
		return out
	}
	assert.Equal(t, []int{5, 0, 0, 0, 0, 0}, counts())
	assert.Equal(t, 0, s.Count(6))
	assert.Equal(t, 0, s.Count(255))

	rec := dirty.State{Status: dirty.StatusClean, Rev: 2, OutputHash: "h", AssetRef: "a"}
	s.Set(1, rec)
	s.Set(2, dirty.State{Status: dirty.StatusFailed, LastError: "boom", Attempts: 3})
	s.Set(3, dirty.State{Status: dirty.StatusRunning})
	s.Set(3, dirty.State{Status: dirty.StatusClean})
	assert.Equal(t, []int{2, 2, 0, 0, 1, 0}, counts())
	assert.Equal(t, rec, s.Get(1))
	assert.Equal(t, dirty.StatusClean, s.Status(1))
	assert.Equal(t, dirty.StatusFailed, s.Status(2))
	assert.Equal(t, "boom", s.Get(2).LastError)
	assert.Equal(t, dirty.StatusMissing, s.Status(0))

	// An out-of-range status is recorded as dirty, never trusted.
	s.Set(4, dirty.State{Status: 42, Rev: 9})
	assert.Equal(t, dirty.StatusDirty, s.Status(4))
	assert.Equal(t, dirty.StatusDirty, s.Get(4).Status)
	assert.Equal(t, int64(9), s.Get(4).Rev)
	assert.Equal(t, []int{1, 2, 1, 0, 1, 0}, counts())

	c := s.Clone()
	c.Set(0, dirty.State{Status: dirty.StatusCancelled})
	c.Set(1, dirty.State{Status: dirty.StatusDirty})
	assert.Equal(t, []int{1, 2, 1, 0, 1, 0}, counts(), "the original's counts are unchanged")
	assert.Equal(t, rec, s.Get(1), "the original's records are unchanged")
	assert.Equal(t, dirty.StatusMissing, s.Status(0))
	assert.Equal(t, dirty.StatusCancelled, c.Status(0))
	assert.Equal(t, 1, c.Count(dirty.StatusCancelled))
	assert.Equal(t, 0, c.Count(dirty.StatusMissing))
	assert.Equal(t, 1, c.Count(dirty.StatusClean))

	empty := dirty.NewStates(0)
	assert.Equal(t, 0, empty.Len())
	assert.Equal(t, 0, empty.Count(dirty.StatusMissing))
}

func TestInputHash(t *testing.T) {
	base := dirty.InputHash(1, []string{"a", "b"})
	assert.Len(t, base, 64)
	assert.Equal(t, strings.ToLower(base), base)
	assert.Equal(t, base, dirty.InputHash(1, []string{"a", "b"}), "deterministic")
	// The encoding is part of the stores' contract: pin it. These are
	// SHA-256 of "regen-input-v1", the revision as 8 big-endian bytes, and
	// each hash as an 8-byte big-endian length and its bytes, computed
	// independently.
	assert.Equal(t, "dfbc6934bb0d2608ebeec3a3e4314ef7c3d39e5908a1e54029a8f40c2c88b6d3", dirty.InputHash(0, nil))
	assert.Equal(t, "b94676167d209aea01138050d80b3e78799984e6029729d5caca5dba4ba696b3", dirty.InputHash(7, []string{"ab", "c"}))

	distinct := []struct {
		name string
		rev  int64
		deps []string
	}{
		{"base", 1, []string{"a", "b"}},
		{"other rev", 2, []string{"a", "b"}},
		{"negative rev", -1, []string{"a", "b"}},
		{"order", 1, []string{"b", "a"}},
		{"boundary", 1, []string{"ab"}},
		{"boundary with empty", 1, []string{"ab", ""}},
		{"empty first", 1, []string{"", "ab"}},
		{"no deps", 1, nil},
		{"one empty dep", 1, []string{""}},
		{"two empty deps", 1, []string{"", ""}},
		{"ab|c", 1, []string{"ab", "c"}},
		{"a|bc", 1, []string{"a", "bc"}},
		{"abc", 1, []string{"abc"}},
		{"rev in deps", 0, []string{"\x00\x00\x00\x00\x00\x00\x00\x01a"}},
	}
	seen := map[string]string{}
	for _, tc := range distinct {
		h := dirty.InputHash(tc.rev, tc.deps)
		if prev, ok := seen[h]; ok {
			t.Errorf("InputHash of %q and %q collide", prev, tc.name)
		}
		seen[h] = tc.name
	}
	assert.Equal(t, dirty.InputHash(3, nil), dirty.InputHash(3, []string{}), "nil and empty deps are the same input")
}

func TestAppendInputHash(t *testing.T) {
	long := make([]string, 40) // past the stack buffer
	for i := range long {
		long[i] = strings.Repeat("h", 32)
	}
	for _, tc := range []struct {
		name   string
		prefix string
		rev    int64
		deps   []string
	}{
		{"empty prefix", "", 7, []string{"ab", "c"}},
		{"key prefix", "graph/asset:video:segment[3]/", 2, []string{"x"}},
		{"many deps", "p", 1, long},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := dirty.AppendInputHash([]byte(tc.prefix), tc.rev, tc.deps)
			assert.Equal(t, tc.prefix+dirty.InputHash(tc.rev, tc.deps), string(got))
		})
	}
}

// TestStatesAndSetHaveNoJSONForm: a States or a Set, whose fields are
// unexported, encoded as {}, silently, by pointer, by value or as a
// field: a host that stored one lost every state. Both are refused with
// ErrNoJSONForm, which says what to encode instead.
func TestStatesAndSetHaveNoJSONForm(t *testing.T) {
	g, err := graph.Build(graph.Lecture(), 30)
	require.NoError(t, err)
	states := dirty.NewStates(g.Len())
	states.Set(0, dirty.State{Status: dirty.StatusClean, OutputHash: "h"})
	set, err := dirty.Compute(g, dirty.Input{States: states})
	require.NoError(t, err)
	type record struct {
		States dirty.States `json:"states"`
		Set    dirty.Set    `json:"set"`
	}
	for _, tc := range []struct {
		name string
		v    any
		want string
	}{
		{"*States", states, "encode each node's State"},
		{"States", *states, "encode each node's State"},
		{"*Set", set, "planner.Plan"},
		{"Set", *set, "planner.Plan"},
		{"fields", record{States: *states, Set: *set}, "encode each node's State"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(tc.v)
			require.ErrorIs(t, err, dirty.ErrNoJSONForm, "encoded as %s", b)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	null, err := json.Marshal(struct{ S *dirty.States }{})
	require.NoError(t, err)
	assert.Equal(t, `{"S":null}`, string(null), "a nil *States")
}

// TestStatesOfStatusesAloneCostAByteANode: a States whose states were
// set with a Status alone (a host that knows statuses, the plan command
// marking every node clean) held a full record a node all the same,
// about 110 bytes: 2.2 GB for the 20,000,000 nodes a graph may have by
// default. It now holds the records from the first state with more than
// a status; reads are the same either way.
func TestStatesOfStatusesAloneCostAByteANode(t *testing.T) {
	const n = 1 << 20
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	s := dirty.NewStates(n)
	for i := range n {
		s.Set(graph.Node(i), dirty.State{Status: dirty.Status(i % 6)})
	}
	runtime.ReadMemStats(&after)
	assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(2*n), "bytes allocated for %d nodes", n)
	for _, i := range []int{0, 1, 5, n - 1} {
		assert.Equal(t, dirty.State{Status: dirty.Status(i % 6)}, s.Get(graph.Node(i)), "node %d", i)
	}
	c := s.Clone()

	// A full record: every other node keeps its status.
	full := dirty.State{Status: dirty.StatusClean, Rev: 3, OutputHash: "h", UpdatedAt: time.Unix(1, 0).UTC()}
	s.Set(7, full)
	assert.Equal(t, full, s.Get(7))
	for _, i := range []int{0, 1, 5, 8, n - 1} {
		assert.Equal(t, dirty.State{Status: dirty.Status(i % 6)}, s.Get(graph.Node(i)), "node %d", i)
		assert.Equal(t, dirty.Status(i%6), s.Status(graph.Node(i)), "node %d", i)
	}
	assert.Equal(t, n/6+1, s.Count(dirty.StatusClean), "node 7 was clean (7 % 6 == 1), and is")
	assert.Equal(t, dirty.State{Status: dirty.StatusClean}, c.Get(7), "the clone made before is unchanged")
	s.Set(7, dirty.State{Status: dirty.StatusDirty})
	assert.Equal(t, dirty.State{Status: dirty.StatusDirty}, s.Get(7), "a status alone over a record")
}
