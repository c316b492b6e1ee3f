package executor_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
)

// KindOptions.BatchWindow applies in Dataflow mode only: in Staged mode
// a stage's nodes are ready at once, and no call waits. An executor made
// with both said nothing, and a host that set a window on a Staged
// executor thought its calls were waiting. New now warns once, naming
// the kinds whose window applies to nothing (Options.Default for its
// own).
func TestBatchWindowInStagedModeIsLogged(t *testing.T) {
	window := executor.KindOptions{BatchWindow: time.Second}
	for _, tc := range []struct {
		name  string
		mode  executor.Mode
		kinds map[string]executor.KindOptions
		def   executor.KindOptions
		want  string // the warning's kinds, "" for no warning
	}{
		{name: "Staged, a kind's window", mode: executor.Staged,
			kinds: map[string]executor.KindOptions{graph.KindImage: window, graph.KindVideo: {}},
			want:  `kinds=[asset:image]`},
		{name: "Staged, Default's window", mode: executor.Staged, def: window,
			kinds: map[string]executor.KindOptions{graph.KindImage: window},
			want:  `kinds="[Options.Default asset:image]"`},
		{name: "Staged, no window", mode: executor.Staged,
			kinds: map[string]executor.KindOptions{graph.KindImage: {Timeout: time.Minute}}},
		{name: "Dataflow, a window", mode: executor.Dataflow,
			kinds: map[string]executor.KindOptions{graph.KindImage: window}, def: window},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, err := graph.Build(graph.Lecture(), 30)
			require.NoError(t, err)
			var buf bytes.Buffer
			_, err = executor.New(executor.Options{Generators: registryFor(g, noop), Mode: tc.mode,
				Kinds: tc.kinds, Default: tc.def, Logger: slog.New(slog.NewTextHandler(&buf, nil))})
			require.NoError(t, err)
			if tc.want == "" {
				assert.Empty(t, buf.String())
				return
			}
			lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
			require.Len(t, lines, 1, buf.String())
			assert.Contains(t, lines[0], "level=WARN")
			assert.Contains(t, lines[0], "BatchWindow")
			assert.Contains(t, lines[0], "Staged")
			assert.Contains(t, lines[0], tc.want)
		})
	}
}
