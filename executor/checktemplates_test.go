package executor_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
)

// A host's misspelt name in Options (a Rates key, a Kinds name) showed
// only as a warning in the log of every run, and a kind without a
// generator only at the first run of that kind (an embedder's trial):
// CheckTemplates checks Options against the host's templates at start-up.
func TestCheckTemplates(t *testing.T) {
	lecture := graph.Lecture()
	podcast := graph.Template{Kinds: []graph.Kind{
		{Name: "brief"},
		{Name: "chapter:voice", PerSegment: true, Deps: []graph.Dep{{Kind: "brief", Scope: graph.ScopeGlobal}}, BatchKey: "tts", Concurrency: 4},
	}}
	all := executor.Registry{}
	for _, k := range append(lecture.Kinds, podcast.Kinds...) {
		all[k.Name] = noop
	}
	without := func(name string) executor.Registry {
		r := executor.Registry{}
		for k, g := range all {
			if k != name {
				r[k] = g
			}
		}
		return r
	}
	bulk := executor.Registry{}
	for k := range all {
		bulk[k] = bulkOf{noop} // one bulk generator for every kind, batched or not
	}
	tests := []struct {
		name      string
		opts      executor.Options
		templates []graph.Template
		want      *executor.TemplateMismatchError // nil: no error
	}{
		{name: "matching", opts: executor.Options{Generators: all,
			Rates:  map[string]executor.Rate{graph.KindImage: {Starts: 5, Per: time.Second}, "tts": {Starts: 1, Per: time.Second}},
			Limits: map[string]int{graph.KindVideo: 2},
			Kinds:  map[string]executor.KindOptions{"chapter:voice": {Timeout: time.Minute}}},
			templates: []graph.Template{lecture, podcast}},
		{name: "a bulk generator for kinds without a batch key", opts: executor.Options{Generators: bulk,
			Kinds: map[string]executor.KindOptions{graph.KindImage: {BatchWindow: time.Second}}},
			templates: []graph.Template{lecture, podcast}},
		{name: "a key of another template", opts: executor.Options{Generators: all,
			Rates: map[string]executor.Rate{"tts": {Starts: 1, Per: time.Second}}},
			templates: []graph.Template{lecture},
			want:      &executor.TemplateMismatchError{UnknownKeys: []string{"tts"}}},
		{name: "missing generator", opts: executor.Options{Generators: without(graph.KindMusic)},
			templates: []graph.Template{lecture, podcast},
			want:      &executor.TemplateMismatchError{Missing: []string{graph.KindMusic}}},
		{name: "misspelt", opts: executor.Options{Generators: without("brief"),
			Rates:  map[string]executor.Rate{"asset:imag": {Starts: 5, Per: time.Second}},
			Limits: map[string]int{"asset:imag": 2, "vid": 1},
			Kinds: map[string]executor.KindOptions{"asset:narraton": {Timeout: time.Minute},
				graph.KindMusic: {BatchWindow: time.Second}, graph.KindImage: {BatchWindow: time.Second},
				graph.KindScript: {BatchTimeout: time.Hour}}},
			templates: []graph.Template{lecture, podcast},
			want: &executor.TemplateMismatchError{Missing: []string{"brief"}, UnknownKinds: []string{"asset:narraton"},
				UnknownKeys: []string{"asset:imag", "vid"}, IdleBatchOptions: []string{graph.KindImage, graph.KindMusic, graph.KindScript}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := executor.New(tt.opts)
			require.NoError(t, err)
			err = e.CheckTemplates(tt.templates...)
			if tt.want == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, executor.ErrTemplateMismatch)
			var m *executor.TemplateMismatchError
			require.ErrorAs(t, err, &m)
			assert.Empty(t, cmp.Diff(tt.want, m))
			for _, name := range append(append(append(m.Missing, m.UnknownKinds...), m.UnknownKeys...), m.IdleBatchOptions...) {
				assert.Contains(t, err.Error(), fmt.Sprintf("%q", name))
			}
		})
	}
}

// Bad input to CheckTemplates is an invalid request that says what was
// wrong.
func TestCheckTemplatesRefusesBadInput(t *testing.T) {
	e, err := executor.New(executor.Options{Generators: executor.Registry{"a": noop}})
	require.NoError(t, err)
	err = e.CheckTemplates()
	require.ErrorIs(t, err, executor.ErrInvalidRequest)
	assert.Contains(t, err.Error(), "no template")
	bad := graph.Template{Kinds: []graph.Kind{{Name: "a", Deps: []graph.Dep{{Kind: "b", Scope: graph.ScopeGlobal}}}}}
	err = e.CheckTemplates(graph.Template{Kinds: []graph.Kind{{Name: "a"}}}, bad)
	require.ErrorIs(t, err, executor.ErrInvalidRequest)
	assert.Contains(t, err.Error(), "template 2 of 2")
	assert.False(t, errors.Is(err, executor.ErrTemplateMismatch))
}
