package main

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCommand(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		race, ci bool
		want     []string
		note     bool
		err      string
	}{
		{"the README's command", nil, true, false, []string{"test", "-race", "-count=1", "./..."}, false, ""},
		{"under CI", nil, true, true, []string{"test", "-race", "-count=1", "./..."}, false, ""},
		{"flags and packages given", []string{"-run", "TestX", "./graph"}, true, false,
			[]string{"test", "-race", "-count=1", "-run", "TestX", "./graph"}, false, ""},
		{"flags only: every package", []string{"-v", "-run", "TestStory"}, true, false,
			[]string{"test", "-race", "-count=1", "-v", "-run", "TestStory", "./..."}, false, ""},
		{"a flag's value is no package", []string{"-run=TestX", "-timeout", "5m", "-short"}, true, false,
			[]string{"test", "-race", "-count=1", "-run=TestX", "-timeout", "5m", "-short", "./..."}, false, ""},
		{"a package after flags", []string{"-v", "./executor", "-run", "X"}, true, false,
			[]string{"test", "-race", "-count=1", "-v", "./executor", "-run", "X"}, false, ""},
		{"no C compiler", nil, false, false, []string{"test", "-count=1", "./..."}, true, ""},
		{"no C compiler under CI", nil, false, true, nil, false, "CI=true and the race detector cannot run here"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			argv, note, err := command(tc.args, tc.race, tc.ci)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				assert.Nil(t, argv)
				return
			}
			require.NoError(t, err)
			if diff := cmp.Diff(tc.want, argv); diff != "" {
				t.Errorf("argv (-want +got):\n%s", diff)
			}
			if tc.note {
				assert.Contains(t, note, "running without -race")
			} else {
				assert.Empty(t, note)
			}
		})
	}
}
