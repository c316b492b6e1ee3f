package sse_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/internal/fake"
	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/sse"
)

// The package doc's "Events in JavaScript" holds for an executor's run as
// a page gets it: each data line read as JSON.parse reads it, into plain
// keys. runId, seq, time, type, done and total are always there; stage is
// there, 0 included, on the stage events; the final event has no etaMs
// (its ETA is 0: nothing left) and no stage, and has counts, with every
// outcome; plan is on run.started alone; an etaMs is at least 1000; each
// frame's id is its event's seq.
func TestEventJSONIsAsThePackageDocSays(t *testing.T) {
	mem := progress.NewMemory(progress.MemoryOptions{})
	g, err := graph.Build(graph.Lecture(), 30)
	require.NoError(t, err)
	f := fake.New(fake.Options{Seed: 1, Default: time.Millisecond})
	e, err := executor.New(executor.Options{Generators: f.Registry(), Sink: mem, Logger: quiet()})
	require.NoError(t, err)
	const runID = "r-json"
	_, err = e.Run(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: g, RunID: runID})
	require.NoError(t, err)

	h, err := sse.NewHandler(mem, sse.HandlerOptions{Authorize: byPath, CloseOnFinal: true, Logger: quiet()})
	require.NoError(t, err)
	server := httptest.NewServer(h)
	t.Cleanup(server.Close)
	s := openRaw(t, server.URL+"/runs/"+runID, nil)
	s.lines(t, 2) // the retry field

	var (
		events    []map[string]any
		stageZero bool
		withETA   int
	)
	for {
		fr := s.frames(t, 1)[0]
		require.Len(t, fr, 3, "an event's frame: %q", fr)
		id, ok := strings.CutPrefix(fr[0], "id: ")
		require.True(t, ok, "the frame's first line: %q", fr[0])
		data, ok := strings.CutPrefix(fr[1], "data: ")
		require.True(t, ok, "the frame's second line: %q", fr[1])
		var ev map[string]any
		require.NoError(t, json.Unmarshal([]byte(data), &ev))
		events = append(events, ev)
		for _, k := range []string{"runId", "seq", "time", "type", "done", "total"} {
			require.Contains(t, ev, k, "event %s", data)
		}
		assert.Equal(t, runID, ev["runId"])
		assert.Equal(t, id, strconv.FormatFloat(ev["seq"].(float64), 'f', -1, 64), "the frame's id is its seq")
		typ := progress.Type(ev["type"].(string))
		if strings.HasPrefix(string(typ), "stage.") {
			require.Contains(t, ev, "stage", "a stage event: %s", data)
			stageZero = stageZero || ev["stage"] == float64(0)
		}
		if eta, ok := ev["etaMs"]; ok {
			withETA++
			assert.GreaterOrEqual(t, eta.(float64), float64(1000), "a known ETA: %s", data)
		}
		_, hasPlan := ev["plan"]
		assert.Equal(t, typ == progress.RunStarted, hasPlan, "plan only on run.started (no later round here): %s", data)
		_, hasCounts := ev["counts"]
		assert.Equal(t, typ.Final(), hasCounts, "counts only on the final event: %s", data)
		if typ.Final() {
			assert.Equal(t, progress.RunFinished, typ)
			counts := ev["counts"].(map[string]any)
			for _, k := range []string{"generated", "unchanged", "failed", "skipped", "superseded", "cancelled"} {
				assert.Contains(t, counts, k, "the final event's counts, zeros included: %s", data)
			}
			assert.Equal(t, ev["total"], counts["generated"], "every node generated: %s", data)
			assert.NotContains(t, ev, "etaMs", "the final event: %s", data)
			assert.NotContains(t, ev, "stage", "the final event: %s", data)
			assert.Equal(t, ev["total"], ev["done"], "the final event: %s", data)
			break
		}
	}
	assert.True(t, stageZero, "a stage event with \"stage\":0")
	assert.Positive(t, withETA, "events with an ETA")
	assert.Greater(t, len(events), 10)
}
