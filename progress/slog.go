package progress

import (
	"context"
	"log/slog"
)

// SlogOptions configures a [Slog] sink. The zero value gives the defaults.
type SlogOptions struct {
	// Level is the level of every record. Default: slog.LevelInfo.
	Level slog.Leveler
}

// Slog is a [Sink] that writes each event as one record through a
// *slog.Logger: the message is the event type and the attributes are the
// event's non-empty fields, with the keys of the JSON form, except two:
// the event's time is eventTime (the record has its own time), and its
// ETA is a duration, eta, not etaMs; Counts is a group, counts, of every
// count; and Plan is a group, plan, of the numbers of its stages and of
// their groups (stages, groups), not the outline, which may be long: the
// stage.started events log each stage's summary line. It never fails.
// It is safe for concurrent use.
type Slog struct {
	logger *slog.Logger
	level  slog.Leveler
}

// NewSlog returns a Slog sink writing to logger, or to slog.Default() when
// logger is nil.
func NewSlog(logger *slog.Logger, opts SlogOptions) *Slog {
	if logger == nil {
		logger = slog.Default()
	}
	level := opts.Level
	if level == nil {
		level = slog.LevelInfo
	}
	return &Slog{logger: logger, level: level}
}

// Publish logs events in order and returns nil. ctx is passed to the
// logger's handler; its cancellation does not stop the writing.
func (s *Slog) Publish(ctx context.Context, events ...Event) error {
	level := s.level.Level()
	if !s.logger.Enabled(ctx, level) {
		return nil
	}
	attrs := make([]slog.Attr, 0, 24)
	for _, e := range events {
		attrs = append(attrs[:0],
			slog.String("runId", e.RunID),
			slog.Uint64("seq", e.Seq),
		)
		if e.GraphKey != "" {
			attrs = append(attrs, slog.String("graphKey", e.GraphKey))
		}
		if !e.Time.IsZero() {
			attrs = append(attrs, slog.Time("eventTime", e.Time))
		}
		if e.Node != "" {
			attrs = append(attrs, slog.String("node", e.Node))
		}
		if e.Kind != "" {
			attrs = append(attrs, slog.String("kind", e.Kind))
		}
		if e.BatchKey != "" {
			attrs = append(attrs, slog.String("batchKey", e.BatchKey))
		}
		if e.Round != 0 {
			attrs = append(attrs, slog.Int("round", e.Round))
		}
		if e.Stage >= 0 {
			attrs = append(attrs, slog.Int("stage", e.Stage))
		}
		if e.StageDone != 0 {
			attrs = append(attrs, slog.Int("stageDone", e.StageDone))
		}
		if e.StageTotal != 0 {
			attrs = append(attrs, slog.Int("stageTotal", e.StageTotal))
		}
		if e.BatchDone != 0 {
			attrs = append(attrs, slog.Int("batchDone", e.BatchDone))
		}
		if e.BatchTotal != 0 {
			attrs = append(attrs, slog.Int("batchTotal", e.BatchTotal))
		}
		if e.Attempt != 0 {
			attrs = append(attrs, slog.Int("attempt", e.Attempt))
		}
		if e.Message != "" {
			attrs = append(attrs, slog.String("message", e.Message))
		}
		if e.PreviewURL != "" {
			attrs = append(attrs, slog.String("previewUrl", e.PreviewURL))
		}
		if e.Reasoning != "" {
			attrs = append(attrs, slog.String("reasoning", e.Reasoning))
		}
		if e.Error != "" {
			attrs = append(attrs, slog.String("error", e.Error))
		}
		attrs = append(attrs, slog.Int("done", e.Done), slog.Int("total", e.Total))
		if c := e.Counts; c != nil {
			attrs = append(attrs, slog.Group("counts", slog.Int("generated", c.Generated), slog.Int("unchanged", c.Unchanged),
				slog.Int("failed", c.Failed), slog.Int("skipped", c.Skipped), slog.Int("superseded", c.Superseded),
				slog.Int("cancelled", c.Cancelled), slog.Int("dirty", c.Dirty)))
		}
		if o := e.Plan; o != nil {
			groups := 0
			for _, st := range o.Stages {
				groups += len(st.Groups)
			}
			attrs = append(attrs, slog.Group("plan", slog.Int("stages", len(o.Stages)), slog.Int("groups", groups)))
		}
		if e.ETA != 0 {
			attrs = append(attrs, slog.Duration("eta", e.ETA))
		}
		if e.ResumedBy != "" {
			attrs = append(attrs, slog.String("resumedBy", e.ResumedBy))
		}
		if e.CancelledBy != "" {
			attrs = append(attrs, slog.String("cancelledBy", e.CancelledBy))
		}
		s.logger.LogAttrs(ctx, level, string(e.Type), attrs...)
	}
	return nil
}
