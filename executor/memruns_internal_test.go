package executor

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/require"
)

// MemoryRuns indexes records by graph key, so that ListRuns and a
// graph's deletion read that graph's records only: before, both scanned
// every record of every graph (10 ms for a ListRuns among 100,000
// records, and as long for DeleteGraph, with the lock held, so that every
// run's start and end waited). The index follows every change: a record
// put again under another graph key moves, pruned and deleted records
// leave it, and a graph without records leaves no entry behind.
func TestMemoryRunsIndexByGraph(t *testing.T) {
	ctx := context.Background()
	old, recent := time.Now().Add(-48*time.Hour), time.Now()
	type step struct {
		name string
		do   func(m *MemoryRuns)
		want map[string][]string // graph key: its records' IDs, as ListRuns gives them
	}
	put := func(id, key string, at time.Time) func(m *MemoryRuns) {
		return func(m *MemoryRuns) { require.NoError(t, m.PutRun(ctx, Record{ID: id, GraphKey: key, StartedAt: at})) }
	}
	steps := []step{
		{"put", func(m *MemoryRuns) {
			put("a1", "a", old)(m)
			put("a2", "a", recent)(m)
			put("b1", "b", old)(m)
		}, map[string][]string{"a": {"a1", "a2"}, "b": {"b1"}}},
		{"put again, same graph", put("a1", "a", old), map[string][]string{"a": {"a1", "a2"}, "b": {"b1"}}},
		{"put again, other graph", put("a2", "b", recent), map[string][]string{"a": {"a1"}, "b": {"b1", "a2"}}},
		{"prune", func(m *MemoryRuns) {
			n, err := m.PruneRuns(ctx, time.Hour)
			require.NoError(t, err)
			require.Equal(t, int64(2), n)
		}, map[string][]string{"b": {"a2"}}},
		{"delete graph", func(m *MemoryRuns) { require.Equal(t, int64(1), m.deleteGraph("b")) }, map[string][]string{}},
		{"delete graph again", func(m *MemoryRuns) { require.Zero(t, m.deleteGraph("b")) }, map[string][]string{}},
		{"put after delete", put("b2", "b", recent), map[string][]string{"b": {"b2"}}},
	}
	m := new(MemoryRuns) // the zero value
	for _, st := range steps {
		st.do(m)
		for _, key := range []string{"a", "b"} {
			recs, err := m.ListRuns(ctx, key)
			require.NoError(t, err)
			got := []string{}
			for _, r := range recs {
				got = append(got, r.ID)
			}
			want := st.want[key]
			if want == nil {
				want = []string{}
			}
			require.Empty(t, cmp.Diff(want, got), "%s: ListRuns(%q)", st.name, key)
		}
		m.mu.RLock()
		for key, g := range m.byGraph {
			require.NotEmpty(t, g.ids, "%s: an entry of graph %q without records", st.name, key)
			for id := range g.ids {
				require.Equal(t, key, m.runs[id].GraphKey, "%s: record %q indexed under graph %q", st.name, id, key)
			}
		}
		require.Len(t, m.byGraph, len(st.want), "%s: graphs indexed", st.name)
		m.mu.RUnlock()
	}
}

// BenchmarkMemoryRunsListRuns lists one graph's 100 records among those
// of 1,000 graphs.
func BenchmarkMemoryRunsListRuns(b *testing.B) {
	for _, n := range []int{1_000, 100_000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			m := NewMemoryRuns()
			ctx, now := context.Background(), time.Now()
			for i := range n {
				require.NoError(b, m.PutRun(ctx, Record{ID: "r" + strconv.Itoa(i), GraphKey: "g" + strconv.Itoa(i%1000), StartedAt: now}))
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.ListRuns(ctx, "g7"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
