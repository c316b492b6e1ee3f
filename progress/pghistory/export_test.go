package pghistory

// SetPruneBatch sets the runs a prune statement deletes at most.
func SetPruneBatch(h *History, n int) { h.batch = n }
