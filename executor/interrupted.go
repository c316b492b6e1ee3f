package executor

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/regengraph/regen/progress"
)

// interruptedPrefix starts the text of an interrupted run's record;
// the ID of the run that resumed it follows.
const interruptedPrefix = "interrupted: it ended without recording its outcome; resumed by run "

// interruptedText is the text that run id's record (Record.Error) and the
// final event of its stream (its Message) give once a Resume or
// RerunFailed, starting run by, found it interrupted, cut to MaxEventText
// as every error text the executor records (by, from
// ResumeOptions.RunID, may be long).
func interruptedText(by string) string {
	return cutText(interruptedPrefix + by)
}

// resumedBy returns the ID of the run that rec, the record of a run found
// interrupted, names as the one that resumed it (interruptedText), and
// false when its text names none whole: it is another text, or it may
// have been cut.
func resumedBy(rec Record) (string, bool) {
	by, ok := strings.CutPrefix(rec.Error, interruptedPrefix)
	if !ok || by == "" || len(rec.Error) > MaxEventText-64 {
		return "", false
	}
	return by, true
}

// interrupted does what a Resume or RerunFailed, which started run by to
// finish run rec (as its record read before said), owes a run that
// ended without recording its outcome. A record that says running is
// recorded as interrupted, and its stream ended (markInterrupted). A
// record that says interrupted already (an earlier Resume found it so)
// gets its stream ended now if that Resume could not (its sink failed
// then, or stalled): the final event is the one the earlier Resume would
// have published, with the record's text and naming the run that the
// record names (by, when the text names none whole), and nothing is
// published when the stream's newest event is final already, so a
// stream gets one final event however often its run is resumed. The
// sink's failures are logged, as in endInterrupted, never returned.
func (e *Executor) interrupted(ctx context.Context, rec Record, by string) {
	switch rec.Status {
	case RunRunning:
		e.markInterrupted(ctx, rec.ID, by)
	case RunInterrupted:
		if named, ok := resumedBy(rec); ok {
			by = named
		}
		e.endInterrupted(ctx, rec, by)
	}
}

// endInterrupted publishes the final event of run rec, which its record
// says was interrupted and resumed by run by, so that the views that
// follow its stream end: its process stopped before its final event, and
// nothing else would publish one. The event is a run.cancelled (the run
// was cut short, and is resumed, as after a cancel; no node of it
// failed), with the record's text (Record.Error) as its Message,
// numbered after the run's newest event, which only a sink that
// implements progress.LastEventReader can tell. So nothing is published
// when the sink does not implement it (or answers
// progress.ErrUnsupported), when it holds no event of the run (a view
// then waits for its first one, which progress/sse's EmptyRunTimeout
// bounds), or when the run's newest event is final already (its process
// stopped after it, or an earlier Resume published it). The sink's calls
// are bounded by Options.StoreTimeout, from ctx's values but not its
// cancel, and their failures are logged, never returned: the resuming
// run goes on regardless, and a later Resume or RerunFailed of the run
// tries again (interrupted).
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
	msg := rec.Error
	if msg == "" {
		msg = interruptedText(by)
	}
	ev := progress.Event{RunID: rec.ID, GraphKey: rec.GraphKey, Seq: last.Seq + 1, Time: rec.EndedAt,
		Type: progress.RunCancelled, Stage: progress.NoStage, Message: msg,
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
