package executor

import (
	"reflect"
	"slices"
	"strings"

	"github.com/regengraph/regen/graph"
)

// sharedKinds returns the groups of kinds, by name, that share bulk
// calls, for the machine's Config.Shared: the kinds of one batch key
// whose generator is one BatchGenerator, the same comparable value
// (typically one pointer), two or more to a group, each group in the
// template's order, the groups by their first kind; nil for none. A
// generator whose value cannot be compared (a struct with a func or a
// map field, say) shares with no kind: comparing it would panic. bulks
// is by kind, as run.bulks.
func sharedKinds(g *graph.Graph, bulks []BatchGenerator) [][]string {
	type slot struct {
		key string
		gen BatchGenerator
	}
	at := map[slot]int{}
	var groups [][]string
	for ki, bg := range bulks {
		key, _ := g.BatchKey(ki)
		if bg == nil || key == "" || !reflect.ValueOf(bg).Comparable() {
			continue
		}
		s := slot{key, bg}
		if i, ok := at[s]; ok {
			groups[i] = append(groups[i], g.KindName(ki))
			continue
		}
		at[s] = len(groups)
		groups = append(groups, []string{g.KindName(ki)})
	}
	var out [][]string
	for _, grp := range groups {
		if len(grp) > 1 {
			out = append(out, grp)
		}
	}
	return out
}

// callKinds returns the kinds of a bulk call's nodes (jobs at idx), once
// each, in the call's order, joined by commas: one kind but for a call
// that spans the kinds that share a generator.
func callKinds(jobs []*job, idx []int) string {
	return strings.Join(callKindList(jobs, idx), ",")
}

// callKindList returns the kinds of callKinds, as a list.
func callKindList(jobs []*job, idx []int) []string {
	kinds := []string{jobs[idx[0]].kind}
	for _, i := range idx[1:] {
		if k := jobs[i].kind; !slices.Contains(kinds, k) {
			kinds = append(kinds, k)
		}
	}
	return kinds
}
