package schedule_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor/schedule"
	"github.com/regengraph/regen/graph"
)

// TestRateStartsJSON: RateStarts, which a driver keeps between rounds
// (a workflow's input when it continues as new), has a JSON form of
// lowercase members, as the snapshot's "rates" entries, with times in
// RFC 3339 in UTC, and reads it strictly: a misspelt or unknown member
// ({"kee": …}, which encoding/json read as an entry of the empty key,
// whose quota Inherit then dropped), a member of another type, a
// missing or empty key, a time that is not one, or null are refused with
// a *RateStartsError that says what is allowed.
func TestRateStartsJSON(t *testing.T) {
	in := []schedule.RateStarts{
		{Key: graph.KindImage, Starts: []time.Time{t0, t0.Add(1500 * time.Millisecond)}},
		{Key: "tts", Starts: []time.Time{t0.In(time.FixedZone("x", 3600))}},
	}
	b, err := json.Marshal(in)
	require.NoError(t, err)
	assert.Equal(t, `[{"key":"asset:image","starts":["2025-01-01T00:00:00Z","2025-01-01T00:00:01.5Z"]},{"key":"tts","starts":["2025-01-01T00:00:00Z"]}]`, string(b))
	var back []schedule.RateStarts
	require.NoError(t, json.Unmarshal(b, &back))
	require.Len(t, back, 2)
	assert.Equal(t, in[0], back[0])
	assert.True(t, in[1].Starts[0].Equal(back[1].Starts[0]))
	b, err = json.Marshal(schedule.RateStarts{Key: "k"})
	require.NoError(t, err)
	assert.Equal(t, `{"key":"k","starts":[]}`, string(b), "no starts is [], never null")

	// The form of the rate starts that a machine returns.
	p := lecturePlan(t, 40, "asset:image:segment[2]")
	rates := schedule.Config{Rates: map[string]schedule.Rate{graph.KindImage: {Starts: 2, Per: 10 * time.Second}}}
	m := newMachine(t, p, rates)
	drain(m, p.Graph, t0)
	b, err = json.Marshal(m.RateStarts(t0))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &back))
	assert.Equal(t, m.RateStarts(t0), back)

	for _, tc := range []struct{ name, in, want string }{
		{"an unknown member", `{"kee":"tts","starts":[]}`, `unknown field "kee"; allowed fields: key, starts`},
		{"a member in another case", `{"Key":"tts","starts":[]}`, `"Key"`},
		{"a member twice", `{"key":"tts","key":"llm","starts":[]}`, `"key"`},
		{"one Go field name", `{"Key":"tts","starts":["2025-01-01T00:00:00Z"]}`, `"Key"`},
		{"the Go field names and another", `{"Key":"tts","Starts":[],"Per":1}`, `"Key"`},
		{"the Go field names, a null key", `{"Key":null,"Starts":[]}`, `missing "Key": want a string`},
		{"the older form without Starts", `{"Key":"tts"}`, `missing "Starts": want a list of times`},
		{"the older form without Key", `{"Starts":null}`, `missing "Key": want a string`},
		{"no key", `{"starts":["2025-01-01T00:00:00Z"]}`, `missing "key": want a string, the batch key`},
		{"an empty key", `{"key":"","starts":[]}`, `key "": want a batch key, not the empty string`},
		{"a null key", `{"key":null,"starts":[]}`, `missing "key": want a string, the batch key`},
		{"a key of another type", `{"key":3,"starts":[]}`, `key: want a string, the batch key, not the number 3`},
		{"no starts", `{"key":"tts"}`, `missing "starts": want a list of times in strings, such as ["2025-01-01T00:00:01Z"], [] for none`},
		{"starts of another type", `{"key":"tts","starts":"2025-01-01T00:00:00Z"}`, `starts: want a list of times in strings, such as ["2025-01-01T00:00:01Z"], not "2025-01-01T00:00:00Z"`},
		{"a null start", `{"key":"tts","starts":[null]}`, `starts[0] is null: want a time in a string, such as "2025-01-01T00:00:01Z"`},
		{"a start that is no time", `{"key":"tts","starts":["2025-01-01T00:00:00Z","yesterday"]}`, `starts[1]: want a time in a string, such as "2025-01-01T00:00:01Z", not "yesterday"`},
		{"a start of another type", `{"key":"tts","starts":[1]}`, `starts[0]: want a time in a string, such as "2025-01-01T00:00:01Z", not the number 1`},
		{"null", `null`, `null: want an object such as {"key": "asset:image", "starts": ["2025-01-01T00:00:01Z"]}`},
		{"not an object", `[1]`, `want an object such as {"key": "asset:image", "starts": ["2025-01-01T00:00:01Z"]}, not an array`},
		{"data after it", `{"key":"tts","starts":[]} {}`, `data after`}, // the list's syntax error
		{"not JSON", `{"key":`, `bad JSON`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := schedule.RateStarts{Key: "kept", Starts: []time.Time{t0}}
			err := rs.UnmarshalJSON([]byte(tc.in))
			requireRateStartsError(t, err, tc.want)
			assert.Equal(t, schedule.RateStarts{Key: "kept", Starts: []time.Time{t0}}, rs, "a refused form changes nothing")
			if tc.name == "data after it" || tc.name == "not JSON" {
				return // a syntax error of the list
			}
			var list []schedule.RateStarts
			requireRateStartsError(t, json.Unmarshal([]byte("["+tc.in+"]"), &list), tc.want)
		})
	}
	t.Run("a time outside the years 0 to 9999", func(t *testing.T) {
		_, err := json.Marshal(schedule.RateStarts{Key: "k", Starts: []time.Time{time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}})
		require.Error(t, err)
	})
}

