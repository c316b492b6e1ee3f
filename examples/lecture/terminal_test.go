package main

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/progress"
)

// screen is a small model of a terminal of a given width: it wraps long
// lines as a terminal does (the cursor waits at the last column, and the
// next character goes to the next row), turns "\n" into a new row at
// column 0 (the tty's line discipline adds the "\r"), and understands
// the codes the display writes: "\r", ESC[nA, ESC[2K and ESC[J.
type screen struct {
	width    int
	rows     [][]rune
	row, col int
	wrap     bool // a character was written to the last column
}

func (s *screen) ensure(r int) {
	for len(s.rows) <= r {
		s.rows = append(s.rows, nil)
	}
}

func (s *screen) put(c rune) {
	if s.wrap {
		s.row, s.col, s.wrap = s.row+1, 0, false
	}
	s.ensure(s.row)
	line := s.rows[s.row]
	for len(line) <= s.col {
		line = append(line, ' ')
	}
	line[s.col] = c
	s.rows[s.row] = line
	if s.col == s.width-1 {
		s.wrap = true
	} else {
		s.col++
	}
}

func (s *screen) write(t *testing.T, out string) {
	t.Helper()
	for i := 0; i < len(out); i++ {
		c, size := utf8.DecodeRuneInString(out[i:])
		switch c {
		case '\n':
			s.row, s.col, s.wrap = s.row+1, 0, false
			s.ensure(s.row)
		case '\r':
			s.col, s.wrap = 0, false
		case 0x1b:
			require.Less(t, i+1, len(out), "a lone ESC")
			require.Equal(t, byte('['), out[i+1], "a CSI sequence")
			j := i + 2
			for j < len(out) && out[j] >= '0' && out[j] <= '9' {
				j++
			}
			require.Less(t, j, len(out), "an unfinished CSI sequence")
			n := 0
			if j > i+2 {
				n, _ = strconv.Atoi(out[i+2 : j])
			}
			s.ensure(s.row)
			switch out[j] {
			case 'A':
				s.row, s.wrap = max(s.row-max(n, 1), 0), false
			case 'K':
				require.Equal(t, 2, n, "only ESC[2K")
				s.rows[s.row] = nil
			case 'J':
				require.Equal(t, 0, n, "only ESC[J")
				s.rows[s.row] = s.rows[s.row][:min(s.col, len(s.rows[s.row]))]
				s.rows = s.rows[:s.row+1]
			default:
				t.Fatalf("unexpected code ESC[%s", out[i+1:j+1])
			}
			i = j
		default:
			s.put(c)
			i += size - 1
		}
	}
}

// lines returns the rows, trailing spaces and the empty last row cut.
func (s *screen) lines() []string {
	var out []string
	for _, r := range s.rows {
		out = append(out, strings.TrimRight(string(r), " "))
	}
	for len(out) > 0 && out[len(out)-1] == "" {
		out = out[:len(out)-1]
	}
	return out
}

// TestTerminalDisplayOnAnEightyColumnTerminal draws a run on a terminal
// 80 columns wide, the width the display assumes when it cannot ask the
// terminal: the bars are redrawn in place, so the screen ends with each
// log line once, then the final bars once, with no stale bar left above
// them and no remnant of an old row inside a new one. Bars longer than
// the width wrapped, so that moving up by the number of bars left rows
// behind; and a log line written over a bar cleared only its first row.
func TestTerminalDisplayOnAnEightyColumnTerminal(t *testing.T) {
	for _, width := range []int{0, 50, 200} { // 0: the display's default, 80
		t.Run(fmt.Sprint(width), func(t *testing.T) { testTerminalWidth(t, width) })
	}
}

