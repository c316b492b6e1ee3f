package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// lectureKey refuses "." and "..", with the 400 of any other bad key:
// clients normalise them out of URLs (/lectures/../runs is /runs), so a
// lecture of that key could be made with a raw request but not reached
// by a browser's fetch or curl again. Keys that merely hold dots pass.
func TestLectureKeyRefusesDotSegments(t *testing.T) {
	for _, tc := range []struct {
		key string
		ok  bool
	}{
		{".", false},
		{"..", false},
		{"", false},
		{"a b", false},
		{strings.Repeat("a", maxKey+1), false},
		{"...", true},
		{".a", true},
		{"a..b", true},
		{"v1.2", true},
		{strings.Repeat("a", maxKey), true},
	} {
		r := httptest.NewRequest("GET", "/lectures/x/runs", nil)
		r.SetPathValue("key", tc.key)
		w := httptest.NewRecorder()
		got, ok := lectureKey(w, r)
		if !assert.Equal(t, tc.ok, ok, "lectureKey(%q)", tc.key) {
			continue
		}
		if tc.ok {
			assert.Equal(t, tc.key, got)
			continue
		}
		assert.Equal(t, http.StatusBadRequest, w.Code, "lectureKey(%q)", tc.key)
		var body map[string]string
		require.NoError(t, json.Unmarshal(w.Body.Bytes(), &body))
		assert.Contains(t, body["error"], "lecture key", "lectureKey(%q)", tc.key)
		assert.Contains(t, body["error"], `not "." nor ".."`, "lectureKey(%q): the error says what is allowed", tc.key)
	}
}
