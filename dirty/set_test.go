package dirty_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/graph"
)

func lecture(t testing.TB, secs int) *graph.Graph {
	t.Helper()
	g, err := graph.Build(graph.Lecture(), secs)
	require.NoError(t, err)
	return g
}

func node(t testing.TB, g *graph.Graph, id string) graph.Node {
	t.Helper()
	n, err := g.Lookup(id)
	require.NoError(t, err)
	return n
}

// cleanStates returns states with every node clean, with an asset ref.
func cleanStates(g *graph.Graph) *dirty.States {
	st := dirty.NewStates(g.Len())
	for n := range g.Len() {
		st.Set(graph.Node(n), dirty.State{Status: dirty.StatusClean, AssetRef: "ref:" + g.NodeID(graph.Node(n))})
	}
	return st
}

// explained returns the set as a map from node ID to Explain.
func explained(s *dirty.Set) map[string]string {
	out := map[string]string{}
	for _, n := range s.Nodes() {
		out[s.Graph().NodeID(n)] = s.Explain(n)
	}
	return out
}

// checkSet checks the set's own consistency: Nodes ascending, Whys
// aligned, Has, Index and Why agreeing, and every dependent of a member a
// member.
func checkSet(t testing.TB, s *dirty.Set) {
	t.Helper()
	g := s.Graph()
	nodes := s.Nodes()
	require.Len(t, s.Whys(), len(nodes))
	require.Equal(t, len(nodes), s.Len())
	pos := map[graph.Node]int{}
	for i, n := range nodes {
		if i > 0 {
			require.Less(t, nodes[i-1], n, "Nodes not ascending")
		}
		pos[n] = i
	}
	for i := range g.Len() {
		n := graph.Node(i)
		j, inSet := pos[n]
		require.Equal(t, inSet, s.Has(n), "Has(%s)", g.NodeID(n))
		idx, ok := s.Index(n)
		require.Equal(t, inSet, ok, "Index(%s)", g.NodeID(n))
		w, wok := s.Why(n)
		require.Equal(t, inSet, wok)
		if !inSet {
			require.Equal(t, 0, idx)
			require.Equal(t, dirty.Why{}, w)
			require.Empty(t, s.Explain(n))
			require.Equal(t, "x", string(s.AppendExplain([]byte("x"), n)), "AppendExplain appends nothing")
			require.Nil(t, s.Chain(n))
			require.Nil(t, s.Causes(n))
			continue
		}
		require.Equal(t, "x"+s.Explain(n), string(s.AppendExplain([]byte("x"), n)), "AppendExplain(%s)", g.NodeID(n))
		require.Equal(t, j, idx, "Index(%s)", g.NodeID(n))
		require.Equal(t, s.Whys()[j], w)
		require.Contains(t, s.Causes(n), w.Root, "Causes(%s)", g.NodeID(n))
		for _, c := range g.Dependents(n) {
			require.True(t, s.Has(c), "%s is in the set but its dependent %s is not", g.NodeID(n), g.NodeID(c))
		}
	}
}