func testTerminalWidth(t *testing.T, width int) {
	g, err := graph.Build(graph.Lecture(), 30)
	require.NoError(t, err)
	var out bytes.Buffer
	d := newDisplay(&out)
	d.tty, d.width = true, width
	if width == 0 {
		width = 80
	}
	p, err := plan(context.Background(), executor.NewMemoryStates(), g, nil)
	require.NoError(t, err)
	d.begin("run 1", p)
	ev := func(typ progress.Type, node string, done int) progress.Event {
		id, err := graph.ParseID(node)
		require.NoError(t, err)
		return progress.Event{Type: typ, Node: node, Kind: id.Kind, Done: done, Total: 12, Time: time.Now(), ETA: 3 * time.Second}
	}
	longLog := "Stage 1: Generating 3 asset:narration nodes in batches of 4, 3 asset:image nodes in batches of 5, 1 asset:music node"
	scr := &screen{width: width}
	steps := [][]progress.Event{
		{
			{Type: progress.RunStarted, Total: 12, Message: "Regenerating 12 of 12 nodes in 4 stages (dataflow)"},
			ev(progress.NodeStarted, "script", 0), ev(progress.NodeSucceeded, "script", 1),
		},
		{
			{Type: progress.StageStarted, Total: 12, Done: 1, Message: longLog},
			ev(progress.NodeStarted, "asset:image:segment[0]", 1), ev(progress.NodeRetrying, "asset:image:segment[0]", 1),
			ev(progress.NodeStarted, "asset:image:segment[1]", 1), ev(progress.NodeRetrying, "asset:image:segment[1]", 1),
			ev(progress.NodeStarted, "asset:image:segment[2]", 1), ev(progress.NodeFailed, "asset:image:segment[2]", 2),
			ev(progress.NodeStarted, "asset:narration:segment[0]", 2), ev(progress.NodeCancelled, "asset:narration:segment[0]", 3),
			ev(progress.NodeSkipped, "asset:video:segment[2]", 4),
		},
		{
			ev(progress.NodeSucceeded, "asset:image:segment[0]", 5),
			{Type: progress.RunCancelled, Total: 12, Done: 5, Message: "cancelled: 2 generated"},
		},
	}
	for i, evs := range steps {
		require.NoError(t, d.Publish(context.Background(), evs...))
		out.Reset()
		d.render(i == len(steps)-1)
		scr.write(t, out.String())
	}

	logs := []string{
		"run 1: Regenerating 12 of 12 nodes in 4 stages (dataflow)",
		"run 1: " + longLog,
		"run 1: asset:image:segment[2] failed after 0 attempt(s): ",
		"run 1: cancelled: 2 generated",
	}
	got := scr.lines()
	// Each log line once, in order, wrapped at the width.
	var wantLogRows []string
	for _, l := range logs {
		for len(l) > width {
			wantLogRows = append(wantLogRows, l[:width])
			l = l[width:]
		}
		wantLogRows = append(wantLogRows, strings.TrimRight(l, " "))
	}
	require.GreaterOrEqual(t, len(got), len(wantLogRows), "screen:\n%s", strings.Join(got, "\n"))
	assert.Equal(t, wantLogRows, got[:len(wantLogRows)], "the log lines first; screen:\n%s", strings.Join(got, "\n"))
	// Then one row per bar, each on a row of its own.
	bars := got[len(wantLogRows):]
	kinds := []string{"script", "asset:narration", "asset:image", "asset:music", "asset:video", "timeline", "all"}
	require.Len(t, bars, len(kinds), "one row per bar and no other; screen:\n%s", strings.Join(got, "\n"))
	for i, k := range kinds {
		assert.True(t, strings.HasPrefix(bars[i], "  "+k+" "), "row %d is %q, want the bar of %s", i, bars[i], k)
		assert.Less(t, utf8.RuneCountInString(bars[i]), width, "the bar of %s fits in a row: %q", k, bars[i])
	}
	if width >= 80 {
		assert.Contains(t, bars[2], "  1/3    1 running  2 retried  1 failed", "the image bar, whole")
		assert.Contains(t, bars[6], " elapsed", "the run's bar, whole")
	}
}
