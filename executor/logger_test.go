package executor_test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/internal/testenv"
)

// Without Options.Logger, warnings go to slog's default logger (as those
// of progress.Buffered and progress/redisstream do), so that a misspelt
// kind name is not silently ignored; a discarding logger silences them.
func TestLoggerDefault(t *testing.T) {
	tests := []struct {
		name   string
		logger *slog.Logger
		want   bool
	}{
		{"nil is slog's default", nil, true},
		{"a discarding logger", slog.New(slog.DiscardHandler), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			buf := testenv.DefaultLog(t)
			g, err := graph.Build(graph.Lecture(), 30)
			require.NoError(t, err)
			e, err := executor.New(executor.Options{Generators: registryFor(g, noop), Logger: tt.logger,
				Kinds: map[string]executor.KindOptions{"asset:imgae": {}}})
			require.NoError(t, err)
			_, err = e.Run(context.Background(), executor.RunRequest{GraphKey: "k", Graph: g})
			require.NoError(t, err)
			require.NoError(t, e.Close(context.Background()))
			if tt.want {
				assert.Contains(t, buf.String(), "Options.Kinds names kinds the graph does not have")
				assert.Contains(t, buf.String(), "asset:imgae")
			} else {
				assert.Empty(t, buf.String())
			}
		})
	}
}
