package executor

import (
	"context"
	"errors"
	"fmt"

	"github.com/regengraph/regen/progress"
)

// interruptedText is the text that run id's record (Record.Error) and the
// final event of its stream (its Message) give once a Resume or
// RerunFailed, starting run by, found it interrupted, cut to MaxEventText
// as every error text the executor records (by, from
// ResumeOptions.RunID, may be long).
func interruptedText(by string) string {
	return cutText(fmt.Sprintf("interrupted: it ended without recording its outcome; resumed by run %s", by))
}

// endInterrupted publishes the final event of run rec, which its record
// now says was interrupted and resumed by run by, so that the views that
// follow its stream end: its process stopped before its final event, and
// nothing else would publish one. The event is a run.cancelled (the run
// was cut short, and is resumed, as after a cancel; no node of it
// failed), numbered after the run's newest event, which only a sink that
// implements progress.LastEventReader can tell. So nothing is published
// when the sink does not implement it (or answers
// progress.ErrUnsupported), when it holds no event of the run (a view
// then waits for its first one, which progress/sse's EmptyRunTimeout
// bounds), or when the run's newest event is final already (its process
// stopped after it, or an earlier Resume published it). The sink's calls
// are bounded by Options.StoreTimeout, from ctx's values but not its
// cancel, and their failures are logged, never returned: the resuming
// run goes on regardless.
func (e *Executor) endInterrupted(ctx context.Context, rec Record, by string) {
	sink := e.opts.Sink
	lr, ok := sink.(progress.LastEventReader)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.opts.StoreTimeout)
	defer cancel()
	last, found, err := lastEvent(ctx, lr, rec.ID)
	switch {
	case errors.Is(err, progress.ErrUnsupported):
		e.log.Debug("regen: the progress sink cannot say an interrupted run's last event; its stream gets no final event",
			"run", rec.ID, "resumed_by", by, "err", err)
		return
	case err != nil:
		e.log.Warn("regen: read the last event of an interrupted run; its stream gets no final event",
			"run", rec.ID, "resumed_by", by, "err", err)
		return
	case !found || last.Type.Final():
		return
	}
	ev := progress.Event{RunID: rec.ID, GraphKey: rec.GraphKey, Seq: last.Seq + 1, Time: rec.EndedAt,
		Type: progress.RunCancelled, Stage: progress.NoStage, Message: interruptedText(by),
		Error: fmt.Sprintf("%v: run %s: interrupted", ErrCancelled, rec.ID),
		Done:  last.Done, Total: last.Total, ResumedBy: by}
	capText(&ev)
	em := emitter{sink: sink, ctx: ctx}
	if err := em.publish(ev); err != nil {
		e.log.Warn("regen: progress sink failed the final event of an interrupted run",
			"run", rec.ID, "seq", ev.Seq, "resumed_by", by, "err", err)
	}
}

// lastEvent calls lr.LastEvent; a panic in it is an error, as a sink's
// panic in Publish is.
func lastEvent(ctx context.Context, lr progress.LastEventReader, runID string) (last progress.Event, found bool, err error) {
	defer func() {
		if p := recover(); p != nil {
			last, found, err = progress.Event{}, false, fmt.Errorf("sink panicked: %v", p)
		}
	}()
	return lr.LastEvent(ctx, runID)
}
