package redisstream

import "time"

// HubRead reports what the run's shared reader has read: whether it
// holds entries after a gap (see hub.held), the highest entry ID (as a
// Seq) it has read, and whether its last XREAD read a whole page. ok is
// false while the run has no shared reader.
func HubRead(s *Stream, runID string) (held bool, read uint64, full, ok bool) {
	s.mu.Lock()
	h := s.hubs[runID]
	s.mu.Unlock()
	if h == nil {
		return false, 0, false, false
	}
	_, held = h.holding()
	h.mu.Lock()
	defer h.mu.Unlock()
	return held, h.read, h.full, true
}

// SetLeftWait sets how long the writes of later calls wait for one left
// in flight before them (see Stream.leftWait).
func SetLeftWait(s *Stream, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.leftWait = d
}

// OnHanding sets f to be called by each write of Publish as it hands its
// result to its call, in the write's goroutine.
func OnHanding(s *Stream, f func()) { s.handing.Store(&f) }

// WaitsForALeftWrite reports whether the next write of runID waits for
// a write left in flight before it (see Stream.inFlight).
func WaitsForALeftWrite(s *Stream, runID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.inFlight[runID]
	return ok
}

// OnLeftWait sets f to end the waits of the writes of Publish for those
// left in flight before them, in place of a timer of their bound: each
// write that waits calls f, in its goroutine, with its number (the calls
// of Publish so far as its call came, 1 for the Stream's first), and
// gives up on the writes it still waits for once the channel f returns
// is ready.
func OnLeftWait(s *Stream, f func(write uint64) <-chan time.Time) { s.leftTimer.Store(&f) }

// SetReadWait sets how long a read of LastEvent or of a Tail waits for a
// token of reads that do not block while the last read of Redis failed,
// and for Redis's answer (see Stream.readWait).
func SetReadWait(s *Stream, d time.Duration) { s.readWait = d }

// ReadsInFlight returns how many tokens of reads that do not block are
// held: by the reads in flight, those left behind by calls that
// returned among them (see Stream.reads).
func ReadsInFlight(s *Stream) int { return len(s.reads) }

// SetFirstSweep sets how long after its start a Stream made later sweeps
// for idle streams first (see firstSweep), until the test ends. Not for
// parallel tests.
func SetFirstSweep(t interface{ Cleanup(func()) }, d time.Duration) {
	old := firstSweep
	firstSweep = d
	t.Cleanup(func() { firstSweep = old })
}

// SetLookupWait sets how long a lookup that no BLOCK bounds waits for
// Redis on a client whose ReadTimeout does not bound it (see
// Stream.lookupWait).
func SetLookupWait(s *Stream, d time.Duration) { s.lookupWait = d }

// OnSweep sets f to be called by each sweep of every Stream as it starts
// (done false), and as it ends (done true), in the sweep's goroutine,
// until the test ends. Not for parallel tests.
func OnSweep(t interface{ Cleanup(func()) }, f func(s *Stream, done bool)) {
	sweepHook.Store(&f)
	t.Cleanup(func() { sweepHook.Store(nil) })
}
