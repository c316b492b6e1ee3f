package executor_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/progress"
)

// A sink that fails is logged when it starts failing, once a minute while
// it goes on, when it recovers and at the run's end, each time with the
// count of events lost: not once an event, which floods a host's log with
// a line for each of thousands of events a run.
func TestFailingSinkIsLoggedWithoutFlooding(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 120) // about 2 min 10 s in all
		start := time.Now()
		var mu sync.Mutex
		var lost, sent int
		sink := progress.SinkFunc(func(_ context.Context, evs ...progress.Event) error {
			mu.Lock()
			defer mu.Unlock()
			if time.Since(start) < 90*time.Second { // down for the first 90 s
				lost += len(evs)
				return errors.New("sink down")
			}
			sent += len(evs)
			return nil
		})
		var buf bytes.Buffer
		e, err := executor.New(executor.Options{Generators: l.registry(l), States: l.states, Assets: l.assets,
			Runs: l.runs, Sink: sink, Logger: slog.New(slog.NewTextHandler(&buf, nil))})
		require.NoError(t, err)
		defer e.Close(context.Background())
		rep, err := l.run(e)
		require.NoError(t, err, "a failing sink never fails the run")
		mu.Lock()
		defer mu.Unlock()
		require.Greater(t, lost, 50)
		require.Positive(t, sent)
		out := buf.String()
		assert.Equal(t, 1, strings.Count(out, "progress sink failed;"), out)
		assert.Contains(t, out, `err="sink down"`)
		assert.Equal(t, 1, strings.Count(out, "progress sink still failing"), "one more warning a minute later:\n%s", out)
		assert.Equal(t, 1, strings.Count(out, "progress sink recovered"), out)
		assert.Contains(t, out, fmt.Sprintf("progress sink recovered\" run=%s", rep.Record.ID))
		assert.Contains(t, out, fmt.Sprintf("lost=%d", lost))
		assert.Equal(t, 1, strings.Count(out, "progress sink lost events of the run"), out)
		assert.Equal(t, 4, strings.Count(out, "\n"), "four lines in all:\n%s", out)
	})
}
