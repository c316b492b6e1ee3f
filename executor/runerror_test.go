package executor_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/internal/testgraph"
	"github.com/regengraph/regen/progress"
)

// TestRunErrorTextIsBounded checks that a RunError's text lists at most
// ten failures, each cut at 1,000 bytes on a rune boundary, and counts
// the others, while its Failed and Unwrap keep them all.
func TestRunErrorTextIsBounded(t *testing.T) {
	long := strings.Repeat("é", 2000) // 4,000 bytes of two-byte runes
	for _, c := range []struct {
		failed    int
		lines     int
		more      string
		maxLength int
	}{
		{failed: 1, lines: 2},
		{failed: 10, lines: 11},
		{failed: 11, lines: 12, more: "... and 1 more"},
		{failed: 10_000, lines: 12, more: "... and 9990 more"},
	} {
		t.Run(fmt.Sprint(c.failed), func(t *testing.T) {
			re := &executor.RunError{RunID: "r1"}
			for i := range c.failed {
				err := errors.New("tts: 503")
				if i == 0 {
					err = errors.New(long)
				}
				re.Failed = append(re.Failed, &executor.NodeError{Node: fmt.Sprintf("ch:voice:segment[%d]", i), Attempt: 3, Err: err})
			}
			text := re.Error()
			lines := strings.Split(text, "\n")
			require.Len(t, lines, c.lines)
			assert.Equal(t, fmt.Sprintf(`executor: run failed: run "r1": %d node(s) failed`, c.failed), lines[0])
			assert.True(t, utf8.ValidString(text))
			assert.True(t, strings.HasPrefix(lines[1], "\tnode ch:voice:segment[0] (attempt 3): éé"), lines[1][:40])
			assert.True(t, strings.HasSuffix(lines[1], "é..."), "the long error is cut on a rune boundary")
			assert.LessOrEqual(t, len(lines[1]), 1+1000+len("..."))
			if c.failed > 1 {
				assert.Equal(t, "\tnode ch:voice:segment[1] (attempt 3): tts: 503", lines[2])
			}
			if c.more != "" {
				assert.Equal(t, "\t"+c.more, lines[len(lines)-1])
			}
			assert.Len(t, re.Unwrap(), 1+c.failed, "every failure is still wrapped")
		})
	}
}

// TestManyFailuresKeepTheFinalEventSmall runs a 1,000-chapter podcast
// whose voice provider is down: the run fails with the 1,000 voices, and
// its record's error and its final event list ten of them, not a line
// per node (which made the event of a long podcast larger than
// progress/sse's client reads, so a Go client never saw the run end).
func TestManyFailuresKeepTheFinalEventSmall(t *testing.T) {
	ctx := context.Background()
	g, err := graph.Build(testgraph.Podcast(), 10_000)
	require.NoError(t, err)
	s := newStudio()
	for i := range 1000 {
		s.fail[fmt.Sprintf("ch:voice:segment[%d]", i)] = errors.New("tts: 503 Service Unavailable: " + strings.Repeat("upstream connect error ", 20))
	}
	e := studioExecutor(t, g, s, executor.Options{})
	rep, err := e.Run(ctx, executor.RunRequest{GraphKey: "long-podcast", Graph: g})
	var re *executor.RunError
	require.ErrorAs(t, err, &re)
	assert.Len(t, re.Failed, 1000)
	assert.Len(t, rep.Failed, 1000)
	assert.Equal(t, 1000, rep.Record.Counts.Failed)
	evs, _ := s.take()
	final := evs[len(evs)-1]
	require.Equal(t, progress.RunFailed, final.Type)
	assert.Equal(t, rep.Record.Error, final.Error)
	assert.Less(t, len(final.Error), 8<<10, "the final event's error lists a few failures, not all")
	assert.True(t, strings.HasPrefix(final.Error, `executor: run failed: run "`+rep.Record.ID+`": 1000 node(s) failed`+"\n"), "%.200s", final.Error)
	assert.True(t, strings.HasSuffix(final.Error, "\n\t... and 990 more"), "%.200s", final.Error)
	b, err := final.MarshalJSON()
	require.NoError(t, err)
	assert.Less(t, len(b), 16<<10)
}
