package progress_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress"
)

// TestOutlineJSONIsTheEventsPlan: Outline's doc promises the same JSON
// for the same plan, but json.Marshal of an Event's Plan gave Go's field
// names ({"Stages":[{"Nodes":...), not the event's "plan" form, so that
// a host forwarding ev.Plan in its own API wrote another form than the
// README's (an outside trial's finding). An Outline now writes, and
// reads, the event's form.
func TestOutlineJSONIsTheEventsPlan(t *testing.T) {
	o := &progress.Outline{Stages: []progress.OutlineStage{
		{Nodes: 1, Groups: []progress.OutlineGroup{{Kind: "script", Nodes: 1}}},
		{Nodes: 8, Groups: []progress.OutlineGroup{{BatchKey: "raster", Nodes: 8, Concurrency: 4}}},
	}}
	ev := progress.Event{RunID: "r1", Seq: 1, Type: progress.RunStarted, Plan: o}
	evJSON, err := json.Marshal(ev)
	require.NoError(t, err)
	var wire struct {
		Plan json.RawMessage `json:"plan"`
	}
	require.NoError(t, json.Unmarshal(evJSON, &wire))

	got, err := json.Marshal(o)
	require.NoError(t, err)
	assert.Equal(t, string(wire.Plan), string(got), "the Outline's JSON is the event's plan")
	assert.Equal(t, `{"stages":[{"nodes":1,"groups":[{"kind":"script","batchKey":"","nodes":1,"concurrency":0}]},{"nodes":8,"groups":[{"kind":"","batchKey":"raster","nodes":8,"concurrency":4}]}]}`, string(got))
	byValue, err := json.Marshal(*o)
	require.NoError(t, err)
	assert.Equal(t, string(got), string(byValue), "a value writes as a pointer does")

	var back progress.Outline
	require.NoError(t, json.Unmarshal(got, &back))
	assert.Equal(t, *o, back)
	var empty progress.Outline
	require.NoError(t, json.Unmarshal([]byte(`{"stages":[]}`), &empty))
	assert.Equal(t, progress.Outline{}, empty, "an empty list reads as nil, as in an event")
	assert.Error(t, json.Unmarshal([]byte(`{"stages":{}}`), &back))
}
