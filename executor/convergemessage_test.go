package executor_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/progress"
)

// A Converge round's message said "Round 2: 2 nodes changed during the
// run" when one node was edited: the count is of the nodes that the round
// remakes (the edited ones and what depends on them), not of those that
// changed. It now says what it counts.
func TestConvergeRoundMessageSaysWhatItCounts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 30)
		var e *executor.Executor
		gen := l.onceAt("asset:video:segment[0]", func() {
			_, err := e.Edit(context.Background(), l.g, "lecture", "asset:music")
			assert.NoError(t, err)
		})
		e = l.executor(executor.Options{Generators: l.registry(gen), Converge: 1})
		rep, err := l.run(e)
		require.NoError(t, err)
		require.Equal(t, 2, rep.Rounds)
		final := l.eventsOf(progress.RunFinished)
		require.Len(t, final, 1)
		remade := final[0].Total - l.g.Len() // the second round's plan
		require.Greater(t, remade, 1, "one node edited, and what depends on it")
		var round []string
		for _, ev := range l.eventsOf(progress.Message) {
			if strings.HasPrefix(ev.Message, "Round 2") {
				round = append(round, ev.Message)
			}
		}
		assert.Equal(t, []string{fmt.Sprintf("Round 2: %d nodes to remake after changes during the run", remade)}, round)
	})
}
