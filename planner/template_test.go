package planner_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/internal/testgraph"
	"github.com/regengraph/regen/planner"
)

// TestOwnTemplatePlan plans edits of the podcast: its stage lines name
// its kinds, and a batch of two kinds its key; its JSON is the same for
// the same input and decodes to itself; its lower bound follows the
// summary chain, and adds up the stages when staged.
func TestOwnTemplatePlan(t *testing.T) {
	g := build(t, testgraph.Podcast(), 40) // 4 chapters
	p := planOf(t, g, edits("ch/transcript:segment[1]"))
	assert.Equal(t, strings.Join([]string{
		"Stage 0: Generating 1 ch/transcript node in batches of 3",
		"Stage 1: Generating 1 ch:voice node in batches of 4, 1 ch.summary node in batches of 3",
		"Stage 2: Generating 1 ch.summary node in batches of 3",
		"Stage 3: Generating 1 ch.summary node in batches of 3",
		"Stage 4: Generating 1 show-notes node",
		"Stage 5: Generating 4 ch_bed nodes",
		"Stage 6: Generating 1 final-mix node",
		"Stage 7: Generating 1 publish node",
	}, "\n")+"\n", p.String())
	mixed := planOf(t, g, []dirty.Mark{{ID: "0intro", Reason: dirty.ReasonForced}, {ID: "ch:voice:segment[2]", Reason: dirty.ReasonForced}})
	assert.Equal(t, "Stage 0: Generating 2 tts nodes in batches of 4", mixed.Summary(0))

	for _, marks := range [][]dirty.Mark{nil, edits("brief"), edits("ch.summary:segment[0]", "0intro"), edits("ch_bed:segment[3]")} {
		a, err := json.Marshal(planOf(t, g, marks))
		require.NoError(t, err)
		b, err := json.Marshal(planOf(t, g, marks))
		require.NoError(t, err)
		require.Equal(t, string(a), string(b))
		q := &planner.Plan{Graph: g}
		require.NoError(t, json.Unmarshal(a, q))
		again, err := json.Marshal(q)
		require.NoError(t, err)
		assert.Equal(t, string(a), string(again))
	}

	costs := planner.Costs{PerKind: map[string]time.Duration{"brief": 5 * time.Second, "0intro": 3 * time.Second,
		"ch/transcript": 4 * time.Second, "ch:voice": 6 * time.Second, "ch.summary": 2 * time.Second,
		"show-notes": 3 * time.Second, "ch_bed": 7 * time.Second, "final-mix": 30 * time.Second, "publish": time.Second}}
	// transcript 1, summaries 1 to 3, notes, a bed, the mix, publish.
	assert.Equal(t, (4+3*2+3+7+30+1)*time.Second, p.LowerBound(costs))
	costs.Staged = true
	// The stages one after another: stage 1 waits for the voice.
	assert.Equal(t, (4+6+2+2+3+7+30+1)*time.Second, p.LowerBound(costs))
}
