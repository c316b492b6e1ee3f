package main

import (
	"io"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestMemoryANode: the command's memory grows with the graph, and at the
// default limits (20,000,000 nodes) it must fit a machine: it allocated
// 140 to 1,070 bytes a node (the lecture at the limit took GBs), of which
// 113 a node for the clean states of every node (a full State record
// each, when only the status was set) and most of the rest for the
// output, built whole in memory before it was written. The bytes
// allocated are counted here, for the lecture of 200,004 nodes in each
// format, with and without a change; no timing.
func TestMemoryANode(t *testing.T) {
	const secs = 666_670 // 66,667 segments: 200,004 nodes
	for _, args := range [][]string{
		{"-format", "text"}, {"-format", "json"},
		{"-format", "text", "-edit", "script"}, {"-format", "json", "-edit", "script"},
		{"-format", "text", "-edit", "asset:music"}, {"-format", "json", "-force", "timeline"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			args := append([]string{"-duration", strconv.Itoa(secs), "-max-seconds", strconv.Itoa(secs)}, args...)
			var stderr strings.Builder
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			code := run(args, io.Discard, &stderr)
			runtime.ReadMemStats(&after)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			nodes := uint64(3*secs/10 + 3)
			perNode := (after.TotalAlloc - before.TotalAlloc) / nodes
			t.Logf("%d bytes a node", perNode)
			assert.Less(t, perNode, uint64(100), "bytes allocated a node")
		})
	}
}
