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

// LastEvent returns the newest event of runID among those of its sinks
// that can say: the one with the highest Seq of the sinks that implement
// [LastEventReader] (and do not answer [ErrUnsupported], as a [Buffered]
// over a sink without it does). Every sink was handed the same events, so
// one that holds fewer lost some, and the highest is the run's newest.
// The sinks are asked one after another, in order. If any of them fails,
// LastEvent fails, with the errors joined as Publish joins them: the
// others' answer could be older than the run's newest event. If no sink
// can say, it returns [ErrUnsupported]. It implements [LastEventReader].
func (f *Fanout) LastEvent(ctx context.Context, runID string) (Event, bool, error) {
	var (
		last     Event
		found    bool
		answered bool
		errs     []error
	)
	for i, s := range f.sinks {
		lr, ok := s.(LastEventReader)
		if !ok {
			continue
		}
		e, ok, err := lastEventRecover(ctx, lr, runID)
		switch {
		case errors.Is(err, ErrUnsupported):
			continue
		case err != nil:
			errs = append(errs, fmt.Errorf("sink %d: %w", i, err))
			continue
		}
		answered = true
		if ok && (!found || e.Seq > last.Seq) {
			last, found = e, true
		}
	}
	switch {
	case len(errs) > 0:
		return Event{}, false, errors.Join(errs...)
	case !answered:
		return Event{}, false, fmt.Errorf("%w: fanout: none of its %d sinks implements LastEventReader", ErrUnsupported, len(f.sinks))
	}
	return last, found, nil
}

// lastEventRecover calls lr.LastEvent and turns a panic into an error,
// as publishRecover does for Publish.
func lastEventRecover(ctx context.Context, lr LastEventReader, runID string) (e Event, ok bool, err error) {
	defer func() {
		if p := recover(); p != nil {
			e, ok, err = Event{}, false, fmt.Errorf("sink panicked: %v", p)
		}
	}()
	return lr.LastEvent(ctx, runID)
}
