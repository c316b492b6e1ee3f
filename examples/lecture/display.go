package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/regengraph/regen/planner"
	"github.com/regengraph/regen/progress"
)

// barWidth is the width of a progress bar, in characters.
const barWidth = 24

// defaultWidth is the width of a terminal that does not say its own, in
// columns: the usual 80.
const defaultWidth = 80

// display is the live progress view. As a [progress.Sink] it only counts
// the run's events, under a lock, so that it never slows the run; a
// renderer goroutine draws the counts every tick. On a terminal it
// redraws a bar per kind in place with ANSI codes, each bar cut to the
// terminal's width (80 columns if it does not say) so that none wraps;
// otherwise it prints plain lines. It shows one run at a time: see begin
// and start. It reads a node's kind from its events' Kind field, never
// from its ID.
type display struct {
	w     io.Writer
	tty   bool
	every time.Duration
	width int // columns of the terminal; 0: ask it at each draw

	mu      sync.Mutex
	label   string // "run 1"
	bars    []*bar
	byKind  map[string]*bar
	done    int
	total   int
	eta     time.Duration
	etaAt   time.Time
	started time.Time
	ended   time.Time // when the final event came, or zero
	logs    []string
	changed bool

	drawn int // bar lines on screen, to redraw over; renderer only
}

// bar is the progress of one kind's nodes in a run.
type bar struct {
	kind    string
	stages  string
	total   int
	done    int // succeeded or unchanged
	failed  int
	skipped int
	other   int // superseded or cancelled
	retries int
	running map[string]bool
}

func (b *bar) settled() int { return b.done + b.failed + b.skipped + b.other }

func newDisplay(w io.Writer) *display {
	d := &display{w: w, tty: isTerminal(w), every: 500 * time.Millisecond}
	if d.tty {
		d.every = 100 * time.Millisecond
	}
	return d
}

// isTerminal reports whether w is a character device, such as a
// terminal, that understands ANSI codes.
func isTerminal(w io.Writer) bool {
	f, ok := file(w)
	if !ok || os.Getenv("TERM") == "dumb" {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// begin sets up the view of a new run from its plan: one bar per kind
// in the plan, in the order the plan first reaches them.
func (d *display) begin(label string, p *planner.Plan) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.label, d.bars, d.byKind = label, nil, map[string]*bar{}
	d.done, d.total, d.eta, d.etaAt, d.logs = 0, p.Len(), 0, time.Time{}, nil
	d.started, d.ended, d.changed = time.Now(), time.Time{}, true
	first := map[string]int{}
	for _, st := range p.Stages {
		for _, grp := range st.Groups {
			for _, n := range grp.Nodes {
				kind := p.Graph.KindName(p.Graph.KindOf(n))
				b := d.bar(kind)
				b.total++
				if _, seen := first[kind]; !seen {
					first[kind] = st.Index
					b.stages = fmt.Sprintf("stage %d", st.Index)
				} else if first[kind] != st.Index {
					b.stages = fmt.Sprintf("stages %d-%d", first[kind], st.Index)
				}
			}
		}
	}
}

// bar returns the bar of a kind, adding it if the plan did not have it.
// Called with mu held.
func (d *display) bar(kind string) *bar {
	b := d.byKind[kind]
	if b == nil {
		b = &bar{kind: kind, running: map[string]bool{}}
		d.byKind[kind] = b
		d.bars = append(d.bars, b)
	}
	return b
}

// Publish counts the events. It never fails and never blocks on output.
func (d *display) Publish(_ context.Context, events ...progress.Event) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, ev := range events {
		d.apply(ev)
	}
	return nil
}

// apply counts one event. Called with mu held.
func (d *display) apply(ev progress.Event) {
	d.changed = true
	if ev.Total > 0 {
		d.done, d.total = ev.Done, ev.Total
		if ev.Node != "" {
			d.eta, d.etaAt = ev.ETA, ev.Time
		}
	}
	if ev.Node == "" {
		switch {
		case ev.Type.Final():
			d.eta, d.ended = 0, ev.Time
			d.logs = append(d.logs, ev.Message)
		case ev.Message != "": // run.started, stage.started, run messages
			if ev.Type != progress.StageFinished {
				d.logs = append(d.logs, ev.Message)
			}
		}
		return
	}
	kind := ev.Kind // the executor names the kind of every node's event
	if kind == "" {
		kind = ev.Node
	}
	b := d.bar(kind)
	switch ev.Type {
	case progress.NodeStarted:
		b.running[ev.Node] = true
	case progress.NodeRetrying:
		b.retries++
	case progress.NodeSucceeded, progress.NodeUnchanged:
		delete(b.running, ev.Node)
		b.done++
	case progress.NodeFailed:
		delete(b.running, ev.Node)
		b.failed++
		d.logs = append(d.logs, fmt.Sprintf("%s failed after %d attempt(s): %s", ev.Node, ev.Attempt, ev.Error))
	case progress.NodeSkipped:
		b.skipped++
	case progress.NodeSuperseded, progress.NodeCancelled:
		delete(b.running, ev.Node)
		b.other++
	}
}

// start starts the renderer. The returned stop ends it, waits for it to
// exit and draws the run's final state.
func (d *display) start() (stop func()) {
	quit, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(d.every)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				d.render(false)
			}
		}
	}()
	return func() {
		close(quit)
		<-exited
		d.render(true)
	}
}

