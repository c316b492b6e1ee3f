package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// -recover-every and -prune-every took any positive interval, so that
// one given in the wrong unit (-recover-every 10ns) made a loop of
// recovery passes, or of retention passes (each a scan of the assets),
// that hit Postgres without rest, every process of the deployment at
// once: pgstore's Maintain refuses such an Every (MinMaintainEvery,
// e1d43c5). An interval under minEvery is now refused, the error naming
// the flag and the floor; minEvery itself is taken.
func TestIntervalFlagsHaveAFloor(t *testing.T) {
	getenv := func(string) string { return "" }
	for _, flag := range []string{"-recover-every", "-prune-every"} {
		for _, v := range []string{"1ns", "10ms", "999ms"} {
			_, err := parse([]string{flag, v}, getenv)
			require.Error(t, err, "%s %s", flag, v)
			assert.Contains(t, err.Error(), flag+" "+v, "the error names the flag and the value")
			assert.Contains(t, err.Error(), "at least 1s", "the error names the floor")
		}
		_, err := parse([]string{flag, minEvery.String()}, getenv)
		assert.NoError(t, err, "%s %v", flag, minEvery)
	}
	code, out, errOut := runCommand(t, nil, "-h")
	assert.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "at least 1s, between two looks", "-h names -recover-every's floor")
	assert.Contains(t, out, "at least 1s, between two passes of the retention", "-h names -prune-every's floor")
}