func TestComputeNewLecture(t *testing.T) {
	g := lecture(t, 30)
	calls := 0
	s, err := dirty.Compute(g, dirty.Input{AssetExists: func(graph.Node, dirty.State) bool { calls++; return false }})
	require.NoError(t, err)
	checkSet(t, s)
	assert.Equal(t, 0, calls, "a new lecture has no clean node to check")
	require.Equal(t, g.Len(), s.Len())
	for i, n := range s.Nodes() {
		assert.Equal(t, graph.Node(i), n)
		assert.Equal(t, dirty.Why{Reason: dirty.ReasonNeverGenerated, From: graph.None, Root: n}, s.Whys()[i])
		assert.Equal(t, "never generated", s.Explain(n))
		assert.Equal(t, []graph.Node{n}, s.Chain(n))
	}
	assert.Same(t, g, s.Graph())

	t.Run("with marks", func(t *testing.T) {
		s, err := dirty.Compute(g, dirty.Input{Marks: []dirty.Mark{
			{ID: "asset:image:segment[2]", Reason: dirty.ReasonEdited},
			{ID: "timeline", Reason: dirty.ReasonForced},
		}})
		require.NoError(t, err)
		checkSet(t, s)
		require.Equal(t, g.Len(), s.Len())
		w, ok := s.Why(node(t, g, "asset:image:segment[2]"))
		require.True(t, ok)
		assert.Equal(t, dirty.Why{Reason: dirty.ReasonEdited, From: graph.None, Root: node(t, g, "asset:image:segment[2]")}, w)
		assert.Equal(t, "forced", s.Explain(node(t, g, "timeline")))
		assert.Equal(t, "never generated", s.Explain(node(t, g, "asset:video:segment[2]")))
	})
	t.Run("sizes around a word", func(t *testing.T) {
		// 63, 64 and 65 nodes: 3S+3 for S = 20 gives 63, and so on.
		for _, secs := range []int{200, 610, 620, 630, 3600} {
			g := lecture(t, secs)
			s, err := dirty.Compute(g, dirty.Input{})
			require.NoError(t, err)
			assert.Equal(t, g.Len(), s.Len())
			assert.False(t, s.Has(graph.Node(g.Len())), "node past the end")
			assert.False(t, s.Has(graph.Node(g.Len()+64)))
			checkSet(t, s)
		}
	})
}

