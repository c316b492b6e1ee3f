package storetest_test

import (
	"testing"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/storetest"
)

// A host checks its own stores with the kit from a test of its package;
// here, the embedded in-memory stores. Each Factory function returns a
// new, empty store for one subtest: a store on a shared database would
// give each its own schema or key prefix, and clean up with t.Cleanup.
// The retention checks prune the whole store: a Retainer on a shared
// database needs a schema of its own for each subtest.
func Example() {
	testMyStores := func(t *testing.T) {
		storetest.Run(t, storetest.Factory{
			States:   func(*testing.T) executor.StateStore { return executor.NewMemoryStates() },
			Assets:   func(*testing.T) executor.AssetStore { return executor.NewMemoryAssets() },
			Runs:     func(*testing.T) executor.RunStore { return executor.NewMemoryRuns() },
			Retainer: func(*testing.T) storetest.Retainer { return executor.NewMemoryStore() },
		})
	}
	_ = testMyStores // func TestMyStores(t *testing.T) { ... } in the host's code
}
