package sse_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/sse"
)

// Tests from a fifth review: a new user embedding the library.

// TestReview5StatusErrorOneLine: a refusal that the handler writes with
// http.Error ends with a newline, which the client's error must not carry
// into the host's logs; a body with line breaks inside is quoted.
func TestReview5StatusErrorOneLine(t *testing.T) {
	h, err := sse.NewHandler(progress.NewMemory(progress.MemoryOptions{}), sse.HandlerOptions{
		Authorize: func(r *http.Request) (string, error) {
			return "", fmt.Errorf("%w: no run %q", sse.ErrNotFound, "r9")
		},
	})
	require.NoError(t, err)
	server := httptest.NewServer(h)
	defer server.Close()

	err = sse.NewClient(server.URL, sse.ClientOptions{}).Events(context.Background(), func(progress.Event) error { return nil })
	var se *sse.StatusError
	require.True(t, errors.As(err, &se), "%v", err)
	require.Equal(t, http.StatusNotFound, se.StatusCode)
	require.True(t, strings.HasSuffix(se.Body, "\n"), "the Body field keeps the body as sent")
	require.Equal(t, `sse: server answered 404 (text/plain; charset=utf-8): sse: not found: no run "r9"`, err.Error())

	multi := &sse.StatusError{StatusCode: 502, ContentType: "text/html", Body: "<html>\r\n<h1>Bad gateway</h1>\n</html>\n"}
	require.Equal(t, `sse: server answered 502 (text/html): "<html>\r\n<h1>Bad gateway</h1>\n</html>"`, multi.Error())
	require.NotContains(t, multi.Error(), "\n")
}
