package pgstore_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// The multi-process tests run this binary again as their second
	// process (see opsChild).
	if raw := os.Getenv(childEnv); raw != "" {
		os.Exit(opsChild(raw))
	}
	goleak.VerifyTestMain(m)
}
