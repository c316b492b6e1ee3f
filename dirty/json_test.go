package dirty_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
)

// TestMarkAndStateJSONAreStrict: a Mark or a State read from JSON took
// keys in any case, kept the last of repeated keys and ignored unknown
// fields, so that a typo ("reasn") or a repeat changed what was read,
// silently. Like planner.Plan and graph.ParseTemplate, they now refuse
// them, and trailing data, with a *dirty.JSONError that says what is
// allowed; an unknown status or reason is a *dirty.NameError within it.
// The documented forms still read, a Mark's older {"ID", "Reason"} too.
func TestMarkAndStateJSONAreStrict(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     dirty.Mark
		err      string // "" for none
		unknown  bool   // the error is an unknown reason
	}{
		{name: "the form", in: `{"id": "script", "reason": "edited"}`, want: dirty.Mark{ID: "script", Reason: dirty.ReasonEdited}},
		{name: "the older form", in: `{"ID": "script", "Reason": "forced"}`, want: dirty.Mark{ID: "script", Reason: dirty.ReasonForced}},
		{name: "the two forms mixed", in: `{"ID": "script", "reason": "forced"}`, want: dirty.Mark{ID: "script", Reason: dirty.ReasonForced}},
		{name: "keys left out", in: `{}`, want: dirty.Mark{}},
		{name: "space around", in: " \n{\"id\": \"script\", \"reason\": \"edited\"}\t", want: dirty.Mark{ID: "script", Reason: dirty.ReasonEdited}},
		{name: "unknown field", in: `{"id": "script", "reasn": "edited"}`,
			err: `dirty: invalid JSON: Mark: unknown field "reasn"; allowed fields: ID, Reason, id, reason`},
		{name: "another case", in: `{"Id": "script", "reason": "edited"}`,
			err: `dirty: invalid JSON: Mark: key "Id" does not match "ID": names are case-sensitive`},
		{name: "repeated key", in: `{"id": "script", "reason": "edited", "reason": "forced"}`,
			err: `dirty: invalid JSON: Mark: key "reason" appears twice in one object; give each field once`},
		{name: "both spellings of id", in: `{"id": "script", "ID": "timeline", "reason": "edited"}`,
			err: `dirty: invalid JSON: Mark: keys "id" and "ID" are the same field: give it once, as "id"`},
		{name: "both spellings of reason", in: `{"id": "script", "Reason": "forced", "reason": "edited"}`,
			err: `dirty: invalid JSON: Mark: keys "reason" and "Reason" are the same field: give it once, as "reason"`},
		{name: "trailing data", in: `{"id": "script", "reason": "edited"} {}`,
			err: `dirty: invalid JSON: Mark: data after the object: want one JSON object, {"id": "<node ID>", "reason": "<reason>"}`},
		{name: "unknown reason", in: `{"id": "script", "reason": "Edited"}`, unknown: true,
			err: `dirty: invalid JSON: Mark: dirty: unknown reason "Edited": want one of edited, forced, asset missing, inputs changed, last attempt failed, interrupted, cancelled, marked dirty, never generated, upstream`},
		{name: "an array", in: `[]`, err: `dirty: invalid JSON: Mark: an array: want an object, {"id": "<node ID>", "reason": "<reason>"}`},
		{name: "a string", in: `"edited"`, err: `dirty: invalid JSON: Mark: a string: want an object`},
		{name: "empty", in: ``, err: `dirty: invalid JSON: Mark: no JSON value`},
		{name: "a number for the id", in: `{"id": 7}`, err: `dirty: invalid JSON: Mark: json: cannot unmarshal number into Go struct field`},
	} {
		t.Run("Mark/"+tc.name, func(t *testing.T) {
			was := dirty.Mark{ID: "was", Reason: dirty.ReasonAssetMissing}
			m := was
			err := m.UnmarshalJSON([]byte(tc.in))
			if tc.err == "" {
				require.NoError(t, err)
				assert.Equal(t, tc.want, m)
				return
			}
			var je *dirty.JSONError
			require.ErrorAs(t, err, &je)
			assert.ErrorIs(t, err, dirty.ErrInvalidJSON)
			assert.Contains(t, err.Error(), tc.err)
			assert.Equal(t, tc.unknown, errors.Is(err, dirty.ErrUnknownName), "ErrUnknownName")
			assert.Equal(t, was, m, "unchanged on error")
			if tc.name != "trailing data" && tc.name != "empty" {
				// Through encoding/json, as a field of a host's request.
				var req struct{ Marks []dirty.Mark }
				err := json.Unmarshal([]byte(`{"Marks": [`+tc.in+`]}`), &req)
				assert.ErrorIs(t, err, dirty.ErrInvalidJSON, "in a request")
			}
		})
	}

	for _, tc := range []struct {
		name, in string
		err      string
		unknown  bool
	}{
		{name: "another case", in: `{"Status": "running", "rev": 3}`,
			err: `dirty: invalid JSON: State: key "Status" does not match "status": names are case-sensitive`},
		{name: "another case of rev", in: `{"status": "running", "REV": 3}`,
			err: `dirty: invalid JSON: State: key "REV" does not match "rev"`},
		{name: "unknown field", in: `{"status": "clean", "outputhash": "h", "output": "x"}`,
			err: `dirty: invalid JSON: State: key "outputhash" does not match "outputHash"`},
		{name: "unknown field named", in: `{"status": "clean", "assets": "x"}`,
			err: `dirty: invalid JSON: State: unknown field "assets"; allowed fields: assetRef, attempts, inputHash, lastError, outputHash, rev, status, updatedAt`},
		{name: "repeated key", in: `{"status": "clean", "rev": 1, "status": "dirty"}`,
			err: `dirty: invalid JSON: State: key "status" appears twice in one object; give each field once`},
		{name: "trailing data", in: `{"status": "clean"}]`, err: `dirty: invalid JSON: State: data after the object`},
		{name: "unknown status", in: `{"status": "gone"}`, unknown: true,
			err: `dirty: invalid JSON: State: dirty: unknown status "gone": want missing, clean, dirty, running, failed or cancelled`},
		{name: "a number for the status", in: `{"status": 1}`, err: `dirty: invalid JSON: State: json: cannot unmarshal number`},
		{name: "a bad time", in: `{"updatedAt": "yesterday"}`, err: `dirty: invalid JSON: State: parsing time "yesterday"`},
		{name: "null", in: `null`},
	} {
		t.Run("State/"+tc.name, func(t *testing.T) {
			was := dirty.State{Status: dirty.StatusFailed, Rev: 2, LastError: "e"}
			s := was
			err := s.UnmarshalJSON([]byte(tc.in))
			if tc.err == "" {
				require.NoError(t, err)
				assert.Equal(t, was, s, "null leaves the state")
				return
			}
			var je *dirty.JSONError
			require.ErrorAs(t, err, &je)
			assert.ErrorIs(t, err, dirty.ErrInvalidJSON)
			assert.Contains(t, err.Error(), tc.err)
			assert.Equal(t, tc.unknown, errors.Is(err, dirty.ErrUnknownName), "ErrUnknownName")
			assert.Equal(t, was, s, "unchanged on error")
		})
	}
}

