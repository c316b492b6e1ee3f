package executor_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
)

// RunError.Failed listed the failed nodes in the order they failed,
// which depends on their providers' timing: two runs of one failure gave
// two texts of it (the run's record's Error, its final event's). It lists
// them by node, in graph order, whatever order they failed in.
func TestRunErrorListsFailuresInGraphOrder(t *testing.T) {
	for _, c := range []struct {
		name  string
		slow  string // fails 5 s into its call, after fast has failed
		fast  string
		first string // the first of the two in graph order
	}{
		{"later node fails first", "asset:image:segment[0]", "asset:image:segment[2]", "asset:image:segment[0]"},
		{"earlier node fails first", "asset:image:segment[2]", "asset:image:segment[0]", "asset:image:segment[0]"},
		{"across kinds", "asset:image:segment[1]", "asset:narration:segment[1]", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, 30)
				l.set(c.slow, func(context.Context, executor.Request) ([]byte, error) {
					time.Sleep(5 * time.Second)
					return nil, executor.Permanent(errors.New("refused"))
				})
				l.set(c.fast, fail(executor.Permanent(errors.New("refused"))))
				e := l.executor(executor.Options{})
				_, err := l.run(e)
				var re *executor.RunError
				require.ErrorAs(t, err, &re)
				require.Len(t, re.Failed, 2)
				got := []string{re.Failed[0].Node, re.Failed[1].Node}
				want := []string{c.slow, c.fast}
				if a, b := mustNode(t, l, c.slow), mustNode(t, l, c.fast); b < a {
					want = []string{c.fast, c.slow}
				}
				if c.first != "" {
					assert.Equal(t, c.first, want[0], "the case's own order")
				}
				assert.Equal(t, want, got, "in graph order")
			})
		})
	}
}

func mustNode(t *testing.T, l *lab, id string) int {
	t.Helper()
	n, err := l.g.Lookup(id)
	require.NoError(t, err)
	return int(n)
}