func TestComputeMarks(t *testing.T) {
	g := lecture(t, 60) // 6 segments
	tests := []struct {
		name  string
		marks []dirty.Mark
		want  map[string]string
	}{
		{
			name:  "no marks on a clean lecture",
			marks: nil,
			want:  map[string]string{},
		},
		{
			name:  "edit one narration",
			marks: []dirty.Mark{{ID: "asset:narration:segment[3]", Reason: dirty.ReasonEdited}},
			want: map[string]string{
				"asset:narration:segment[3]": "edited",
				"asset:video:segment[3]":     "upstream asset:narration:segment[3] edited",
				"timeline":                   "upstream asset:narration:segment[3] edited",
			},
		},
		{
			name:  "edit one image",
			marks: []dirty.Mark{{ID: "asset:image:segment[1]", Reason: dirty.ReasonEdited}},
			want: map[string]string{
				"asset:image:segment[1]": "edited",
				"asset:video:segment[1]": "upstream asset:image:segment[1] edited",
				"timeline":               "upstream asset:video:segment[1], from asset:image:segment[1] edited",
			},
		},
		{
			name:  "music asset missing",
			marks: []dirty.Mark{{ID: "asset:music", Reason: dirty.ReasonAssetMissing}},
			want: map[string]string{
				"asset:music": "asset missing",
				"timeline":    "upstream asset:music asset missing",
			},
		},
		{
			name:  "force the timeline only",
			marks: []dirty.Mark{{ID: "timeline", Reason: dirty.ReasonForced}},
			want:  map[string]string{"timeline": "forced"},
		},
		{
			name: "a marked node downstream of another keeps its own reason",
			marks: []dirty.Mark{
				{ID: "asset:video:segment[0]", Reason: dirty.ReasonForced},
				{ID: "asset:image:segment[0]", Reason: dirty.ReasonEdited},
			},
			want: map[string]string{
				"asset:image:segment[0]": "edited",
				"asset:video:segment[0]": "forced",
				"timeline":               "upstream asset:video:segment[0] forced",
			},
		},
		{
			name: "the strongest of two marks on one node wins",
			marks: []dirty.Mark{
				{ID: "asset:music", Reason: dirty.ReasonAssetMissing},
				{ID: "asset:music", Reason: dirty.ReasonForced},
				{ID: "asset:music", Reason: dirty.ReasonEdited},
				{ID: "asset:music", Reason: dirty.ReasonForced},
			},
			want: map[string]string{
				"asset:music": "edited",
				"timeline":    "upstream asset:music edited",
			},
		},
		{
			name: "the lowest-indexed dirty dependency is the source",
			marks: []dirty.Mark{
				{ID: "asset:music", Reason: dirty.ReasonEdited},
				{ID: "asset:video:segment[5]", Reason: dirty.ReasonForced},
				{ID: "asset:image:segment[4]", Reason: dirty.ReasonAssetMissing},
			},
			want: map[string]string{
				"asset:image:segment[4]": "asset missing",
				"asset:video:segment[4]": "upstream asset:image:segment[4] asset missing",
				"asset:video:segment[5]": "forced",
				"asset:music":            "edited",
				"timeline":               "upstream asset:video:segment[4], from asset:image:segment[4] asset missing",
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := cleanStates(g)
			before := st.Clone()
			s, err := dirty.Compute(g, dirty.Input{States: st, Marks: tc.marks})
			require.NoError(t, err)
			checkSet(t, s)
			if diff := cmp.Diff(tc.want, explained(s)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(before, st, cmp.AllowUnexported(dirty.States{})); diff != "" {
				t.Errorf("Compute changed the states (-before +after):\n%s", diff)
			}
		})
	}

	t.Run("script forced regenerates everything", func(t *testing.T) {
		s, err := dirty.Compute(g, dirty.Input{States: cleanStates(g), Marks: []dirty.Mark{{ID: "script", Reason: dirty.ReasonForced}}})
		require.NoError(t, err)
		checkSet(t, s)
		require.Equal(t, g.Len(), s.Len())
		assert.Equal(t, "forced", s.Explain(0))
		assert.Equal(t, "upstream script forced", s.Explain(node(t, g, "asset:image:segment[5]")))
		assert.Equal(t, "upstream asset:narration:segment[2], from script forced", s.Explain(node(t, g, "asset:video:segment[2]")))
		assert.Equal(t, "upstream asset:narration:segment[0], from script forced", s.Explain(node(t, g, "timeline")))
	})
}

func TestComputeWhyAndChain(t *testing.T) {
	g := lecture(t, 60)
	narr3 := node(t, g, "asset:narration:segment[3]")
	video3 := node(t, g, "asset:video:segment[3]")
	image1 := node(t, g, "asset:image:segment[1]")
	video1 := node(t, g, "asset:video:segment[1]")
	timeline := node(t, g, "timeline")

	s, err := dirty.Compute(g, dirty.Input{States: cleanStates(g), Marks: []dirty.Mark{{ID: "asset:narration:segment[3]", Reason: dirty.ReasonEdited}}})
	require.NoError(t, err)
	w, ok := s.Why(video3)
	require.True(t, ok)
	assert.Equal(t, dirty.Why{Reason: dirty.ReasonUpstream, From: narr3, Root: narr3}, w)
	assert.Equal(t, "upstream asset:narration:segment[3] edited", s.Explain(video3))
	assert.Equal(t, "asset:video:segment[3]: upstream asset:narration:segment[3] edited",
		g.NodeID(video3)+": "+s.Explain(video3), "the issue's example")
	assert.Equal(t, []graph.Node{video3, narr3}, s.Chain(video3))
	assert.Equal(t, []graph.Node{narr3}, s.Chain(narr3))

	s, err = dirty.Compute(g, dirty.Input{States: cleanStates(g), Marks: []dirty.Mark{{ID: "asset:image:segment[1]", Reason: dirty.ReasonEdited}}})
	require.NoError(t, err)
	w, ok = s.Why(timeline)
	require.True(t, ok)
	assert.Equal(t, dirty.Why{Reason: dirty.ReasonUpstream, From: video1, Root: image1}, w)
	assert.Equal(t, []graph.Node{timeline, video1, image1}, s.Chain(timeline))
	_, ok = s.Why(video3)
	assert.False(t, ok)
	assert.Nil(t, s.Chain(video3))
	assert.Empty(t, s.Explain(video3))
}

func TestComputeStatuses(t *testing.T) {
	g := lecture(t, 30)
	tests := []struct {
		status dirty.Status
		reason dirty.Reason
		text   string
	}{
		{dirty.StatusMissing, dirty.ReasonNeverGenerated, "never generated"},
		{dirty.StatusDirty, dirty.ReasonStale, "marked dirty"},
		{dirty.StatusRunning, dirty.ReasonInterrupted, "interrupted"},
		{dirty.StatusFailed, dirty.ReasonFailed, "last attempt failed"},
		{dirty.StatusCancelled, dirty.ReasonCancelled, "cancelled"},
	}
	for _, tc := range tests {
		t.Run(tc.status.String(), func(t *testing.T) {
			st := cleanStates(g)
			img := node(t, g, "asset:image:segment[2]")
			st.Set(img, dirty.State{Status: tc.status})
			s, err := dirty.Compute(g, dirty.Input{States: st})
			require.NoError(t, err)
			checkSet(t, s)
			want := map[string]string{
				"asset:image:segment[2]": tc.text,
				"asset:video:segment[2]": "upstream asset:image:segment[2] " + tc.text,
				"timeline":               "upstream asset:video:segment[2], from asset:image:segment[2] " + tc.text,
			}
			if diff := cmp.Diff(want, explained(s)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			w, _ := s.Why(img)
			assert.Equal(t, dirty.Why{Reason: tc.reason, From: graph.None, Root: img}, w)
		})
	}
	t.Run("every node missing is a new lecture", func(t *testing.T) {
		s, err := dirty.Compute(g, dirty.Input{States: dirty.NewStates(g.Len())})
		require.NoError(t, err)
		checkSet(t, s)
		nilStates, err := dirty.Compute(g, dirty.Input{})
		require.NoError(t, err)
		assert.Equal(t, nilStates.Nodes(), s.Nodes())
		assert.Equal(t, nilStates.Whys(), s.Whys())
	})
}

func TestComputeReasonPriority(t *testing.T) {
	g := lecture(t, 30)
	video0 := node(t, g, "asset:video:segment[0]")
	tests := []struct {
		name   string
		status dirty.Status
		mark   dirty.Reason // 0 for none
		assetX bool         // AssetExists reports the video's asset missing
		edit   bool         // edit its narration upstream
		want   string
	}{
		{"mark beats status", dirty.StatusFailed, dirty.ReasonForced, false, false, "forced"},
		{"asset-missing mark beats stale", dirty.StatusDirty, dirty.ReasonAssetMissing, false, false, "asset missing"},
		{"edited beats everything", dirty.StatusRunning, dirty.ReasonEdited, true, true, "edited"},
		{"status beats upstream", dirty.StatusFailed, 0, false, true, "last attempt failed"},
		{"cancelled beats upstream", dirty.StatusCancelled, 0, false, true, "cancelled"},
		{"missing asset beats upstream", dirty.StatusClean, 0, true, true, "asset missing"},
		// A clean node whose inputs changed and whose asset is gone: both
		// apply, and the missing asset is the stronger.
		{"missing asset beats inputs changed", dirty.StatusClean, dirty.ReasonInputsChanged, true, false, "asset missing"},
		{"inputs changed with the asset there", dirty.StatusClean, dirty.ReasonInputsChanged, false, false, "inputs changed"},
		{"forced beats missing asset", dirty.StatusClean, dirty.ReasonForced, true, false, "forced"},
		{"upstream alone", dirty.StatusClean, 0, false, true, "upstream asset:narration:segment[0] edited"},
		{"clean and present", dirty.StatusClean, 0, false, false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := cleanStates(g)
			st.Set(video0, dirty.State{Status: tc.status})
			in := dirty.Input{States: st, AssetExists: func(n graph.Node, _ dirty.State) bool {
				return !(tc.assetX && n == video0)
			}}
			if tc.mark != 0 {
				in.Marks = append(in.Marks, dirty.Mark{ID: "asset:video:segment[0]", Reason: tc.mark})
			}
			if tc.edit {
				in.Marks = append(in.Marks, dirty.Mark{ID: "asset:narration:segment[0]", Reason: dirty.ReasonEdited})
			}
			s, err := dirty.Compute(g, in)
			require.NoError(t, err)
			checkSet(t, s)
			assert.Equal(t, tc.want, s.Explain(video0))
		})
	}
}

func TestComputeAssetExists(t *testing.T) {
	g := lecture(t, 30)
	st := cleanStates(g)
	image0 := node(t, g, "asset:image:segment[0]")
	narr1 := node(t, g, "asset:narration:segment[1]")
	st.Set(narr1, dirty.State{Status: dirty.StatusFailed})
	var calls []string
	var refs []string
	s, err := dirty.Compute(g, dirty.Input{
		States: st,
		Marks:  []dirty.Mark{{ID: "asset:music", Reason: dirty.ReasonForced}},
		AssetExists: func(n graph.Node, rec dirty.State) bool {
			calls = append(calls, g.NodeID(n))
			refs = append(refs, rec.AssetRef)
			return n != image0
		},
	})
	require.NoError(t, err)
	checkSet(t, s)
	// Every clean node that no mark covers, in node order: not the failed
	// narration, not the forced music.
	wantCalls := []string{
		"script",
		"asset:narration:segment[0]", "asset:narration:segment[2]",
		"asset:image:segment[0]", "asset:image:segment[1]", "asset:image:segment[2]",
		"asset:video:segment[0]", "asset:video:segment[1]", "asset:video:segment[2]",
		"timeline",
	}
	if diff := cmp.Diff(wantCalls, calls); diff != "" {
		t.Errorf("AssetExists calls (-want +got):\n%s", diff)
	}
	for i, id := range calls {
		assert.Equal(t, "ref:"+id, refs[i], "AssetExists gets the node's recorded state")
	}
	want := map[string]string{
		"asset:image:segment[0]":     "asset missing",
		"asset:narration:segment[1]": "last attempt failed",
		"asset:video:segment[0]":     "upstream asset:image:segment[0] asset missing",
		"asset:video:segment[1]":     "upstream asset:narration:segment[1] last attempt failed",
		"asset:music":                "forced",
		"timeline":                   "upstream asset:narration:segment[1] last attempt failed",
	}
	if diff := cmp.Diff(want, explained(s)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	w, _ := s.Why(image0)
	assert.Equal(t, dirty.Why{Reason: dirty.ReasonAssetMissing, From: graph.None, Root: image0}, w)

	t.Run("all present: nothing to do", func(t *testing.T) {
		n := 0
		s, err := dirty.Compute(g, dirty.Input{States: cleanStates(g), AssetExists: func(graph.Node, dirty.State) bool { n++; return true }})
		require.NoError(t, err)
		assert.Equal(t, 0, s.Len())
		assert.Equal(t, g.Len(), n)
		assert.Empty(t, s.Nodes())
		assert.False(t, s.Has(0))
	})
}

func TestComputeErrors(t *testing.T) {
	g := lecture(t, 30)
	good := dirty.Mark{ID: "script", Reason: dirty.ReasonEdited}
	tests := []struct {
		name  string
		marks []dirty.Mark
		index int
		is    error // besides ErrInvalidMark
		msg   string
	}{
		{"unknown kind", []dirty.Mark{good, {ID: "asset:sound", Reason: dirty.ReasonEdited}}, 1, graph.ErrUnknownNode,
			`dirty: invalid mark 1 (edited "asset:sound"): graph: unknown node "asset:sound": the template has no kind "asset:sound"`},
		{"segment out of range", []dirty.Mark{{ID: "asset:image:segment[3]", Reason: dirty.ReasonForced}, good}, 0, graph.ErrUnknownNode,
			`dirty: invalid mark 0 (forced "asset:image:segment[3]"): graph: unknown node "asset:image:segment[3]": segment 3 is out of range`},
		{"malformed", []dirty.Mark{good, good, {ID: "asset:image:segment[x]", Reason: dirty.ReasonAssetMissing}}, 2, graph.ErrMalformedID,
			`dirty: invalid mark 2 (asset missing "asset:image:segment[x]"): graph: malformed node ID`},
		{"empty ID", []dirty.Mark{{ID: "", Reason: dirty.ReasonEdited}}, 0, graph.ErrMalformedID, `(edited ""): graph: malformed node ID ""`},
		{"zero reason", []dirty.Mark{{ID: "script"}}, 0, nil,
			`dirty: invalid mark 0 (Reason(0) "script"): reason Reason(0) cannot be marked: use edited, forced, asset missing or inputs changed`},
		{"upstream reason", []dirty.Mark{{ID: "script", Reason: dirty.ReasonUpstream}}, 0, nil, "reason upstream cannot be marked"},
		{"failed reason", []dirty.Mark{{ID: "script", Reason: dirty.ReasonFailed}}, 0, nil, "reason last attempt failed cannot be marked"},
		{"never generated reason", []dirty.Mark{{ID: "script", Reason: dirty.ReasonNeverGenerated}}, 0, nil, "cannot be marked"},
		{"out-of-range reason", []dirty.Mark{{ID: "script", Reason: 99}}, 0, nil, "reason Reason(99) cannot be marked"},
		{"bad reason checked before the ID", []dirty.Mark{{ID: "nope", Reason: 0}}, 0, nil, "cannot be marked"},
	}
	for _, tc := range tests {
		for _, states := range []*dirty.States{nil, cleanStates(g)} {
			t.Run(fmt.Sprintf("%s/states=%v", tc.name, states != nil), func(t *testing.T) {
				s, err := dirty.Compute(g, dirty.Input{States: states, Marks: tc.marks})
				assert.Nil(t, s, "nothing is applied")
				var me *dirty.MarkError
				require.ErrorAs(t, err, &me)
				require.ErrorIs(t, err, dirty.ErrInvalidMark)
				assert.Equal(t, tc.index, me.Index)
				assert.Equal(t, tc.marks[tc.index], me.Mark)
				if tc.is != nil {
					require.ErrorIs(t, err, tc.is)
					var ie *graph.IDError
					require.ErrorAs(t, err, &ie)
					assert.Equal(t, tc.marks[tc.index].ID, ie.ID)
				} else {
					assert.NotErrorIs(t, err, graph.ErrUnknownNode)
					assert.NotErrorIs(t, err, graph.ErrMalformedID)
				}
				assert.Contains(t, err.Error(), tc.msg)
			})
		}
	}
	t.Run("states length mismatch", func(t *testing.T) {
		for _, n := range []int{0, g.Len() - 1, g.Len() + 1} {
			s, err := dirty.Compute(g, dirty.Input{States: dirty.NewStates(n)})
			assert.Nil(t, s)
			require.ErrorIs(t, err, dirty.ErrStatesMismatch)
			assert.NotErrorIs(t, err, dirty.ErrInvalidMark)
			assert.Equal(t, fmt.Sprintf("dirty: states do not match the graph: %d states for 12 nodes; make them with NewStates(g.Len()), one per node", n), err.Error())
		}
	})
	t.Run("states length mismatch, one of either", func(t *testing.T) {
		// One state, one node: not "1 states" or "1 nodes".
		_, err := dirty.Compute(g, dirty.Input{States: dirty.NewStates(1)})
		assert.EqualError(t, err, "dirty: states do not match the graph: 1 state for 12 nodes; make them with NewStates(g.Len()), one per node")
		one, err := graph.Build(graph.Template{Kinds: []graph.Kind{{Name: "a"}}}, 10)
		require.NoError(t, err)
		_, err = dirty.Compute(one, dirty.Input{States: dirty.NewStates(2)})
		assert.EqualError(t, err, "dirty: states do not match the graph: 2 states for 1 node; make them with NewStates(g.Len()), one per node")
	})
	assert.True(t, errors.Is(&dirty.MarkError{Err: errors.New("x")}, dirty.ErrInvalidMark))
}

func TestSetAcrossWords(t *testing.T) {
	// 100 segments: 303 nodes over five words. An edit of narration 70
	// touches narration 70 (node 71), video 70 (node 271) and the
	// timeline (node 302).
	g := lecture(t, 1000)
	s, err := dirty.Compute(g, dirty.Input{States: cleanStates(g), Marks: []dirty.Mark{{ID: "asset:narration:segment[70]", Reason: dirty.ReasonEdited}}})
	require.NoError(t, err)
	checkSet(t, s)
	assert.Equal(t, []graph.Node{71, 271, 302}, s.Nodes())
	for i, n := range []graph.Node{71, 271, 302} {
		idx, ok := s.Index(n)
		assert.True(t, ok)
		assert.Equal(t, i, idx)
	}
	for _, n := range []graph.Node{-1, 0, 70, 72, 270, 301, 303, 320, 1 << 20} {
		assert.False(t, s.Has(n), "Has(%d)", n)
		_, ok := s.Index(n)
		assert.False(t, ok, "Index(%d)", n)
	}
}

func TestReasonString(t *testing.T) {
	want := map[dirty.Reason]string{
		0:                          "Reason(0)",
		dirty.ReasonEdited:         "edited",
		dirty.ReasonForced:         "forced",
		dirty.ReasonAssetMissing:   "asset missing",
		dirty.ReasonFailed:         "last attempt failed",
		dirty.ReasonInterrupted:    "interrupted",
		dirty.ReasonCancelled:      "cancelled",
		dirty.ReasonStale:          "marked dirty",
		dirty.ReasonNeverGenerated: "never generated",
		dirty.ReasonUpstream:       "upstream",
		dirty.ReasonUpstream + 1:   "Reason(11)",
	}
	for r, s := range want {
		assert.Equal(t, s, r.String())
	}
}

// TestSetSlicesAreClipped: Nodes and Whys share the set's slices, so they
// must have no room beyond their length: two callers appending to them
// (each to a copy of its own, as a planner adds nodes) would otherwise
// write into the same spare array and see each other's nodes, a data race
// on a set documented as safe for concurrent use.
func TestSetSlicesAreClipped(t *testing.T) {
	g := lecture(t, 120)
	tests := []struct {
		name string
		in   dirty.Input
	}{
		{"one edit", dirty.Input{States: cleanStates(g), Marks: []dirty.Mark{{ID: "asset:narration:segment[3]", Reason: dirty.ReasonEdited}}}},
		{"script edited", dirty.Input{States: cleanStates(g), Marks: []dirty.Mark{{ID: "script", Reason: dirty.ReasonEdited}}}},
		{"new lecture", dirty.Input{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := dirty.Compute(g, tc.in)
			require.NoError(t, err)
			nodes, whys := s.Nodes(), s.Whys()
			assert.Equal(t, len(nodes), cap(nodes), "Nodes has spare capacity")
			assert.Equal(t, len(whys), cap(whys), "Whys has spare capacity")

			a := append(s.Nodes(), 1000)
			b := append(s.Nodes(), 2000)
			assert.Equal(t, graph.Node(1000), a[len(a)-1], "a caller's append was overwritten by another's")
			assert.Equal(t, graph.Node(2000), b[len(b)-1])
			wa := append(s.Whys(), dirty.Why{Reason: dirty.ReasonEdited})
			wb := append(s.Whys(), dirty.Why{Reason: dirty.ReasonForced})
			assert.Equal(t, dirty.ReasonEdited, wa[len(wa)-1].Reason, "a caller's append was overwritten by another's")
			assert.Equal(t, dirty.ReasonForced, wb[len(wb)-1].Reason)
			checkSet(t, s)
		})
	}
}

// TestMarkErrorOfALongID: a mark whose ID is too long to be a node's is
// named by its first bytes and its length, not whole: a mark of a
// megabyte was refused with a message of two (the ID, then the graph's
// error about it).
func TestMarkErrorOfALongID(t *testing.T) {
	g, err := graph.Build(graph.Lecture(), 30)
	require.NoError(t, err)
	long := strings.Repeat("x", 1<<20)
	_, err = dirty.Compute(g, dirty.Input{Marks: []dirty.Mark{{ID: long, Reason: dirty.ReasonEdited}}})
	require.ErrorIs(t, err, dirty.ErrInvalidMark)
	assert.Less(t, len(err.Error()), 1000, "%.300s", err)
	assert.Contains(t, err.Error(), `dirty: invalid mark 0 (edited "xxxx`)
	assert.Contains(t, err.Error(), `"… (1048576 bytes)): graph: malformed node ID "xxxx`)
	// A valid ID is named whole.
	_, err = dirty.Compute(g, dirty.Input{Marks: []dirty.Mark{{ID: "asset:image:segment[3]", Reason: dirty.ReasonEdited}}})
	assert.ErrorContains(t, err, `dirty: invalid mark 0 (edited "asset:image:segment[3]"): graph: unknown node "asset:image:segment[3]"`)
}
