package executor

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
)

// An error of the package that wraps another says "executor:" once when
// the other is the package's too, and keeps a host's text whole even
// when it starts with "executor: ".
func TestWrapSaysExecutorOnce(t *testing.T) {
	for _, tc := range []struct {
		name  string
		inner error
		want  string
	}{
		{"a sentinel", ErrGraphDeleted, "executor: run cancelled: run r1: graph deleted during the run"},
		{"a sentinel wrapped by the package", fmt.Errorf("%w: the key's graph is now abc", ErrGraphReplaced),
			"executor: run cancelled: run r1: graph replaced by a newer run: the key's graph is now abc"},
		{"the cause of the stores' bound", fmt.Errorf("%w within Options.StoreTimeout (5s) of the cancel of run r1", errStoresLate),
			"executor: run cancelled: run r1: the stores did not answer within Options.StoreTimeout (5s) of the cancel of run r1"},
		{"a host's error", errors.New("executor: lock lost"), "executor: run cancelled: run r1: executor: lock lost"},
		{"a host's error that wraps a sentinel", fmt.Errorf("executor: host stopping: %w", ErrClosed),
			"executor: run cancelled: run r1: executor: host stopping: executor: closed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, wrap(ErrCancelled, "run r1", tc.inner, "").Error())
		})
	}
}
