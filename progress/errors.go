package progress

import "errors"

// Errors callers can branch on with [errors.Is].
var (
	// ErrInvalidEvent marks an event that cannot be stored: no run ID, a
	// Seq of 0, or a Time that its JSON form cannot write (see
	// [Event.Validate]). Sinks refuse the whole call before storing
	// anything.
	ErrInvalidEvent = errors.New("progress: invalid event")
	// ErrInvalidJSON marks JSON that is not an event in the documented form.
	ErrInvalidJSON = errors.New("progress: invalid event JSON")
	// ErrClosed is returned by a sink used after its Close.
	ErrClosed = errors.New("progress: sink closed")
)
