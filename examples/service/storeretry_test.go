package main

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The executor's store calls are retried for -store-retry (default
// defaultStoreRetry), not the executor's default of 1.5 s, which a
// Postgres restart outlasts: the runs' store calls failed while their
// lecture locks were taken again (-retake). The flag is checked, and -h
// describes it.
func TestStoreRetryFlag(t *testing.T) {
	getenv := func(string) string { return "" }
	c, err := parse(nil, getenv)
	require.NoError(t, err)
	assert.Equal(t, defaultStoreRetry, c.storeRetry, "the default")
	assert.GreaterOrEqual(t, defaultStoreRetry, defaultRetake, "a run rides out with its store calls the outages it rides out with its lock")
	assert.Equal(t, defaultStoreRetry, c.executorOptions(nil, nil, nil, nil).StoreRetry, "the executor's StoreRetry")

	c, err = parse([]string{"-store-retry", "45s"}, getenv)
	require.NoError(t, err)
	assert.Equal(t, 45*time.Second, c.executorOptions(nil, nil, nil, nil).StoreRetry)

	for _, v := range []string{"0s", "-1s", "soon"} {
		_, err := parse([]string{"-store-retry", v}, getenv)
		require.Error(t, err, "-store-retry %s", v)
		assert.Contains(t, err.Error(), "-store-retry", "-store-retry %s: the error names the flag", v)
	}
	code, out, errOut := runCommand(t, nil, "-h")
	assert.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "  -store-retry DURATION\n    \t", "-h describes -store-retry")
	assert.True(t, strings.Contains(out, "[-store-retry 10s]"), "the usage's synopsis names -store-retry")
}
