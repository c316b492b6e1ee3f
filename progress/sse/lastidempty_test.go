package sse_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress/sinktest"
	"github.com/regengraph/regen/progress/sse"
)

// An empty element of a comma-joined Last-Event-ID header ("5,", a
// proxy's join of a header with nothing) is ignored, as HTTP says of an
// empty list element, and is no 0: since 3c0c2c6 it read as 0, the
// smallest, so the handler replayed the whole run to a client that had
// seen 5 events. A header that is empty, or holds empty elements alone,
// is 0 as an empty header always was.
func TestHandlerIgnoresEmptyLastEventIDElements(t *testing.T) {
	f := newFixture(t, sse.HandlerOptions{})
	f.publish(t, sinktest.Events("r1", 1, 10)...)
	for _, tc := range []struct {
		name string
		ids  []string
		want string
	}{
		{"trailing comma", []string{"5,"}, "id: 6"},
		{"leading comma", []string{",5"}, "id: 6"},
		{"empty between", []string{"7, ,5"}, "id: 6"},
		{"an empty header", []string{""}, "id: 1"},
		{"a comma alone", []string{","}, "id: 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openRaw(t, f.url("r1"), http.Header{"Last-Event-ID": tc.ids})
			require.Equal(t, http.StatusOK, s.resp.StatusCode)
			assert.Equal(t, tc.want, s.lines(t, 3)[2])
		})
	}
}