func requireRateStartsError(t *testing.T, err error, want string) {
	t.Helper()
	require.ErrorIs(t, err, schedule.ErrInvalidRateStarts)
	var re *schedule.RateStartsError
	require.True(t, errors.As(err, &re), "a *RateStartsError: %v", err)
	require.ErrorContains(t, err, want)
	require.NotRegexp(t, `Form|Go (struct|value)|time\.Time`, err.Error(), "a message in the package's words, not its Go types")
	require.LessOrEqual(t, len(err.Error()), 400, "a long input makes a long message: %v", err)
}

// FuzzRateStartsJSON reads RateStarts from the fuzzer's bytes: reading
// never panics, and refuses with a *RateStartsError; what it accepts
// writes back to bytes that read again to the same bytes.
// go test -fuzz FuzzRateStartsJSON ./executor/schedule/
func FuzzRateStartsJSON(f *testing.F) {
	f.Add([]byte(`{"key":"asset:image","starts":["2025-01-01T00:00:00Z","2025-01-01T00:00:01.5+01:00"]}`))
	f.Add([]byte(`{"key":"tts","starts":[]}`))
	f.Add([]byte(`{"kee":"tts","starts":[null]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var rs schedule.RateStarts
		if err := rs.UnmarshalJSON(data); err != nil {
			var re *schedule.RateStartsError
			require.True(t, errors.As(err, &re), "not a *RateStartsError: %v", err)
			require.ErrorIs(t, err, schedule.ErrInvalidRateStarts)
			return
		}
		b, err := rs.MarshalJSON()
		require.NoError(t, err)
		var again schedule.RateStarts
		require.NoError(t, again.UnmarshalJSON(b), "reading back %s", b)
		b2, err := again.MarshalJSON()
		require.NoError(t, err)
		require.Equal(t, string(b), string(b2), "the round trip")
	})
}

// Rate starts that a release before RateStarts had a JSON form wrote
// (encoding/json's form, up to 607cc88: the Go field names, Starts null
// for none, times in the driver's zone) still read after an upgrade, the
// same instants in UTC, so that a driver's kept quota carries over; the
// strict form's rules hold for all else. They were refused ("key \"Key\"
// does not match \"key\""), the quota lost at the first round after the
// upgrade (an upgrade trial).
func TestRateStartsJSONReadsTheOlderForm(t *testing.T) {
	old := `[{"Key":"asset:image","Starts":["2025-01-01T02:00:00+02:00","2025-01-01T00:00:01.5Z"]},{"Key":"tts","Starts":null}]`
	var got []schedule.RateStarts
	require.NoError(t, json.Unmarshal([]byte(old), &got))
	want := []schedule.RateStarts{
		{Key: "asset:image", Starts: []time.Time{time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2025, 1, 1, 0, 0, 1, 500_000_000, time.UTC)}},
		{Key: "tts", Starts: []time.Time{}},
	}
	assert.Equal(t, want, got)
	b, err := json.Marshal(got)
	require.NoError(t, err)
	assert.Equal(t, `[{"key":"asset:image","starts":["2025-01-01T00:00:00Z","2025-01-01T00:00:01.5Z"]},{"key":"tts","starts":[]}]`, string(b))
}
