package progress_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/sinktest"
)

// Readers of a run whose clients are slow, here blocked in their
// callback at the start of a burst of events, must not each hold a copy
// of a large part of the burst meanwhile: memory per reader stays small,
// whatever the size of the burst.
func TestMemoryReadersOfABurstHoldLittleEach(t *testing.T) {
	const readers, burst = 100, 500
	m := progress.NewMemory(progress.MemoryOptions{})
	perReader := sinktest.HeldPerReader(t, m, m, readers, burst)
	t.Logf("%d readers held at the start of a burst of %d events: %.0f bytes each, the ring included", readers, burst, perReader)
	assert.Less(t, perReader, 16e3, "bytes held per reader of a burst of %d events", burst)
}
