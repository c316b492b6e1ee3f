// Package errwriter keeps the first error of a writer, for the examples'
// commands, which write as they go and report a failed output (a full
// disk) once, at the end, by their exit status.
package errwriter

import (
	"io"
	"sync"
)

// Writer is a writer that keeps the first error of the writer it wraps,
// and writes nothing more once one failed. A short write without an
// error counts as io.ErrShortWrite. It is safe for concurrent use.
type Writer struct {
	mu  sync.Mutex
	w   io.Writer
	err error
}

// New returns a Writer that writes to w.
func New(w io.Writer) *Writer { return &Writer{w: w} }

// Write writes p to the wrapped writer, unless an earlier write failed:
// it then returns that error.
func (e *Writer) Write(p []byte) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	e.err = err
	return n, err
}

// Err returns the first write error, or nil.
func (e *Writer) Err() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.err
}

// Unwrap returns the wrapped writer, so that a caller can ask whether it
// is a terminal.
func (e *Writer) Unwrap() io.Writer { return e.w }
