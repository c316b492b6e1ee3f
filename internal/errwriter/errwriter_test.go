package errwriter_test

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/internal/errwriter"
)

// failAfter accepts n writes, then fails every one; short makes its
// writes short, without an error.
type failAfter struct {
	n     int
	short bool
	buf   bytes.Buffer
}

var errFull = errors.New("no space left on device")

func (f *failAfter) Write(p []byte) (int, error) {
	if f.n == 0 {
		return 0, errFull
	}
	f.n--
	if f.short {
		return f.buf.Write(p[:len(p)/2])
	}
	return f.buf.Write(p)
}

func TestWriterKeepsTheFirstError(t *testing.T) {
	tests := []struct {
		name    string
		w       *failAfter
		want    error
		written string
	}{
		{name: "all written", w: &failAfter{n: 3}, written: "abcdef"},
		{name: "fails at the second", w: &failAfter{n: 1}, want: errFull, written: "ab"},
		{name: "short write", w: &failAfter{n: 3, short: true}, want: io.ErrShortWrite, written: "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := errwriter.New(tt.w)
			for _, s := range []string{"ab", "cd", "ef"} {
				_, _ = w.Write([]byte(s))
			}
			require.ErrorIs(t, w.Err(), tt.want)
			if tt.want == nil {
				require.NoError(t, w.Err())
			}
			assert.Equal(t, tt.written, tt.w.buf.String(), "nothing is written after the first error")
			assert.Same(t, tt.w, w.Unwrap())
		})
	}
}
