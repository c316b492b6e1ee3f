package executor

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/graph"
)

// BenchmarkMemoryStoreRun is the store work of one run of the 360-segment
// lecture (1,083 nodes) on a new MemoryStore, with nothing else: for each
// node, a Get of each dependency's asset, a Put of its own and a commit
// of its state. Keys, IDs and states are made once, so that every
// allocation it reports is the store's. "reserved" is announced as the
// executor announces a new graph; "unreserved" is not, as BenchmarkOverhead's
// stores case does.
func BenchmarkMemoryStoreRun(b *testing.B) {
	g, err := graph.Build(graph.Lecture(), 3600)
	if err != nil {
		b.Fatal(err)
	}
	n := g.Len()
	ids, keys := make([]string, n), make([]string, n)
	for i := range n {
		ids[i] = g.NodeID(graph.Node(i))
		keys[i] = "l/" + ids[i] + "/h"
	}
	data := []byte("x")
	now := time.Now()
	for _, reserved := range []bool{true, false} {
		name := map[bool]string{true: "reserved", false: "unreserved"}[reserved]
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			refs := make([]string, n)
			changes := make([]Change, 1)
			b.ReportAllocs()
			cpu := cpuTime()
			for b.Loop() {
				s := NewMemoryStore()
				if reserved {
					s.reserve("l", n+1, s)
				}
				var v int64
				for i := range n {
					for _, d := range g.Deps(graph.Node(i)) {
						if _, err := s.Get(ctx, refs[d]); err != nil {
							b.Fatal(err)
						}
					}
					ref, err := s.Put(ctx, keys[i], Asset{Data: data, Hash: "h"})
					if err != nil {
						b.Fatal(err)
					}
					refs[i] = ref
					changes[0] = Change{ID: ids[i], State: dirty.State{Status: dirty.StatusClean,
						OutputHash: "h", AssetRef: ref, Attempts: 1, UpdatedAt: now}}
					if v, err = s.Commit(ctx, "l", v, changes); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/node")
			// The process's CPU time, the garbage collector's included: on
			// a busy machine it varies less than the elapsed time.
			b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N)/float64(n), "cpu-ns/node")
		})
	}
}

// cpuTime returns the CPU time the process has used, in nanoseconds.
func cpuTime() int64 {
	var u syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &u); err != nil {
		return 0
	}
	return u.Utime.Nano() + u.Stime.Nano()
}