// render draws what changed since the last time: the new log lines, then
// the bars (on a terminal, over the previous ones) or one plain line.
func (d *display) render(final bool) {
	width := d.width
	if d.tty && width <= 0 {
		width = defaultWidth
		if f, ok := file(d.w); ok {
			if cols, ok := terminalWidth(f); ok {
				width = cols
			}
		}
	}
	d.mu.Lock()
	if !d.changed && !final {
		d.mu.Unlock()
		return
	}
	d.changed = false
	logs := d.logs
	d.logs = nil
	var bars []string
	if d.tty {
		bars = d.barLines(width)
	} else if !final {
		bars = []string{d.label + ": " + d.statusLine()}
	}
	d.mu.Unlock()

	var b strings.Builder
	if d.tty && d.drawn > 0 {
		// Back to the first bar, and clear it and everything below: a log
		// line longer than the width takes more than one row.
		fmt.Fprintf(&b, "\x1b[%dA\r\x1b[J", d.drawn)
	}
	for _, l := range logs {
		if d.tty {
			b.WriteString("\r\x1b[2K")
		}
		fmt.Fprintf(&b, "%s: %s\n", d.label, l)
	}
	for _, l := range bars {
		if d.tty {
			b.WriteString("\r\x1b[2K")
		}
		b.WriteString(l)
		b.WriteByte('\n')
	}
	d.drawn = 0
	if d.tty && !final {
		d.drawn = len(bars)
	}
	_, _ = io.WriteString(d.w, b.String())
}

// statusLine is the run's progress in one line. Called with mu held.
func (d *display) statusLine() string {
	running := 0
	for _, b := range d.bars {
		running += len(b.running)
	}
	s := fmt.Sprintf("%d/%d done", d.done, d.total)
	if running > 0 {
		s += fmt.Sprintf(", %d running", running)
	}
	s += ", " + round(d.elapsed()).String() + " elapsed"
	if eta := d.etaLeft(); eta > 0 {
		s += ", ETA " + round(eta).String()
	}
	return s
}

// elapsed is the run's time so far, or its whole time once it ended.
// Called with mu held.
func (d *display) elapsed() time.Duration {
	end := d.ended
	if end.IsZero() {
		end = time.Now()
	}
	return end.Sub(d.started)
}

// etaLeft counts the last ETA down to now. Called with mu held.
func (d *display) etaLeft() time.Duration {
	if d.eta <= 0 {
		return 0
	}
	return max(d.eta-time.Since(d.etaAt), 0)
}

// barLines draws a bar per kind and one for the run, each line at most
// width-1 characters: a line that wrapped would take two rows, and the
// next redraw, which moves up one row per bar, would leave one behind
// (the last column stays free, as some terminals wrap on it at once).
// The bars shrink to make room for the counts, down to 6 characters;
// past that a line is cut. Called with mu held.
func (d *display) barLines(width int) []string {
	kw, sw := len("all"), 0
	for _, b := range d.bars {
		kw, sw = max(kw, len(b.kind)), max(sw, len(b.stages))
	}
	type line struct{ head, tail string }
	lines := make([]line, 0, len(d.bars)+1)
	for _, b := range d.bars {
		tail := fmt.Sprintf(" %3d/%-3d", b.done, b.total)
		for _, c := range []struct {
			n    int
			what string
		}{{len(b.running), "running"}, {b.retries, "retried"}, {b.failed, "failed"}, {b.skipped, "skipped"}, {b.other, "cancelled or superseded"}} {
			if c.n > 0 {
				tail += fmt.Sprintf("  %d %s", c.n, c.what)
			}
		}
		lines = append(lines, line{fmt.Sprintf("  %-*s  %-*s ", kw, b.kind, sw, b.stages), tail})
	}
	// The run's line leaves the running nodes to the kinds' lines.
	status := round(d.elapsed()).String() + " elapsed"
	if eta := d.etaLeft(); eta > 0 {
		status += ", ETA " + round(eta).String()
	}
	lines = append(lines, line{fmt.Sprintf("  %-*s  %-*s ", kw, "all", sw, ""), fmt.Sprintf(" %3d/%-3d  %s", d.done, d.total, status)})
	bw := barWidth
	for _, l := range lines {
		room := width - 1 - utf8.RuneCountInString(l.head+l.tail) - len("[]")
		bw = max(min(bw, room), 6)
	}
	out := make([]string, len(lines))
	for i, l := range lines {
		done, total := d.done, d.total
		if i < len(d.bars) {
			done, total = d.bars[i].settled(), d.bars[i].total
		}
		out[i] = cut(strings.TrimRight(l.head+drawBar(done, total, bw)+l.tail, " "), width-1)
	}
	return out
}

// cut returns s cut to at most n characters (runes).
func cut(s string, n int) string {
	n = max(n, 1)
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	i := 0
	for range n {
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
	}
	return s[:i]
}

// drawBar draws done of total as "[#####.....]", width characters
// between the brackets.
func drawBar(done, total, width int) string {
	fill := width
	if total > 0 {
		fill = min(done*width/total, width)
	}
	return "[" + strings.Repeat("#", fill) + strings.Repeat(".", width-fill) + "]"
}

// round rounds a duration for display: to 10 µs below 10 ms (a run of
// instant generators is not "0s"), to 10 ms below 10 s, to 100 ms above.
func round(d time.Duration) time.Duration {
	if d < 10*time.Millisecond {
		return d.Round(10 * time.Microsecond)
	}
	if d < 10*time.Second {
		return d.Round(10 * time.Millisecond)
	}
	return d.Round(100 * time.Millisecond)
}
