package dirty_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
)

func TestReasonText(t *testing.T) {
	words := []string{"edited", "forced", "asset missing", "inputs changed", "last attempt failed",
		"interrupted", "cancelled", "marked dirty", "never generated", "upstream"}
	for i, w := range words {
		r := dirty.Reason(i + 1)
		b, err := r.MarshalText()
		require.NoError(t, err)
		assert.Equal(t, w, string(b))
		assert.Equal(t, r.String(), string(b))
		var back dirty.Reason
		require.NoError(t, back.UnmarshalText(b))
		assert.Equal(t, r, back)
	}
	for _, bad := range []dirty.Reason{0, 11, 255} {
		_, err := bad.MarshalText()
		assert.ErrorContains(t, err, "dirty: invalid reason", "%d", bad)
	}
	for _, bad := range []string{"", "Edited", "edited ", "asset-missing", "1"} {
		r := dirty.ReasonForced
		err := r.UnmarshalText([]byte(bad))
		require.Error(t, err, "%q", bad)
		assert.ErrorContains(t, err, "dirty: unknown reason")
		assert.ErrorContains(t, err, "want one of edited, forced, asset missing,")
		assert.Equal(t, dirty.ReasonForced, r, "unchanged on error")
	}

	// A mark keeps its reason's words in JSON, whatever the constants'
	// order, under lower camel case names as a State's.
	b, err := json.Marshal(dirty.Mark{ID: "script", Reason: dirty.ReasonEdited})
	require.NoError(t, err)
	assert.JSONEq(t, `{"id": "script", "reason": "edited"}`, string(b))
	var m dirty.Mark
	require.NoError(t, json.Unmarshal(b, &m))
	assert.Equal(t, dirty.Mark{ID: "script", Reason: dirty.ReasonEdited}, m)
	// The names' older spelling still reads.
	m = dirty.Mark{}
	require.NoError(t, json.Unmarshal([]byte(`{"ID": "script", "Reason": "forced"}`), &m))
	assert.Equal(t, dirty.Mark{ID: "script", Reason: dirty.ReasonForced}, m)
}

// FuzzText checks the text forms of Status and Reason: whatever parses
// prints back the same, and nothing panics.
func FuzzText(f *testing.F) {
	for _, s := range []string{"clean", "missing", "asset missing", "upstream", "", "Clean", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var st dirty.Status
		if st.UnmarshalText([]byte(s)) == nil {
			b, err := st.MarshalText()
			require.NoError(t, err)
			require.Equal(t, s, string(b))
		}
		var r dirty.Reason
		if r.UnmarshalText([]byte(s)) == nil {
			b, err := r.MarshalText()
			require.NoError(t, err)
			require.Equal(t, s, string(b))
		}
	})
}
