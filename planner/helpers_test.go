package planner_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/internal/testgraph"
	"github.com/regengraph/regen/planner"
)

// Short constructors for test templates.
var (
	glob    = testgraph.Glob
	per     = testgraph.Per
	batched = testgraph.Batched
	dep     = testgraph.Dep
	tmpl    = testgraph.Tmpl
)

func build(t testing.TB, tm graph.Template, secs int) *graph.Graph {
	t.Helper()
	g, err := graph.Build(tm, secs)
	require.NoError(t, err)
	return g
}

// allClean returns states with every node clean.
func allClean(g *graph.Graph) *dirty.States {
	st := dirty.NewStates(g.Len())
	for n := range g.Len() {
		st.Set(graph.Node(n), dirty.State{Status: dirty.StatusClean})
	}
	return st
}

// edits marks each ID edited.
func edits(ids ...string) []dirty.Mark {
	out := make([]dirty.Mark, len(ids))
	for i, id := range ids {
		out[i] = dirty.Mark{ID: id, Reason: dirty.ReasonEdited}
	}
	return out
}

// planOf computes the set and plan: a new graph when marks is nil,
// otherwise an all-clean graph with the marks.
func planOf(t testing.TB, g *graph.Graph, marks []dirty.Mark) *planner.Plan {
	t.Helper()
	in := dirty.Input{Marks: marks}
	if marks != nil {
		in.States = allClean(g)
	}
	set, err := dirty.Compute(g, in)
	require.NoError(t, err)
	return planner.New(set)
}

// render writes a plan one group a line: "<stage> single <id>" or
// "<stage> batch <key>/<concurrency> [<id> ...]".
func render(p *planner.Plan) []string {
	var out []string
	for _, st := range p.Stages {
		for _, grp := range st.Groups {
			ids := make([]string, len(grp.Nodes))
			for i, n := range grp.Nodes {
				ids[i] = p.Graph.NodeID(n)
			}
			switch grp.Kind {
			case planner.Single:
				out = append(out, fmt.Sprintf("%d single %s", st.Index, strings.Join(ids, " ")))
			default:
				out = append(out, fmt.Sprintf("%d %s %s/%d [%s]", st.Index, grp.Kind, grp.BatchKey, grp.Concurrency, strings.Join(ids, " ")))
			}
		}
	}
	return out
}

// segs returns "<kind>:segment[i]" for each i, space separated.
func segs(kind string, is ...int) string {
	parts := make([]string, len(is))
	for j, i := range is {
		parts[j] = fmt.Sprintf("%s:segment[%d]", kind, i)
	}
	return strings.Join(parts, " ")
}

// canonicalJSON returns the JSON of the plan New makes of p's nodes and
// every node that depends on one of them: each of p's nodes marked edited
// in an all-clean graph. p is a plan New could have made exactly when
// its JSON is this.
func canonicalJSON(t testing.TB, p *planner.Plan) []byte {
	t.Helper()
	marks := []dirty.Mark{}
	for _, st := range p.Stages {
		for _, grp := range st.Groups {
			for _, n := range grp.Nodes {
				marks = append(marks, dirty.Mark{ID: p.Graph.NodeID(n), Reason: dirty.ReasonEdited})
			}
		}
	}
	data, err := planOf(t, p.Graph, marks).MarshalJSON()
	require.NoError(t, err)
	return data
}
