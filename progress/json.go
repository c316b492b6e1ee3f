package progress

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"time"
)

// eventJSON is the wire form of an [Event]; see the package documentation
// for the contract. Field order here is the order of the keys on the wire.
type eventJSON struct {
	RunID       string       `json:"runId"`
	GraphKey    string       `json:"graphKey,omitempty"`
	Seq         uint64       `json:"seq"`
	Time        string       `json:"time"`
	Type        Type         `json:"type"`
	Node        string       `json:"node,omitempty"`
	Kind        string       `json:"kind,omitempty"`
	BatchKey    string       `json:"batchKey,omitempty"`
	Round       int          `json:"round,omitempty"`
	Stage       *int         `json:"stage,omitempty"`
	StageDone   int          `json:"stageDone,omitempty"`
	StageTotal  int          `json:"stageTotal,omitempty"`
	BatchDone   int          `json:"batchDone,omitempty"`
	BatchTotal  int          `json:"batchTotal,omitempty"`
	Attempt     int          `json:"attempt,omitempty"`
	Message     string       `json:"message,omitempty"`
	PreviewURL  string       `json:"previewUrl,omitempty"`
	Reasoning   string       `json:"reasoning,omitempty"`
	Error       string       `json:"error,omitempty"`
	Done        int          `json:"done"`
	Total       int          `json:"total"`
	Counts      *countsJSON  `json:"counts,omitempty"`
	Plan        *outlineJSON `json:"plan,omitempty"`
	ETAMs       int64        `json:"etaMs,omitempty"`
	ResumedBy   string       `json:"resumedBy,omitempty"`
	CancelledBy string       `json:"cancelledBy,omitempty"`
}

// countsJSON is the wire form of [Counts]: every count is written, 0
// too, so that a reader finds each one; but for dirty, left out when it
// is unknown (Counts.Dirty below 0: an event that a release before it
// wrote), so that such an event read and written again does not say 0.
type countsJSON struct {
	Generated  int  `json:"generated"`
	Unchanged  int  `json:"unchanged"`
	Failed     int  `json:"failed"`
	Skipped    int  `json:"skipped"`
	Superseded int  `json:"superseded"`
	Cancelled  int  `json:"cancelled"`
	Dirty      *int `json:"dirty,omitempty"`
}

// countsToJSON returns c's wire form.
func countsToJSON(c Counts) *countsJSON {
	w := &countsJSON{Generated: c.Generated, Unchanged: c.Unchanged, Failed: c.Failed,
		Skipped: c.Skipped, Superseded: c.Superseded, Cancelled: c.Cancelled}
	if c.Dirty >= 0 {
		w.Dirty = &c.Dirty
	}
	return w
}

// counts returns the Counts that w writes: Dirty -1 when w has none.
func (w *countsJSON) counts() *Counts {
	c := &Counts{Generated: w.Generated, Unchanged: w.Unchanged, Failed: w.Failed,
		Skipped: w.Skipped, Superseded: w.Superseded, Cancelled: w.Cancelled, Dirty: DirtyUnknown}
	if w.Dirty != nil {
		c.Dirty = *w.Dirty
	}
	return c
}

// outlineJSON is the wire form of [Outline]: every key is written, 0
// and "" too, and a list with no items as [], never null, so that a
// reader finds each one.
type outlineJSON struct {
	Stages []outlineStageJSON `json:"stages"`
}

// outlineStageJSON is the wire form of [OutlineStage].
type outlineStageJSON struct {
	Nodes  int                `json:"nodes"`
	Groups []outlineGroupJSON `json:"groups"`
}

// outlineGroupJSON is the wire form of [OutlineGroup].
type outlineGroupJSON struct {
	Kind        string `json:"kind"`
	BatchKey    string `json:"batchKey"`
	Nodes       int    `json:"nodes"`
	Concurrency int    `json:"concurrency"`
}

// toJSON returns o's wire form.
func (o *Outline) toJSON() *outlineJSON {
	w := &outlineJSON{Stages: make([]outlineStageJSON, len(o.Stages))}
	for i, st := range o.Stages {
		groups := make([]outlineGroupJSON, len(st.Groups))
		for j, g := range st.Groups {
			groups[j] = outlineGroupJSON(g)
		}
		w.Stages[i] = outlineStageJSON{Nodes: st.Nodes, Groups: groups}
	}
	return w
}

