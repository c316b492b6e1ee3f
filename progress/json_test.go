package progress_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/sinktest"
)

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 123456789, time.UTC)

func TestEventJSONWireForm(t *testing.T) {
	tests := []struct {
		name  string
		event progress.Event
		want  string
	}{
		{
			name:  "run started: optional fields left out",
			event: progress.Event{RunID: "r1", GraphKey: "g", Seq: 1, Time: t0, Type: progress.RunStarted, Stage: progress.NoStage, Total: 20},
			want:  `{"runId":"r1","graphKey":"g","seq":1,"time":"2025-01-02T03:04:05.123456789Z","type":"run.started","done":0,"total":20}`,
		},
		{
			name: "every field",
			event: progress.Event{
				RunID: "r1", GraphKey: "lecture-42", Seq: 7, Time: t0, Type: progress.NodeRetrying,
				Node: "asset:narration:segment[3]", Kind: "asset:narration", BatchKey: "asset:narration", Round: 2, Stage: 1, StageDone: 3, StageTotal: 7,
				BatchDone: 1, BatchTotal: 3, Attempt: 2, Message: "retrying", PreviewURL: "https://x.test/a.png?a=1&b=2",
				Reasoning: "r <because>", Error: "tts: 503", Done: 5, Total: 20,
				Counts: &progress.Counts{Generated: 1, Unchanged: 2, Failed: 3, Skipped: 4, Superseded: 5, Cancelled: 6, Dirty: 7},
				ETA:    61 * time.Second, ResumedBy: "r2", CancelledBy: "drain",
			},
			want: `{"runId":"r1","graphKey":"lecture-42","seq":7,"time":"2025-01-02T03:04:05.123456789Z","type":"node.retrying","node":"asset:narration:segment[3]","kind":"asset:narration","batchKey":"asset:narration","round":2,"stage":1,"stageDone":3,"stageTotal":7,"batchDone":1,"batchTotal":3,"attempt":2,"message":"retrying","previewUrl":"https://x.test/a.png?a=1\u0026b=2","reasoning":"r \u003cbecause\u003e","error":"tts: 503","done":5,"total":20,"counts":{"generated":1,"unchanged":2,"failed":3,"skipped":4,"superseded":5,"cancelled":6,"dirty":7},"etaMs":61000,"resumedBy":"r2","cancelledBy":"drain"}`,
		},
		{
			name: "the final event of a run found interrupted names the run that resumed it",
			event: progress.Event{RunID: "r1", GraphKey: "g", Seq: 8, Time: t0, Type: progress.RunCancelled, Stage: progress.NoStage,
				Message: "interrupted", Error: `executor: run cancelled: run "r1": interrupted`, Done: 3, Total: 9, ResumedBy: "r2"},
			want: `{"runId":"r1","graphKey":"g","seq":8,"time":"2025-01-02T03:04:05.123456789Z","type":"run.cancelled","message":"interrupted","error":"executor: run cancelled: run \"r1\": interrupted","done":3,"total":9,"resumedBy":"r2"}`,
		},
		{
			name: "a run's final event has its counts, each written, 0 too",
			event: progress.Event{RunID: "r1", GraphKey: "g", Seq: 40, Time: t0, Type: progress.RunFailed, Stage: progress.NoStage,
				Message: "failed: 9 generated, 0 unchanged, 1 failed, 2 skipped, 0 superseded, 0 cancelled", Done: 12, Total: 12,
				Counts: &progress.Counts{Generated: 9, Failed: 1, Skipped: 2, Dirty: 3}},
			want: `{"runId":"r1","graphKey":"g","seq":40,"time":"2025-01-02T03:04:05.123456789Z","type":"run.failed","message":"failed: 9 generated, 0 unchanged, 1 failed, 2 skipped, 0 superseded, 0 cancelled","done":12,"total":12,"counts":{"generated":9,"unchanged":0,"failed":1,"skipped":2,"superseded":0,"cancelled":0,"dirty":3}}`,
		},
		{
			// A viewer tells a shutdown's drain from a user's cancel.
			name: "a cancelled run's final event has its cancel code",
			event: progress.Event{RunID: "r1", Seq: 9, Time: t0, Type: progress.RunCancelled, Stage: progress.NoStage, Done: 3, Total: 8,
				Counts: &progress.Counts{Generated: 3, Dirty: 5}, CancelledBy: "drain"},
			want: `{"runId":"r1","seq":9,"time":"2025-01-02T03:04:05.123456789Z","type":"run.cancelled","done":3,"total":8,"counts":{"generated":3,"unchanged":0,"failed":0,"skipped":0,"superseded":0,"cancelled":0,"dirty":5},"cancelledBy":"drain"}`,
		},
		{
			// An edit during the run superseded a node, and its dependent
			// was skipped: the run succeeded with work left.
			name: "a run.finished that left nodes dirty says so",
			event: progress.Event{RunID: "r1", Seq: 9, Time: t0, Type: progress.RunFinished, Stage: progress.NoStage, Done: 8, Total: 8,
				Counts: &progress.Counts{Generated: 6, Skipped: 1, Superseded: 1, Dirty: 2}},
			want: `{"runId":"r1","seq":9,"time":"2025-01-02T03:04:05.123456789Z","type":"run.finished","done":8,"total":8,"counts":{"generated":6,"unchanged":0,"failed":0,"skipped":1,"superseded":1,"cancelled":0,"dirty":2}}`,
		},
		{
			name:  "counts all 0 are written: the run settled no node",
			event: progress.Event{RunID: "r1", Seq: 2, Time: t0, Type: progress.RunFinished, Stage: progress.NoStage, Counts: &progress.Counts{}},
			want:  `{"runId":"r1","seq":2,"time":"2025-01-02T03:04:05.123456789Z","type":"run.finished","done":0,"total":0,"counts":{"generated":0,"unchanged":0,"failed":0,"skipped":0,"superseded":0,"cancelled":0,"dirty":0}}`,
		},
		{
			name: "run.started has the outline of its plan, each key written, 0 and empty too",
			event: progress.Event{RunID: "r1", GraphKey: "g", Seq: 1, Time: t0, Type: progress.RunStarted, Stage: progress.NoStage,
				Message: "Regenerating 5 of 9 nodes in 2 stages (dataflow)", Total: 5,
				Plan: &progress.Outline{Stages: []progress.OutlineStage{
					{Nodes: 1, Groups: []progress.OutlineGroup{{Kind: "script", Nodes: 1}}},
					{Nodes: 4, Groups: []progress.OutlineGroup{{Kind: "asset:image", BatchKey: "asset:image", Nodes: 3, Concurrency: 5},
						{BatchKey: "tts", Nodes: 1, Concurrency: 2}}},
				}}},
			want: `{"runId":"r1","graphKey":"g","seq":1,"time":"2025-01-02T03:04:05.123456789Z","type":"run.started","message":"Regenerating 5 of 9 nodes in 2 stages (dataflow)","done":0,"total":5,` +
				`"plan":{"stages":[{"nodes":1,"groups":[{"kind":"script","batchKey":"","nodes":1,"concurrency":0}]},{"nodes":4,"groups":[{"kind":"asset:image","batchKey":"asset:image","nodes":3,"concurrency":5},{"kind":"","batchKey":"tts","nodes":1,"concurrency":2}]}]}}`,
		},
		{
			name:  "an outline's empty lists are written as []",
			event: progress.Event{RunID: "r", Seq: 1, Time: t0, Type: progress.RunStarted, Stage: progress.NoStage, Plan: &progress.Outline{Stages: []progress.OutlineStage{{}}}},
			want:  `{"runId":"r","seq":1,"time":"2025-01-02T03:04:05.123456789Z","type":"run.started","done":0,"total":0,"plan":{"stages":[{"nodes":0,"groups":[]}]}}`,
		},
		{
			name:  "an outline with no stages",
			event: progress.Event{RunID: "r", Seq: 1, Time: t0, Type: progress.RunStarted, Stage: progress.NoStage, Plan: &progress.Outline{}},
			want:  `{"runId":"r","seq":1,"time":"2025-01-02T03:04:05.123456789Z","type":"run.started","done":0,"total":0,"plan":{"stages":[]}}`,
		},
		{
			name:  "stage 0 is written",
			event: progress.Event{RunID: "r", Seq: 2, Time: t0, Type: progress.StageStarted, Stage: 0, Message: "Stage 1: Generating 6 script nodes"},
			want:  `{"runId":"r","seq":2,"time":"2025-01-02T03:04:05.123456789Z","type":"stage.started","stage":0,"message":"Stage 1: Generating 6 script nodes","done":0,"total":0}`,
		},
		{
			name: "a stage's first event: stageDone 0 left out, stageTotal written",
			event: progress.Event{RunID: "r", Seq: 2, Time: t0, Type: progress.StageStarted, Round: 1, Stage: 2, StageTotal: 360,
				Message: "Stage 2: Generating 360 asset:video nodes in batches of 3", Done: 9, Total: 400},
			want: `{"runId":"r","seq":2,"time":"2025-01-02T03:04:05.123456789Z","type":"stage.started","round":1,"stage":2,"stageTotal":360,"message":"Stage 2: Generating 360 asset:video nodes in batches of 3","done":9,"total":400}`,
		},
		{
			name:  "local time is written in UTC; ETA rounded to ms",
			event: progress.Event{RunID: "r", Seq: 3, Time: time.Date(2025, 1, 2, 5, 4, 5, 0, time.FixedZone("X", 2*3600)), Type: progress.Message, Stage: progress.NoStage, ETA: 1500 * time.Microsecond},
			want:  `{"runId":"r","seq":3,"time":"2025-01-02T03:04:05Z","type":"message","done":0,"total":0,"etaMs":2}`,
		},
		{
			name:  "newline and quote escaped",
			event: progress.Event{RunID: "r", Seq: 4, Time: t0, Type: progress.Message, Stage: progress.NoStage, Message: "a\n\"b\""},
			want:  `{"runId":"r","seq":4,"time":"2025-01-02T03:04:05.123456789Z","type":"message","message":"a\n\"b\"","done":0,"total":0}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := json.Marshal(tt.event)
			require.NoError(t, err)
			assert.Equal(t, tt.want, string(got))
		})
	}
}

func TestEventJSONRoundTrip(t *testing.T) {
	events := sinktest.Events("round-trip", 1, 50)
	events = append(events,
		progress.Event{RunID: "r", Seq: 51, Type: progress.RunFinished, Stage: progress.NoStage, Time: t0},
		progress.Event{RunID: "r", Seq: 52, Type: progress.RunCancelled, Stage: 0, Time: time.Time{}},
		progress.Event{RunID: "r", Seq: 53, Type: progress.RunCancelled, Stage: progress.NoStage, Time: t0,
			Message: "interrupted", Error: "cancelled", ResumedBy: "r-next"},
		progress.Event{RunID: "r", Seq: 54, Type: progress.RunFailed, Stage: progress.NoStage, Time: t0, Done: 12, Total: 12,
			Counts: &progress.Counts{Generated: 9, Unchanged: 1, Failed: 1, Skipped: 1}},
		progress.Event{RunID: "r", Seq: 55, Type: progress.RunFinished, Stage: progress.NoStage, Time: t0, Counts: &progress.Counts{}},
		progress.Event{RunID: "r", Seq: 56, Type: progress.RunStarted, Stage: progress.NoStage, Time: t0, Total: 7,
			Plan: &progress.Outline{Stages: []progress.OutlineStage{
				{Nodes: 1, Groups: []progress.OutlineGroup{{Kind: "script", Nodes: 1}}},
				{Nodes: 6, Groups: []progress.OutlineGroup{{Kind: "asset:image", BatchKey: "asset:image", Nodes: 3, Concurrency: 5},
					{BatchKey: "tts", Nodes: 2, Concurrency: 2}, {Kind: "asset:music", Nodes: 1}}},
			}}},
		progress.Event{RunID: "r", Seq: 57, Type: progress.Message, Stage: progress.NoStage, Time: t0, Round: 2, Plan: &progress.Outline{}},
		progress.Event{RunID: "r", Seq: 58, Type: progress.RunStarted, Stage: progress.NoStage, Time: t0,
			Plan: &progress.Outline{Stages: []progress.OutlineStage{{Nodes: 0}}}},
	)
	for _, e := range events {
		data, err := json.Marshal(e)
		require.NoError(t, err)
		var got progress.Event
		require.NoError(t, json.Unmarshal(data, &got), "%s", data)
		if diff := sinktest.Diff([]progress.Event{e}, []progress.Event{got}); diff != "" {
			t.Errorf("round trip of %s (-want +got):\n%s", data, diff)
		}
	}
	// A slice of events, as an archive export would write it.
	data, err := json.Marshal(events)
	require.NoError(t, err)
	var got []progress.Event
	require.NoError(t, json.Unmarshal(data, &got))
	assert.Empty(t, sinktest.Diff(events, got))
}

func TestEventUnmarshalJSON(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    progress.Event
		wantErr bool
	}{
		{
			name: "unknown keys ignored, missing stage is NoStage",
			in:   `{"runId":"r","seq":3,"time":"2025-01-02T03:04:05Z","type":"node.started","node":"n","future":{"x":1},"done":1,"total":2}`,
			want: progress.Event{RunID: "r", Seq: 3, Time: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Type: progress.NodeStarted, Node: "n", Stage: progress.NoStage, Done: 1, Total: 2},
		},
		{
			name: "resumedBy read",
			in:   `{"runId":"r","seq":4,"time":"2025-01-02T03:04:05Z","type":"run.cancelled","done":1,"total":2,"resumedBy":"r2"}`,
			want: progress.Event{RunID: "r", Seq: 4, Time: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Type: progress.RunCancelled, Stage: progress.NoStage, Done: 1, Total: 2, ResumedBy: "r2"},
		},
		{
			name: "batchKey, round, stageDone, stageTotal, batchDone and batchTotal read",
			in:   `{"runId":"r","seq":5,"time":"2025-01-02T03:04:05Z","type":"node.succeeded","node":"asset:video:segment[2]","kind":"asset:video","batchKey":"asset:video","round":2,"stage":2,"stageDone":4,"stageTotal":360,"batchDone":2,"batchTotal":120,"done":9,"total":400}`,
			want: progress.Event{RunID: "r", Seq: 5, Time: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Type: progress.NodeSucceeded,
				Node: "asset:video:segment[2]", Kind: "asset:video", BatchKey: "asset:video", Round: 2, Stage: 2, StageDone: 4, StageTotal: 360,
				BatchDone: 2, BatchTotal: 120, Done: 9, Total: 400},
		},
		{
			name: "counts read; a key left out is 0, but dirty, unknown",
			in:   `{"runId":"r","seq":6,"time":"2025-01-02T03:04:05Z","type":"run.cancelled","done":7,"total":9,"counts":{"generated":4,"failed":1,"skipped":1,"cancelled":1,"future":2}}`,
			want: progress.Event{RunID: "r", Seq: 6, Time: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Type: progress.RunCancelled, Stage: progress.NoStage,
				Done: 7, Total: 9, Counts: &progress.Counts{Generated: 4, Failed: 1, Skipped: 1, Cancelled: 1, Dirty: progress.DirtyUnknown}},
		},
		{
			name: "counts with dirty 0",
			in:   `{"runId":"r","seq":6,"type":"run.finished","counts":{"generated":4,"dirty":0}}`,
			want: progress.Event{RunID: "r", Seq: 6, Type: progress.RunFinished, Stage: progress.NoStage,
				Counts: &progress.Counts{Generated: 4}},
		},
		{
			name: "counts null reads as none",
			in:   `{"runId":"r","seq":6,"type":"run.finished","counts":null}`,
			want: progress.Event{RunID: "r", Seq: 6, Type: progress.RunFinished, Stage: progress.NoStage},
		},
		{
			name: "plan read; a key left out is 0 or empty, an empty list none",
			in: `{"runId":"r","seq":1,"type":"run.started","total":4,"plan":{"stages":[{"nodes":1,"groups":[{"kind":"script"}]},` +
				`{"nodes":3,"groups":[{"batchKey":"tts","nodes":3,"concurrency":2,"future":1}],"future":[]},{"groups":[]},{"groups":null}],"future":{}}}`,
			want: progress.Event{RunID: "r", Seq: 1, Type: progress.RunStarted, Stage: progress.NoStage, Total: 4,
				Plan: &progress.Outline{Stages: []progress.OutlineStage{
					{Nodes: 1, Groups: []progress.OutlineGroup{{Kind: "script"}}},
					{Nodes: 3, Groups: []progress.OutlineGroup{{BatchKey: "tts", Nodes: 3, Concurrency: 2}}},
					{}, {},
				}}},
		},
		{
			name: "plan with no stages",
			in:   `{"runId":"r","seq":1,"plan":{"stages":[]}}`,
			want: progress.Event{RunID: "r", Seq: 1, Stage: progress.NoStage, Plan: &progress.Outline{}},
		},
		{
			name: "plan null reads as none",
			in:   `{"runId":"r","seq":1,"type":"run.started","plan":null}`,
			want: progress.Event{RunID: "r", Seq: 1, Type: progress.RunStarted, Stage: progress.NoStage},
		},
		{name: "plan not an object", in: `{"runId":"r","seq":1,"plan":[]}`, wantErr: true},
		{name: "stages not a list", in: `{"runId":"r","seq":1,"plan":{"stages":{}}}`, wantErr: true},
		{name: "a group's nodes not a number", in: `{"runId":"r","seq":1,"plan":{"stages":[{"groups":[{"nodes":"3"}]}]}}`, wantErr: true},
		{name: "a group's kind not a string", in: `{"runId":"r","seq":1,"plan":{"stages":[{"groups":[{"kind":3}]}]}}`, wantErr: true},
		{name: "counts not an object", in: `{"runId":"r","seq":1,"counts":[1,2]}`, wantErr: true},
		{name: "a count not a number", in: `{"runId":"r","seq":1,"counts":{"failed":"1"}}`, wantErr: true},
		{
			name: "offset time converted to UTC",
			in:   `{"runId":"r","seq":1,"time":"2025-01-02T05:04:05+02:00","type":"run.started"}`,
			want: progress.Event{RunID: "r", Seq: 1, Time: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Type: progress.RunStarted, Stage: progress.NoStage},
		},
		{
			// As documented: keys match without regard to case, and the
			// last of a key given twice wins.
			name: "keys match as encoding/json matches them",
			in:   `{"runId":"a","RUNID":"b","Seq":2,"time":"2025-01-02T03:04:05Z"}`,
			want: progress.Event{RunID: "b", Seq: 2, Time: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Stage: progress.NoStage},
		},
		{name: "bad time", in: `{"runId":"r","seq":1,"time":"yesterday","type":"run.started"}`, wantErr: true},
		{name: "negative stage", in: `{"runId":"r","seq":1,"time":"2025-01-02T03:04:05Z","stage":-1}`, wantErr: true},
		{name: "seq is a string", in: `{"runId":"r","seq":"1"}`, wantErr: true},
		{name: "not an object", in: `[1,2]`, wantErr: true},
		// Read, these could not be written again: UTC moves the year past
		// RFC 3339's, and a time.Duration cannot hold the ETA.
		{name: "time after 9999 in UTC", in: `{"runId":"r","seq":1,"time":"9999-12-31T23:00:00-02:00"}`, wantErr: true},
		{name: "time before 0000 in UTC", in: `{"runId":"r","seq":1,"time":"0000-01-01T00:00:00+01:00"}`, wantErr: true},
		{name: "etaMs beyond a Duration", in: `{"runId":"r","seq":1,"etaMs":9223372036855}`, wantErr: true},
		{name: "etaMs below a Duration", in: `{"runId":"r","seq":1,"etaMs":-9223372036855}`, wantErr: true},
		{
			name: "largest etaMs",
			in:   `{"runId":"r","seq":1,"time":"9999-12-31T23:59:59Z","etaMs":9223372036854}`,
			want: progress.Event{RunID: "r", Seq: 1, Time: time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC), Stage: progress.NoStage, ETA: 9223372036854 * time.Millisecond},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got progress.Event
			err := json.Unmarshal([]byte(tt.in), &got)
			if tt.wantErr {
				assert.ErrorIs(t, err, progress.ErrInvalidJSON)
				return
			}
			require.NoError(t, err)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// An event whose time has no RFC 3339 form is refused, rather than
// written in a form that no reader takes.
func TestEventMarshalJSONRefusesTimeOutsideRFC3339(t *testing.T) {
	for _, tm := range []time.Time{
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 0, 0, 0, time.FixedZone("W", -2*3600)),
		time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
	} {
		_, err := json.Marshal(progress.Event{RunID: "r", Seq: 1, Time: tm, Type: progress.RunStarted})
		assert.ErrorContains(t, err, "is outside RFC 3339's years 0000 to 9999 (in UTC)", "%v", tm)
	}
}

func TestTypeFinal(t *testing.T) {
	final := map[progress.Type]bool{progress.RunFinished: true, progress.RunFailed: true, progress.RunCancelled: true}
	for _, typ := range []progress.Type{
		progress.RunStarted, progress.RunFinished, progress.RunFailed, progress.RunCancelled,
		progress.StageStarted, progress.StageFinished, progress.NodeStarted, progress.NodeRetrying,
		progress.NodeSucceeded, progress.NodeUnchanged, progress.NodeFailed, progress.NodeSkipped,
		progress.NodeSuperseded, progress.NodeCancelled, progress.Message,
	} {
		assert.Equal(t, final[typ], typ.Final(), "%s", typ)
	}
}

func TestEventValidate(t *testing.T) {
	assert.NoError(t, progress.Event{RunID: "r", Seq: 1}.Validate())
	assert.ErrorIs(t, progress.Event{RunID: "r"}.Validate(), progress.ErrInvalidEvent)
	assert.ErrorIs(t, progress.Event{Seq: 1}.Validate(), progress.ErrInvalidEvent)
	assert.ErrorContains(t, progress.Event{RunID: "r"}.Validate(), `run "r": seq is 0`)
	// A time that the event's JSON cannot write: a sink that stores it
	// could not serve it (progress/sse's Handler would end every stream
	// of the run at it, and a browser reconnect forever).
	for _, at := range []time.Time{time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 12, 31, 23, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 0, 0, 0, time.FixedZone("-02", -2*3600))} {
		e := progress.Event{RunID: "r", Seq: 1, Time: at}
		assert.ErrorIs(t, e.Validate(), progress.ErrInvalidEvent, "time %v", at)
		assert.ErrorIs(t, progress.NewMemory(progress.MemoryOptions{}).Publish(context.Background(), e), progress.ErrInvalidEvent, "Memory, time %v", at)
	}
	for _, at := range []time.Time{{}, time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)} {
		assert.NoError(t, progress.Event{RunID: "r", Seq: 1, Time: at}.Validate(), "time %v", at)
	}
	// A run ID that the JSON form would change (invalid UTF-8 becomes
	// U+FFFD) or that Postgres cannot hold (NUL): a sink that took it
	// served the run under another ID, or never (a Redis stream's Replay
	// of it found nothing).
	for _, id := range []string{"r\xff", "r\x00", "\xc3"} {
		e := progress.Event{RunID: id, Seq: 1}
		assert.ErrorIs(t, e.Validate(), progress.ErrInvalidEvent, "run ID %q", id)
		assert.ErrorContains(t, e.Validate(), "valid UTF-8 without NUL", "run ID %q", id)
		assert.ErrorIs(t, progress.NewMemory(progress.MemoryOptions{}).Publish(context.Background(), e), progress.ErrInvalidEvent, "Memory, run ID %q", id)
	}
	assert.NoError(t, progress.Event{RunID: "ré-1", Seq: 1}.Validate())
}

// The round trip changes exactly what the package documentation says it
// does.
func TestEventJSONRoundTripDocumentedChanges(t *testing.T) {
	base := progress.Event{RunID: "r", Seq: 1, Time: t0, Type: progress.Message, Stage: progress.NoStage}
	tests := []struct {
		name     string
		in, want func(progress.Event) progress.Event
	}{
		{"time in UTC", func(e progress.Event) progress.Event { e.Time = t0.In(time.FixedZone("X", 3600)); return e },
			func(e progress.Event) progress.Event { return e }},
		{"ETA rounded to the millisecond", func(e progress.Event) progress.Event { e.ETA = 1499 * time.Microsecond; return e },
			func(e progress.Event) progress.Event { e.ETA = time.Millisecond; return e }},
		{"negative stage is NoStage", func(e progress.Event) progress.Event { e.Stage = -5; return e },
			func(e progress.Event) progress.Event { return e }},
		{"empty lists of a plan come back nil", func(e progress.Event) progress.Event {
			e.Plan = &progress.Outline{Stages: []progress.OutlineStage{{Nodes: 1, Groups: []progress.OutlineGroup{}}}}
			return e
		}, func(e progress.Event) progress.Event {
			e.Plan = &progress.Outline{Stages: []progress.OutlineStage{{Nodes: 1}}}
			return e
		}},
		{"an empty list of stages comes back nil", func(e progress.Event) progress.Event {
			e.Plan = &progress.Outline{Stages: []progress.OutlineStage{}}
			return e
		}, func(e progress.Event) progress.Event { e.Plan = &progress.Outline{}; return e }},
		{"invalid UTF-8 becomes U+FFFD", func(e progress.Event) progress.Event { e.Message = "a\xffb"; return e },
			func(e progress.Event) progress.Event { e.Message = "a\uFFFDb"; return e }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := json.Marshal(tt.in(base))
			require.NoError(t, err)
			var got progress.Event
			require.NoError(t, json.Unmarshal(data, &got))
			if diff := cmp.Diff(tt.want(base), got); diff != "" {
				t.Errorf("round trip of %s (-want +got):\n%s", data, diff)
			}
		})
	}
}

// JSON null left an event reset to an empty one (with Stage NoStage),
// where encoding/json's convention, which Unmarshal itself follows for
// a struct, and graph.Template's UnmarshalJSON, leave the value as it
// is. A field or an element that is null now keeps the event it holds.
func TestEventUnmarshalJSONNullLeavesTheEvent(t *testing.T) {
	ev := progress.Event{RunID: "r1", Seq: 3, Type: progress.NodeStarted, Stage: 2}
	for _, in := range []string{"null", " null\n"} {
		got := ev
		require.NoError(t, got.UnmarshalJSON([]byte(in)))
		assert.Equal(t, ev, got)
	}
	holder := struct{ E progress.Event }{E: ev}
	require.NoError(t, json.Unmarshal([]byte(`{"E": null}`), &holder))
	assert.Equal(t, ev, holder.E)
}

// A final event of a release before counts.dirty (or one that a process
// of that release wrote again, in a deploy where both run) says nothing
// of the nodes left dirty: it reads as DirtyUnknown, not 0, which a page
// that ships on run.finished with dirty 0 would take for a whole graph,
// and it is written again without dirty, so that it does not turn into
// 0 on its way through (an upgrade trial).
func TestEventJSONOfAnEarlierReleaseLeavesDirtyUnknown(t *testing.T) {
	old := `{"runId":"r","seq":9,"type":"run.finished","done":9,"total":9,"counts":{"generated":9,"unchanged":0,"failed":0,"skipped":0,"superseded":0,"cancelled":0}}`
	var e progress.Event
	require.NoError(t, json.Unmarshal([]byte(old), &e))
	require.NotNil(t, e.Counts)
	assert.Equal(t, progress.DirtyUnknown, e.Counts.Dirty)
	b, err := json.Marshal(e)
	require.NoError(t, err)
	assert.NotContains(t, string(b), `"dirty"`)
	assert.Contains(t, string(b), `"counts":{"generated":9,"unchanged":0,"failed":0,"skipped":0,"superseded":0,"cancelled":0}`)

	e.Counts.Dirty = 0 // a writer that counted: none left
	b, err = json.Marshal(e)
	require.NoError(t, err)
	assert.Contains(t, string(b), `"cancelled":0,"dirty":0}`)
}

// A counts.dirty below 0 is no count: written again, it would be left
// out and read back as DirtyUnknown, so that read, written and read
// again the event would change. It is refused, naming the way to say
// unknown (leave it out).
func TestEventJSONRefusesANegativeDirty(t *testing.T) {
	for _, in := range []string{
		`{"runId":"r","seq":9,"type":"run.finished","counts":{"generated":9,"dirty":-5}}`,
		`{"runId":"r","seq":9,"type":"run.finished","counts":{"generated":9,"dirty":-1}}`,
	} {
		var e progress.Event
		err := json.Unmarshal([]byte(in), &e)
		require.ErrorIs(t, err, progress.ErrInvalidJSON, "%s", in)
		assert.Contains(t, err.Error(), "leave it out", "%s", in)
	}
}
