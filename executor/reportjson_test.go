package executor_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
)

// TestReportMarshalsInCamelCase: a Report marshals with the lower camel
// case names of its Record, not with its Go field names, so that a host
// that sends a run's outcome to a browser gets one naming style, and its
// lists as [] when empty; the record's marks too.
func TestReportMarshalsInCamelCase(t *testing.T) {
	g, err := graph.Build(graph.Lecture(), 20)
	require.NoError(t, err)
	e, err := executor.New(executor.Options{Generators: registryFor(g, noop)})
	require.NoError(t, err)
	rep, err := e.Run(context.Background(), executor.RunRequest{GraphKey: "json", Graph: g})
	require.NoError(t, err)
	b, err := json.Marshal(rep)
	require.NoError(t, err)
	var got map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(b, &got))
	keys := make([]string, 0, len(got))
	for k := range got {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	require.Equal(t, []string{"cancelled", "dirty", "failed", "generated", "record", "rounds", "skipped", "superseded", "unchanged"}, keys)
	require.JSONEq(t, "[]", string(got["failed"]))
	require.JSONEq(t, "1", string(got["rounds"]))
	var rec map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(got["record"], &rec))
	require.Contains(t, rec, "graphKey")
	var back executor.Report
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, rep.Generated, back.Generated)
	require.Equal(t, rep.Record.ID, back.Record.ID)

	// The record's marks too, not in dirty.Mark's Go field names.
	rep, err = e.Run(context.Background(), executor.RunRequest{GraphKey: "json", Graph: g,
		Marks: []dirty.Mark{{ID: "asset:narration:segment[1]", Reason: dirty.ReasonEdited}}})
	require.NoError(t, err)
	b, err = json.Marshal(rep.Record)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &rec))
	require.JSONEq(t, `[{"id": "asset:narration:segment[1]", "reason": "edited"}]`, string(rec["marks"]))
}
