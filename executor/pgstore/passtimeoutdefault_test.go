package pgstore_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor/pgstore"
)

// A pass's default deadline is Every or ten minutes, whichever is
// longer, so that a host's Pruner that deletes much is not cut at a
// minute, as it was for a 75 s prune after an upgrade (an upgrade
// trial); one given is kept.
func TestMaintainPassTimeoutDefault(t *testing.T) {
	t.Parallel() // its own schema
	s, _ := newStore(t)
	for _, tc := range []struct {
		name string
		opts pgstore.MaintainOptions
		want time.Duration
	}{
		{"the default Every", pgstore.MaintainOptions{}, 10 * time.Minute},
		{"a short Every", pgstore.MaintainOptions{Every: 5 * time.Second}, 10 * time.Minute},
		{"an Every above it", pgstore.MaintainOptions{Every: time.Hour}, time.Hour},
		{"one given", pgstore.MaintainOptions{PassTimeout: 30 * time.Second}, 30 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := pgstore.PassTimeoutOf(s, tc.opts)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
	assert.Equal(t, 10*time.Minute, pgstore.DefaultPassTimeout)
}
