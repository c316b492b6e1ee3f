package schedule_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor/schedule"
	"github.com/regengraph/regen/graph"
)

// TestConfigCheck: New takes a rate, a cap, a window or a group of
// shared kinds that no kind of the plan has (a Config serves many
// plans, and a rate of a key the plan has not carries inherited
// starts), so that a misspelt key ("tss") limits nothing without a
// word. Config.Check, at a driver's start-up, checks the Config against
// the templates of the graphs it runs: each key must be a batch key of
// one of them, each kind of a window or a group a kind of one with a
// batch key; it returns a *ConfigError that names the field, the
// unknown names and the names allowed.
func TestConfigCheck(t *testing.T) {
	podcast := graph.Template{Kinds: []graph.Kind{
		{Name: "script"},
		{Name: "voice", PerSegment: true, Deps: []graph.Dep{{Kind: "script", Scope: graph.ScopeGlobal}}, BatchKey: "tts", Concurrency: 2},
	}}
	lecture := graph.Lecture()
	sec := time.Second
	good := schedule.Config{
		Rates:   map[string]schedule.Rate{"tts": {Starts: 3, Per: time.Minute}, graph.KindImage: {Starts: 1, Per: sec}},
		Caps:    map[string]int{graph.KindVideo: 1},
		Windows: map[string]time.Duration{"voice": sec, graph.KindVideo: sec},
		Shared:  [][]string{{graph.KindImage, graph.KindVideo}},
	}
	require.NoError(t, good.Check(lecture, podcast), "a key that one template uses is known")
	require.NoError(t, schedule.Config{}.Check(lecture))
	allowedKeys := `"asset:image", "asset:narration", "asset:video"`
	for _, tc := range []struct {
		name, field, want string
		cfg               schedule.Config
	}{
		{"a misspelt rate", "Rates", `rates for batch keys "tss", "zz": no kind of the templates has them (a rate of a key no kind has limits nothing): want batch keys of the templates, "asset:image", "asset:narration", "asset:video", "tts"`,
			schedule.Config{Rates: map[string]schedule.Rate{"tss": {Starts: 1, Per: sec}, "tts": {Starts: 1, Per: sec}, "zz": {Starts: 1, Per: sec}}}},
		{"a misspelt cap", "Caps", `a cap for batch key "asset:imag": no kind of the templates has it`,
			schedule.Config{Caps: map[string]int{"asset:imag": 1}}},
		{"a window of no kind", "Windows", `a window for kind "voice": no kind of the templates has it, or it has no batch key (a window holds back a bulk call of a batch key): want kinds with a batch key, "asset:image", "asset:narration", "asset:video"`,
			schedule.Config{Windows: map[string]time.Duration{"voice": sec}}},
		{"a window of a kind without a batch key", "Windows", `a window for kind "timeline": no kind of the templates has it, or it has no batch key`,
			schedule.Config{Windows: map[string]time.Duration{graph.KindTimeline: sec}}},
		{"a shared kind without a batch key", "Shared", `kind "script" in a group of Shared: no kind of the templates has it, or it has no batch key`,
			schedule.Config{Shared: [][]string{{graph.KindScript, graph.KindImage}}}},
		{"the Config itself first", "Workers", `workers -1`,
			schedule.Config{Workers: -1, Rates: map[string]schedule.Rate{"tss": {Starts: 1, Per: sec}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Check(lecture, podcast)
			if tc.field == "Windows" || tc.field == "Shared" || tc.field == "Caps" {
				err = tc.cfg.Check(lecture)
			}
			requireConfigError(t, err, tc.field, tc.want)
			if tc.field == "Caps" {
				require.ErrorContains(t, err, allowedKeys)
			}
			_, err = schedule.New(lecturePlan(t, 20), tc.cfg)
			if tc.field != "Workers" {
				require.NoError(t, err, "New still takes it: a Config serves many plans")
			}
		})
	}
	t.Run("many names are cut", func(t *testing.T) {
		c := schedule.Config{Rates: map[string]schedule.Rate{}}
		for k := range 40 {
			c.Rates[strings.Repeat("x", k+1)] = schedule.Rate{Starts: 1, Per: sec}
		}
		err := c.Check(lecture)
		requireConfigError(t, err, "Rates", "and 32 more")
	})
	t.Run("a bad template", func(t *testing.T) {
		err := good.Check(graph.Template{Kinds: []graph.Kind{{Name: "a", Deps: []graph.Dep{{Kind: "b", Scope: graph.ScopeGlobal}}}}})
		require.ErrorIs(t, err, graph.ErrInvalidTemplate)
		require.ErrorContains(t, err, "template 1 of 1")
	})
	t.Run("no template", func(t *testing.T) {
		err := good.Check()
		require.ErrorIs(t, err, schedule.ErrInvalidConfig)
		require.ErrorContains(t, err, "no template")
	})
}