// TestLongLiteralsInJSONErrors: a literal of a megabyte in the wrong
// place (a number too large, an unknown key, a status, a reason, a time)
// is named by its first bytes and its length, not whole: the messages of
// Status and Reason's UnmarshalText, encoding/json's type error and the
// time's parse error each quoted all of it.
func TestLongLiteralsInJSONErrors(t *testing.T) {
	long, digits := strings.Repeat("k", 1<<20), strings.Repeat("9", 1<<20)
	var st dirty.Status
	var r dirty.Reason
	for name, err := range map[string]error{
		"Status.UnmarshalText": st.UnmarshalText([]byte(long)),
		"Reason.UnmarshalText": r.UnmarshalText([]byte(long)),
		"State status":         new(dirty.State).UnmarshalJSON([]byte(`{"status":"` + long + `"}`)),
		"State rev":            new(dirty.State).UnmarshalJSON([]byte(`{"rev":` + digits + `}`)),
		"State attempts":       new(dirty.State).UnmarshalJSON([]byte(`{"attempts":-` + digits + `.5}`)),
		"State updatedAt":      new(dirty.State).UnmarshalJSON([]byte(`{"updatedAt":"` + long + `"}`)),
		"State key":            new(dirty.State).UnmarshalJSON([]byte(`{"` + long + `":1}`)),
		"Mark reason":          new(dirty.Mark).UnmarshalJSON([]byte(`{"reason":"` + long + `"}`)),
		"Mark key":             new(dirty.Mark).UnmarshalJSON([]byte(`{"ID` + long + `":1}`)),
	} {
		t.Run(name, func(t *testing.T) {
			require.Error(t, err)
			assert.Less(t, len(err.Error()), 1000, "%.300s", err)
			assert.Regexp(t, `… \(\d+ bytes\)`, err.Error())
		})
	}
}
