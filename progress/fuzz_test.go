package progress_test

import (
	"cmp"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/regengraph/regen/progress"
)

// FuzzEventJSON checks the event's JSON form, which readers take from
// outside (Redis entries, an SSE client's data): any input either fails
// with ErrInvalidJSON or gives an event whose JSON reads back as the same
// event, and the JSON of any event read is what it was written as.
func FuzzEventJSON(f *testing.F) {
	for _, s := range []string{
		`{"runId":"r1","graphKey":"g","seq":1,"time":"2025-01-02T03:04:05.123456789Z","type":"run.started","done":0,"total":20}`,
		`{"runId":"r","seq":3,"time":"2025-01-02T05:04:05+02:00","type":"message","stage":0,"message":"a\n\"b\"\u2028","done":0,"total":0,"etaMs":2}`,
		`{"runId":"r","seq":1,"etaMs":9223372036854775807}`,
		`{"runId":"r1","graphKey":"g","seq":9,"time":"2025-01-02T03:04:05Z","type":"run.cancelled","error":"executor: run cancelled: run \"r1\": interrupted","done":3,"total":9,"resumedBy":"r2"}`,
		`{"runId":"r","seq":9,"time":"2025-01-02T03:04:05Z","type":"node.succeeded","node":"asset:video:segment[2]","kind":"asset:video","batchKey":"asset:video","round":2,"stage":2,"stageDone":4,"stageTotal":360,"batchDone":2,"batchTotal":120,"done":9,"total":400}`,
		`{"runId":"r","seq":1,"round":-1,"stageDone":-2,"stageTotal":1e2,"batchKey":3,"batchDone":-1,"batchTotal":0}`,
		`{"runId":"r","seq":1,"resumedBy":""}`, `{"runId":"r","seq":1,"resumedBy":7}`,
		`{"runId":"r","seq":9,"type":"run.failed","done":12,"total":12,"counts":{"generated":9,"unchanged":0,"failed":1,"skipped":2,"superseded":0,"cancelled":0}}`,
		`{"runId":"r","seq":1,"counts":null}`, `{"runId":"r","seq":1,"counts":{}}`, `{"runId":"r","seq":1,"counts":{"failed":-1,"GENERATED":2}}`,
		`{"runId":"r","seq":1,"counts":[]}`,
		`{"runId":"r","seq":1,"counts":{"dirty":-5}}`, `{"runId":"r","seq":1,"counts":{"dirty":0}}`, `{"runId":"r","seq":1,"counts":{"generated":1}}`,
		`{"runId":"r","seq":1,"type":"run.started","total":4,"plan":{"stages":[{"nodes":1,"groups":[{"kind":"script","batchKey":"","nodes":1,"concurrency":0}]},{"nodes":3,"groups":[{"kind":"","batchKey":"tts","nodes":3,"concurrency":2}]}]}}`,
		`{"runId":"r","seq":1,"plan":null}`, `{"runId":"r","seq":1,"plan":{}}`, `{"runId":"r","seq":1,"plan":{"stages":null}}`,
		`{"runId":"r","seq":1,"plan":{"stages":[{},{"groups":[]},{"groups":[{}]}]}}`,
		`{"runId":"r","seq":1,"plan":{"STAGES":[{"NODES":-1,"groups":[{"KIND":"k","nodes":1e2}]}]}}`,
		`{"runId":"r","seq":1,"plan":[]}`, `{"runId":"r","seq":1,"plan":{"stages":[{"groups":{}}]}}`,
		`{"runId":"r","seq":1,"etaMs":-9223372036854775808}`,
		`{"runId":"r","seq":1,"stage":-1}`,
		`{"time":"0001-01-01T00:00:00Z"}`,
		`{"time":"9999-12-31T23:59:59.999999999-23:59"}`, `{"time":"0000-01-01T00:00:00+01:00"}`,
		`{"time":"not a time"}`,
		`{"message":"\ud800"}`,
		`null`, `[]`, `{}`, `{"seq":-1}`, `{"seq":1e3}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var e progress.Event
		if err := json.Unmarshal(data, &e); err != nil {
			var se *json.SyntaxError
			if !errors.Is(err, progress.ErrInvalidJSON) && !errors.As(err, &se) {
				t.Fatalf("Unmarshal(%q) = %v: want an error wrapping ErrInvalidJSON, or a syntax error", data, err)
			}
			return
		}
		out, err := json.Marshal(e)
		if err != nil {
			t.Fatalf("Marshal of %+v read from %q: %v", e, data, err)
		}
		var back progress.Event
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("Unmarshal(Marshal(e)) = %v; JSON %s", err, out)
		}
		if diff := gocmp.Diff(e, back); diff != "" {
			t.Fatalf("event read from %q does not survive a round trip (-read +again):\n%s\nJSON %s", data, diff, out)
		}
	})
}

// FuzzHistoryEvents reads a list of events from any JSON, as a reader
// takes them from outside, and appends them to a MemoryHistory one by
// one: an event is refused, with an error wrapping ErrInvalidEvent,
// exactly when it has no run ID or a Seq of 0, and each run's replay and
// last event are those of a model that keeps, for each Seq, the first
// event appended, in Seq order.
func FuzzHistoryEvents(f *testing.F) {
	for _, s := range []string{
		`[{"runId":"r1","seq":1,"type":"run.started"},{"runId":"r1","seq":3},{"runId":"r1","seq":2,"message":"m"}]`,
		`[{"runId":"r1","seq":2},{"runId":"r2","seq":1},{"runId":"r1","seq":2,"message":"again"},{"runId":"r1","seq":1}]`,
		`[{"runId":"","seq":1},{"runId":"r","seq":0},{"seq":5}]`,
		`[{"runId":"r","seq":18446744073709551615},{"runId":"r","seq":1,"time":"9999-12-31T23:59:59Z"}]`,
		`[]`, `null`, `[{}]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var events []progress.Event
		if json.Unmarshal(data, &events) != nil {
			return
		}
		ctx := t.Context()
		h := progress.NewMemoryHistory()
		model := map[string]map[uint64]progress.Event{}
		for _, e := range events {
			err := h.Append(ctx, e)
			if e.RunID == "" || e.Seq == 0 {
				if !errors.Is(err, progress.ErrInvalidEvent) {
					t.Fatalf("Append(%+v) = %v: want ErrInvalidEvent", e, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("Append(%+v): %v", e, err)
			}
			if model[e.RunID] == nil {
				model[e.RunID] = map[uint64]progress.Event{}
			}
			if _, ok := model[e.RunID][e.Seq]; !ok {
				model[e.RunID][e.Seq] = e
			}
		}
		for run, bySeq := range model {
			want := slices.SortedFunc(maps.Values(bySeq), func(a, b progress.Event) int { return cmp.Compare(a.Seq, b.Seq) })
			var got []progress.Event
			if err := h.Replay(ctx, run, 0, func(e progress.Event) error { got = append(got, e); return nil }); err != nil {
				t.Fatalf("Replay(%q): %v", run, err)
			}
			if diff := gocmp.Diff(want, got); diff != "" {
				t.Fatalf("Replay(%q) (-model +history):\n%s", run, diff)
			}
			last, ok, err := h.LastEvent(ctx, run)
			if err != nil || !ok || gocmp.Diff(want[len(want)-1], last) != "" {
				t.Fatalf("LastEvent(%q) = %+v, %v, %v; want %+v", run, last, ok, err, want[len(want)-1])
			}
			if h.Len(run) != len(want) {
				t.Fatalf("Len(%q) = %d, want %d", run, h.Len(run), len(want))
			}
		}
	})
}
