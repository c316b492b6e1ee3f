package main

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// An edit whose params held a string that is not valid UTF-8 (encoding/json
// takes such bytes in a json.RawMessage as they are, and json.Compact
// keeps them) was saved all the same, a write that Postgres refused
// (SQLSTATE 22021, as its text column holds UTF-8 only): the edit was
// answered 500, logged as an error, where its input was bad. It is
// answered 400 now, nothing saved, as other bad params are.
func TestEditWithParamsNotUTF8IsRefused(t *testing.T) {
	h := startService(t, time.Millisecond)
	var run started
	require.Equal(t, http.StatusAccepted, h.do("POST", "/lectures/l/runs", `{"seconds": 10}`, &run))
	h.follow(run.RunID, "")
	for _, body := range []string{
		"{\"node\": \"script\", \"params\": {\"text\": \"caf\xe9\"}}",
		"{\"node\": \"script\", \"params\": {\"t\xff\": \"x\"}}",
	} {
		var e map[string]string
		assert.Equal(t, http.StatusBadRequest, h.do("POST", "/lectures/l/edits", body, &e), "%q", body)
		assert.Contains(t, e["error"], "UTF-8", "%q", body)
	}
	params, err := h.s.params.get(t.Context(), "l", "script")
	require.NoError(t, err)
	assert.JSONEq(t, `{}`, string(params), "nothing saved")
	require.NoError(t, h.shutdown())
	goleak.VerifyNone(t, h.leaks)
}