// MarshalJSON writes o as an event's "plan" is written (see
// [Event.MarshalJSON]): camelCase keys, every key written, 0 and "" too,
// and a list with no items as [], so that a host that forwards an
// event's Plan in an API of its own writes the same form.
func (o Outline) MarshalJSON() ([]byte, error) {
	return json.Marshal(o.toJSON())
}

// UnmarshalJSON reads the form that [Outline.MarshalJSON] writes, as
// [Event.UnmarshalJSON] reads an event's "plan": a key left out reads as
// 0 or "", an empty (or null) list as nil. Errors wrap [ErrInvalidJSON].
func (o *Outline) UnmarshalJSON(data []byte) error {
	if string(bytes.TrimSpace(data)) == "null" {
		return nil
	}
	var w outlineJSON
	if err := json.Unmarshal(data, &w); err != nil {
		return fmt.Errorf("%w: plan: %w", ErrInvalidJSON, err)
	}
	*o = *w.outline()
	return nil
}

// outline returns the Outline that w writes; an empty list reads as nil,
// so that what is read reads the same once written again.
func (w *outlineJSON) outline() *Outline {
	o := &Outline{}
	if len(w.Stages) > 0 {
		o.Stages = make([]OutlineStage, len(w.Stages))
	}
	for i, st := range w.Stages {
		o.Stages[i].Nodes = st.Nodes
		if len(st.Groups) > 0 {
			o.Stages[i].Groups = make([]OutlineGroup, len(st.Groups))
		}
		for j, g := range st.Groups {
			o.Stages[i].Groups[j] = OutlineGroup(g)
		}
	}
	return o
}

// MarshalJSON writes e in the stable wire form described in the package
// documentation: camelCase keys, Time in RFC 3339 with nanoseconds in UTC,
// ETA as whole milliseconds (etaMs), and empty optional fields left out.
// A negative Stage is written as absent. A Time outside the years 0000
// to 9999 in UTC, which RFC 3339 cannot write, is an error, as with
// time.Time's own MarshalJSON. As with encoding/json, "<", ">"
// and "&" in strings are escaped as \u003c, \u003e and \u0026. The output
// is deterministic.
func (e Event) MarshalJSON() ([]byte, error) {
	if !inRFC3339(e.Time) {
		// Format would write a time that RFC 3339, and so UnmarshalJSON,
		// does not read.
		return nil, fmt.Errorf("progress: encode event %d of run %q: time %v is outside RFC 3339's years 0000 to 9999 (in UTC)", e.Seq, e.RunID, e.Time)
	}
	w := eventJSON{
		RunID:       e.RunID,
		GraphKey:    e.GraphKey,
		Seq:         e.Seq,
		Time:        e.Time.UTC().Format(time.RFC3339Nano),
		Type:        e.Type,
		Node:        e.Node,
		Kind:        e.Kind,
		BatchKey:    e.BatchKey,
		Round:       e.Round,
		StageDone:   e.StageDone,
		StageTotal:  e.StageTotal,
		BatchDone:   e.BatchDone,
		BatchTotal:  e.BatchTotal,
		Attempt:     e.Attempt,
		Message:     e.Message,
		PreviewURL:  e.PreviewURL,
		Reasoning:   e.Reasoning,
		Error:       e.Error,
		Done:        e.Done,
		Total:       e.Total,
		ETAMs:       e.ETA.Round(time.Millisecond).Milliseconds(),
		ResumedBy:   e.ResumedBy,
		CancelledBy: e.CancelledBy,
	}
	if e.Stage >= 0 {
		stage := e.Stage
		w.Stage = &stage
	}
	if e.Counts != nil {
		w.Counts = countsToJSON(*e.Counts)
	}
	if e.Plan != nil {
		w.Plan = e.Plan.toJSON()
	}
	data, err := json.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("progress: encode event %d of run %q: %w", e.Seq, e.RunID, err)
	}
	return data, nil
}

