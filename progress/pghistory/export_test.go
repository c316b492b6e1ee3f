package pghistory

// SetPruneBatch sets the runs a prune statement deletes at most.
func SetPruneBatch(h *History, n int) { h.batch = n }

// SetAfterPruneBatch sets a function that Prune calls after each batch.
func SetAfterPruneBatch(h *History, f func()) { h.afterBatch = f }
