package progress

import (
	"context"
	"errors"
	"fmt"
)

// Fanout is a [Sink] that publishes every event to several sinks, one after
// another in the order given. A sink's failure, an error or a panic, does
// not stop the others.
// Put a slow or remote sink behind a [Buffered] so that it does not delay
// the rest. It is safe for concurrent use if its sinks are.
type Fanout struct {
	sinks []Sink
}

// NewFanout returns a Fanout over sinks. The slice is copied.
func NewFanout(sinks ...Sink) *Fanout {
	for i, s := range sinks {
		if s == nil {
			panic(fmt.Sprintf("progress: NewFanout with a nil sink at index %d", i))
		}
	}
	return &Fanout{sinks: append([]Sink(nil), sinks...)}
}

// Publish publishes events to every sink and joins their errors, each
// prefixed with the sink's index ("sink 1: ..."). A sink's panic is
// recovered and becomes its error ("sink 1: sink panicked: ...").
func (f *Fanout) Publish(ctx context.Context, events ...Event) error {
	var errs []error
	for i, s := range f.sinks {
		if err := publishRecover(ctx, s, events); err != nil {
			errs = append(errs, fmt.Errorf("sink %d: %w", i, err))
		}
	}
	return errors.Join(errs...)
}