// inRFC3339 reports whether t, in UTC, has an RFC 3339 form: its year is
// 0000 to 9999.
func inRFC3339(t time.Time) bool {
	y := t.UTC().Year()
	return y >= 0 && y <= 9999
}

// maxETAMs is the largest etaMs that a time.Duration holds.
const maxETAMs = int64(math.MaxInt64 / time.Millisecond)

// UnmarshalJSON reads the wire form written by [Event.MarshalJSON]. Unknown
// keys are ignored, so that fields added later do not break old readers; a
// missing stage reads as [NoStage], a missing etaMs as 0, and a missing
// (or null) counts as nil, and a count missing from counts as 0; so does
// a missing (or null) plan, and in it a key left out reads as 0 or "",
// and an empty (or null) list of stages or groups as nil. Keys are
// matched as encoding/json matches them, without regard to case, where
// JavaScript's JSON.parse matches them exactly: "RUNID" reads as runId,
// and of a key given twice, in any case, the last wins. MarshalJSON never
// writes such objects; only JSON made elsewhere can differ between the
// two readers. (Matching exactly would cost every read three times as
// long, with twelve times the allocations.) Time is parsed
// as RFC 3339 and kept in UTC; one that is outside the years 0000 to 9999
// in UTC (9999-12-31T23:00:00-02:00) is refused, since it could not be
// written again, and so is an etaMs that a time.Duration cannot hold.
// Errors wrap [ErrInvalidJSON]. JSON null leaves the event as it is, as
// encoding/json does for a struct.
func (e *Event) UnmarshalJSON(data []byte) error {
	if string(bytes.TrimSpace(data)) == "null" {
		return nil
	}
	var w eventJSON
	if err := json.Unmarshal(data, &w); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidJSON, err)
	}
	var t time.Time
	if w.Time != "" {
		var err error
		t, err = time.Parse(time.RFC3339Nano, w.Time)
		if err != nil {
			return fmt.Errorf("%w: time %q is not RFC 3339: %w", ErrInvalidJSON, w.Time, err)
		}
		t = t.UTC()
		if !inRFC3339(t) {
			// Only a time near the ends with an offset gets here: in UTC
			// it has no RFC 3339 form, so it could not be written again.
			return fmt.Errorf("%w: time %q is outside the years 0000 to 9999 in UTC", ErrInvalidJSON, w.Time)
		}
	}
	if w.ETAMs > maxETAMs || w.ETAMs < -maxETAMs {
		return fmt.Errorf("%w: etaMs %d is out of range: at most %d in absolute value (a time.Duration)", ErrInvalidJSON, w.ETAMs, int64(maxETAMs))
	}
	if w.Counts != nil && w.Counts.Dirty != nil && *w.Counts.Dirty < 0 {
		return fmt.Errorf("%w: counts.dirty %d is negative; leave it out for unknown", ErrInvalidJSON, *w.Counts.Dirty)
	}
	stage := NoStage
	if w.Stage != nil {
		if *w.Stage < 0 {
			return fmt.Errorf("%w: stage %d is negative; leave it out for no stage", ErrInvalidJSON, *w.Stage)
		}
		stage = *w.Stage
	}
	*e = Event{
		RunID:       w.RunID,
		GraphKey:    w.GraphKey,
		Seq:         w.Seq,
		Time:        t,
		Type:        w.Type,
		Node:        w.Node,
		Kind:        w.Kind,
		BatchKey:    w.BatchKey,
		Round:       w.Round,
		Stage:       stage,
		StageDone:   w.StageDone,
		StageTotal:  w.StageTotal,
		BatchDone:   w.BatchDone,
		BatchTotal:  w.BatchTotal,
		Attempt:     w.Attempt,
		Message:     w.Message,
		PreviewURL:  w.PreviewURL,
		Reasoning:   w.Reasoning,
		Error:       w.Error,
		Done:        w.Done,
		Total:       w.Total,
		ETA:         time.Duration(w.ETAMs) * time.Millisecond,
		ResumedBy:   w.ResumedBy,
		CancelledBy: w.CancelledBy,
	}
	if w.Counts != nil {
		e.Counts = w.Counts.counts()
	}
	if w.Plan != nil {
		e.Plan = w.Plan.outline()
	}
	return nil
}
