package dirty_test

import (
	"encoding/json"
	"strings"
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
// prints back the same; anything else is a *NameError wrapping
// ErrUnknownName that names it, in one line of bounded length, and leaves
// the value as it was; nothing panics.
func FuzzText(f *testing.F) {
	for _, s := range []string{"clean", "missing", "asset missing", "upstream", "", "Clean", "\x00", strings.Repeat("x", 5000), "a\nb"} {
		f.Add(s)
	}
	refused := func(t *testing.T, of, s string, err error) {
		t.Helper()
		var ne *dirty.NameError
		require.ErrorAs(t, err, &ne, "%s %q", of, s)
		require.ErrorIs(t, err, dirty.ErrUnknownName)
		require.Equal(t, of, ne.Of)
		require.Equal(t, s, ne.Name)
		msg := err.Error()
		require.NotContains(t, msg, "\n", "%s %q", of, s)
		require.LessOrEqual(t, len(msg), 512, "%s %q: %.300s", of, s, msg)
	}
	f.Fuzz(func(t *testing.T, s string) {
		st := dirty.StatusRunning
		if err := st.UnmarshalText([]byte(s)); err != nil {
			refused(t, "status", s, err)
			require.Equal(t, dirty.StatusRunning, st, "status after an error")
		} else {
			b, err := st.MarshalText()
			require.NoError(t, err)
			require.Equal(t, s, string(b))
		}
		r := dirty.ReasonForced
		if err := r.UnmarshalText([]byte(s)); err != nil {
			refused(t, "reason", s, err)
			require.Equal(t, dirty.ReasonForced, r, "reason after an error")
		} else {
			b, err := r.MarshalText()
			require.NoError(t, err)
			require.Equal(t, s, string(b))
		}
	})
}
