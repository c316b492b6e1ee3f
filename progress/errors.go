package progress

import "errors"

// Errors callers can branch on with [errors.Is].
var (
	// ErrInvalidEvent marks an event that cannot be stored: no run ID, a
	// Seq of 0, or a Time that its JSON form cannot write (see
	// [Event.Validate]), or one that the sink's store refuses for good
	// (a redisstream.Stream's run key that another writer's entry or
	// another type holds). Sinks refuse such a call before storing
	// anything, except when the store refuses some events of it for good:
	// the others are stored, and a repeat of the call skips them as
	// duplicates. Retrying such an event never helps.
	ErrInvalidEvent = errors.New("progress: invalid event")
	// ErrInvalidJSON marks JSON that is not an event in the documented form.
	ErrInvalidJSON = errors.New("progress: invalid event JSON")
	// ErrClosed is returned by a sink used after its Close.
	ErrClosed = errors.New("progress: sink closed")
	// ErrUnsupported is returned by the optional method of a wrapper
	// ([Buffered], [Fanout], [Archive]) when what it wraps cannot answer:
	// LastEvent when no wrapped sink or History implements
	// [LastEventReader]. The caller treats it as it treats a sink that
	// does not implement the method.
	ErrUnsupported = errors.New("progress: not supported by the wrapped sink")
	// ErrInvalidOptions marks options that cannot be used: a
	// [MemoryOptions].HistoryPoll or HistoryWait below 1ms but positive,
	// which [Memory.Tail] and [Memory.Replay] refuse (NewMemory returns
	// no error). The error names the option and what is allowed.
	ErrInvalidOptions = errors.New("progress: invalid options")
	// ErrEvicted is returned by [Memory.Replay], and by [Memory.Tail]
	// without a History (or with one, after [MemoryOptions].HistoryWait),
	// for a run that the Memory evicted (see
	// [MemoryOptions].MaxRuns) and whose events the reader lacks are gone:
	// neither the Memory nor its History holds them. It comes once the
	// reader has had what they hold, the run's newest event, which the
	// Memory keeps, included: at Replay's end; for Tail, at the run's
	// final event, as nothing more can come (a tailer of a live run goes
	// on). So a reader tells an evicted run from one with no events yet,
	// or one the Memory never had, whose Replay delivers nothing and
	// returns nil, and whose Tail waits. The error names the run and the
	// Seqs gone.
	ErrEvicted = errors.New("progress: run evicted from memory")
)
