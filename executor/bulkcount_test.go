package executor_test

import (
	"bytes"
	"context"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/progress"
)

// A bulk generator that returns another number of outcomes than its
// requests fails the whole call, and each node is retried alone: the run
// succeeded, but nothing said why every bulk call had turned into single
// calls. A warning now names the kind, the batch key and the counts.
func TestBulkCallWithAWrongNumberOfOutcomesIsLogged(t *testing.T) {
	for _, tc := range []struct {
		name  string
		extra int // outcomes beyond the requests
		outs  func(reqs []executor.Request) []executor.Outcome
	}{
		{"one too few", -1, func(reqs []executor.Request) []executor.Outcome { return okOutcomes(reqs)[:len(reqs)-1] }},
		{"one too many", 1, func(reqs []executor.Request) []executor.Outcome {
			return append(okOutcomes(reqs), executor.Outcome{})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, 30)
				var calls atomic.Int32
				b := &batchFunc{lab: l, fn: func(_ context.Context, reqs []executor.Request) []executor.Outcome {
					calls.Add(1)
					return tc.outs(reqs)
				}}
				reg := l.registry(l)
				reg[graph.KindImage] = b
				var buf bytes.Buffer
				e := l.executor(executor.Options{Generators: reg, Logger: slog.New(slog.NewTextHandler(&buf, nil))})
				rep, err := l.run(e)
				require.NoError(t, err)
				require.Positive(t, calls.Load())
				// Every image was retried alone, once.
				for _, id := range ids(l, graph.KindImage, 0, 1, 2) {
					assert.Equal(t, 1, l.callsOf(id), id)
				}
				assert.Len(t, rep.Generated, l.g.Len())
				l.requireAllClean()
				l.requireEventOrder(progress.RunFinished)

				var warnings []string
				for line := range strings.Lines(buf.String()) {
					if strings.Contains(line, "bulk generator returned") {
						warnings = append(warnings, line)
					}
				}
				require.Len(t, warnings, int(calls.Load()), "one warning a call:\n%s", buf.String())
				w := warnings[0]
				assert.Contains(t, w, "level=WARN")
				assert.Contains(t, w, "kind="+graph.KindImage)
				assert.Contains(t, w, "batch_key="+graph.KindImage)
				m := regexp.MustCompile(`requests=(\d+) outcomes=(\d+)`).FindStringSubmatch(w)
				require.NotNil(t, m, w)
				reqs, err := strconv.Atoi(m[1])
				require.NoError(t, err)
				outs, err := strconv.Atoi(m[2])
				require.NoError(t, err)
				assert.Positive(t, reqs)
				assert.Equal(t, reqs+tc.extra, outs)
			})
		})
	}
}
