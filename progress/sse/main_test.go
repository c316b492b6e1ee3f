package sse_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// BenchmarkFanout runs its SSE clients in a child process (this test
	// binary again), so that the server's memory is measured alone.
	if os.Getenv(fanoutHelperEnv) != "" {
		os.Exit(fanoutClients())
	}
	goleak.VerifyTestMain(m)
}
