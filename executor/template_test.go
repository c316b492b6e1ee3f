package executor_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/internal/testgraph"
	"github.com/regengraph/regen/progress"
)

// studio is the podcast host's fake providers: instant, recording each
// call, bulk calls and event.
type studio struct {
	mu     sync.Mutex
	calls  map[string]int
	fail   map[string]error // node ID -> the error of its every attempt
	fixed  map[string]bool  // node IDs whose output ignores their revision and inputs
	gate   map[string]gate
	bulks  [][]string
	events []progress.Event
}

func newStudio() *studio {
	return &studio{calls: map[string]int{}, fail: map[string]error{}, fixed: map[string]bool{}, gate: map[string]gate{}}
}

func (s *studio) Generate(ctx context.Context, req executor.Request) (executor.Asset, error) {
	s.mu.Lock()
	s.calls[req.NodeID]++
	err, fixed, gate := s.fail[req.NodeID], s.fixed[req.NodeID], s.gate[req.NodeID]
	delete(s.gate, req.NodeID)
	s.mu.Unlock()
	if gate.release != nil {
		close(gate.reached)
		select {
		case <-gate.release:
		case <-ctx.Done():
			return executor.Asset{}, ctx.Err()
		}
	}
	if err != nil {
		return executor.Asset{}, executor.Permanent(err)
	}
	data := []byte(req.NodeID)
	if !fixed {
		data = defaultData(req)
	}
	sum := sha256.Sum256(data)
	return executor.Asset{Data: data, Hash: hex.EncodeToString(sum[:])}, nil
}

func (s *studio) Publish(_ context.Context, evs ...progress.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, evs...)
	return nil
}

// take returns the events and calls so far, and forgets them.
func (s *studio) take() ([]progress.Event, map[string]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	evs, calls := s.events, s.calls
	s.events, s.calls, s.bulks = nil, map[string]int{}, nil
	return evs, calls
}

// gate holds a node's next attempt: the attempt closes reached, then
// waits for release or its context.
type gate struct{ reached, release chan struct{} }

// bulkStudio is the studio's bulk endpoint.
type bulkStudio struct{ *studio }

func (b bulkStudio) GenerateBatch(ctx context.Context, reqs []executor.Request) []executor.Outcome {
	ids := make([]string, len(reqs))
	out := make([]executor.Outcome, len(reqs))
	for i, r := range reqs {
		ids[i] = r.NodeID
		a, err := b.Generate(ctx, r)
		out[i] = executor.Outcome{Asset: a, Err: err}
	}
	b.mu.Lock()
	b.bulks = append(b.bulks, ids)
	b.mu.Unlock()
	return out
}

// studioExecutor returns an executor with s as the generator of every
// kind of g, through its bulk endpoint for the kinds named, closed when
// the test ends.
func studioExecutor(t *testing.T, g *graph.Graph, s *studio, opts executor.Options, bulk ...string) *executor.Executor {
	t.Helper()
	opts.Generators = executor.Registry{}
	for i := range g.Kinds() {
		opts.Generators[g.KindName(i)] = s
	}
	for _, k := range bulk {
		opts.Generators[k] = bulkStudio{s}
	}
	opts.Sink = s
	e, err := executor.New(opts)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, e.Close(context.Background())) })
	return e
}

// chapters returns the IDs of kind's nodes for the segments given.
func chapters(kind string, segs ...int) []string {
	out := make([]string, len(segs))
	for i, s := range segs {
		out[i] = fmt.Sprintf("%s:segment[%d]", kind, s)
	}
	return out
}

// TestCustomTemplateStory drives the podcast template through the
// executor as a host would: a first run, an edit, an edit that early
// cutoff stops, a failure that skips exactly its dependents and a rerun
// of it, a cancel and a resume, and checks the stage lines of the events
// and the bulk calls on the way.
func TestCustomTemplateStory(t *testing.T) {
	ctx := context.Background()
	g, err := graph.Build(testgraph.Podcast(), 40) // 4 chapters
	require.NoError(t, err)
	require.Equal(t, 4*4+6, g.Len())
	s := newStudio()
	s.fixed["brief"] = true // its output depends on nothing
	e := studioExecutor(t, g, s, executor.Options{}, "0intro", "ch:voice", "ch/transcript")
	req := executor.RunRequest{GraphKey: "podcast-7", Graph: g}

	// A new podcast: every node, once; the stage lines are the plan's.
	plan, _, err := e.Plan(ctx, req)
	require.NoError(t, err)
	rep, err := e.Run(ctx, req)
	require.NoError(t, err)
	assert.Len(t, rep.Generated, g.Len())
	evs, calls := s.take()
	assert.Len(t, calls, g.Len())
	var lines, want []string
	for _, ev := range evs {
		if ev.Type == progress.StageStarted {
			lines = append(lines, ev.Message)
		}
	}
	for i := range plan.Stages {
		want = append(want, plan.Summary(i))
	}
	assert.Equal(t, want, lines)
	assert.Equal(t, []string{
		"Stage 0: Generating 1 brief node",
		"Stage 1: Generating 1 0intro node in batches of 4, 1 cover.art node in batches of 1, 4 ch/transcript nodes in batches of 3",
		"Stage 2: Generating 4 ch:voice nodes in batches of 4, 1 ch.summary node in batches of 3",
	}, lines[:3])
	assert.Equal(t, "Stage 6: Generating 1 show-notes node", lines[6])
	assert.Equal(t, "Stage 7: Generating 4 ch_bed nodes", lines[7])

	// Kinds of one key that share a bulk generator (bulkStudio{s}, equal
	// values) share its calls: 0intro and a voice, both of key tts, in one
	// call.
	s.mu.Lock()
	s.bulks = nil
	s.mu.Unlock()
	_, err = e.Run(ctx, executor.RunRequest{GraphKey: "podcast-7", Graph: g,
		Marks: []dirty.Mark{{ID: "0intro", Reason: dirty.ReasonForced}, {ID: "ch:voice:segment[2]", Reason: dirty.ReasonForced}}})
	require.NoError(t, err)
	s.mu.Lock()
	assert.Equal(t, [][]string{{"0intro", "ch:voice:segment[2]"}}, s.bulks)
	s.mu.Unlock()
	s.take()

	// Editing one chapter's transcript: its voice, every summary from it
	// on (the chain), the show notes, every bed (they read the notes),
	// the mix and the publication.
	edit := []dirty.Mark{{ID: "ch/transcript:segment[1]", Reason: dirty.ReasonEdited}}
	rep, err = e.Run(ctx, executor.RunRequest{GraphKey: "podcast-7", Graph: g, Marks: edit})
	require.NoError(t, err)
	wantGen := slices.Concat(chapters("ch.summary", 1, 2, 3), chapters("ch/transcript", 1), chapters("ch:voice", 1),
		chapters("ch_bed", 0, 1, 2, 3), []string{"final-mix", "publish", "show-notes"})
	assert.Equal(t, wantGen, rep.Generated)
	s.take()

	// An edit whose output does not change: early cutoff keeps the rest.
	rep, err = e.Run(ctx, executor.RunRequest{GraphKey: "podcast-7", Graph: g, Marks: []dirty.Mark{{ID: "brief", Reason: dirty.ReasonEdited}}})
	require.NoError(t, err)
	assert.Equal(t, []string{"brief"}, rep.Generated)
	assert.Len(t, rep.Unchanged, g.Len()-1)
	_, calls = s.take()
	assert.Equal(t, map[string]int{"brief": 1}, calls)

	// A summary fails: the summaries after it, the notes, the beds, the
	// mix and the publication are skipped, each once; the rest goes on.
	s.fail["ch.summary:segment[2]"] = errors.New("llm: context too long")
	rep, err = e.Run(ctx, executor.RunRequest{GraphKey: "podcast-7", Graph: g,
		Marks: []dirty.Mark{{ID: "ch/transcript:segment[0]", Reason: dirty.ReasonEdited}}})
	var re *executor.RunError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, []string{"ch.summary:segment[2]"}, rep.Failed)
	assert.Equal(t, slices.Concat(chapters("ch.summary", 3), chapters("ch_bed", 0, 1, 2, 3), []string{"final-mix", "publish", "show-notes"}), rep.Skipped)
	assert.Equal(t, slices.Concat(chapters("ch.summary", 0, 1), chapters("ch/transcript", 0), chapters("ch:voice", 0)), rep.Generated)
	evs, _ = s.take()
	skipped := 0
	for _, ev := range evs {
		if ev.Type == progress.NodeSkipped {
			skipped++
			assert.Equal(t, "skipped: upstream ch.summary:segment[2] failed", ev.Message, ev.Node)
		}
	}
	assert.Equal(t, len(rep.Skipped), skipped)

	delete(s.fail, "ch.summary:segment[2]")
	run, err := e.RerunFailed(ctx, g, rep.Record.ID)
	require.NoError(t, err)
	rep, err = run.Wait()
	require.NoError(t, err)
	assert.Equal(t, slices.Concat(chapters("ch.summary", 2, 3), chapters("ch_bed", 0, 1, 2, 3), []string{"final-mix", "publish", "show-notes"}), rep.Generated)
	s.take()

	// Cancelled while the show notes are made, then resumed: the resume
	// makes what was left, and nothing twice.
	notes := gate{reached: make(chan struct{}), release: make(chan struct{})}
	s.mu.Lock()
	s.gate["show-notes"] = notes
	s.mu.Unlock()
	run, err = e.Start(ctx, executor.RunRequest{GraphKey: "podcast-7", Graph: g,
		Marks: []dirty.Mark{{ID: "ch.summary:segment[3]", Reason: dirty.ReasonEdited}}})
	require.NoError(t, err)
	<-notes.reached
	run.Cancel()
	rep, err = run.Wait()
	require.ErrorIs(t, err, executor.ErrCancelled)
	assert.Equal(t, []string{"show-notes"}, rep.Cancelled)
	close(notes.release)
	run, err = e.Resume(ctx, g, rep.Record.ID)
	require.NoError(t, err)
	rep, err = run.Wait()
	require.NoError(t, err)
	assert.Equal(t, slices.Concat(chapters("ch_bed", 0, 1, 2, 3), []string{"final-mix", "publish", "show-notes"}), rep.Generated)
	_, calls = s.take()
	assert.Equal(t, map[string]int{"show-notes": 2, "ch.summary:segment[3]": 1, "ch_bed:segment[0]": 1, "ch_bed:segment[1]": 1,
		"ch_bed:segment[2]": 1, "ch_bed:segment[3]": 1, "final-mix": 1, "publish": 1}, calls, "the cancelled attempt, then the resume's")
}

// TestCustomTemplateEvolves changes the podcast's template on the same
// graph key, as a host's product grows: a new kind that no existing kind
// depends on plans only its own nodes, wherever it is listed; listing
// the kinds in another order (0intro and cover.art swapped) orders the
// mix's dependencies otherwise, which changes its inputs, as the
// Template's documentation says.
func TestCustomTemplateEvolves(t *testing.T) {
	ctx := context.Background()
	g, err := graph.Build(testgraph.Podcast(), 30)
	require.NoError(t, err)
	s := newStudio()
	store := executor.NewMemoryStore()
	opts := executor.Options{States: store, Assets: store, Runs: store}
	_, err = studioExecutor(t, g, s, opts).Run(ctx, executor.RunRequest{GraphKey: "podcast-9", Graph: g})
	require.NoError(t, err)

	planned := func(tm graph.Template) map[string]string {
		t.Helper()
		g, err := graph.Build(tm, 30)
		require.NoError(t, err)
		p, set, err := studioExecutor(t, g, s, opts).Plan(ctx, executor.RunRequest{GraphKey: "podcast-9", Graph: g})
		require.NoError(t, err)
		out := map[string]string{}
		for _, n := range p.Nodes() {
			out[g.NodeID(n)] = set.Explain(n)
		}
		return out
	}
	for _, at := range []int{0, 5, 10} {
		tm := testgraph.Podcast()
		tm.Kinds = slices.Insert(tm.Kinds, at, graph.Kind{Name: "ch:translation", PerSegment: true,
			Deps: []graph.Dep{{Kind: "ch/transcript", Scope: graph.ScopeSameSegment}}, BatchKey: "llm", Concurrency: 3})
		want := map[string]string{}
		for _, id := range chapters("ch:translation", 0, 1, 2) {
			want[id] = "never generated"
		}
		if diff := cmp.Diff(want, planned(tm)); diff != "" {
			t.Errorf("a new kind listed at %d (-want +got):\n%s", at, diff)
		}
	}
	tm := testgraph.Podcast()
	tm.Kinds[3], tm.Kinds[4] = tm.Kinds[4], tm.Kinds[3]
	assert.Equal(t, map[string]string{"final-mix": "inputs changed", "publish": "upstream final-mix inputs changed"}, planned(tm))
}

// TestOwnNarrationKindIsToldOfTheDefaultCheck runs a host's template
// whose episode narration, one global node of five minutes, is a kind
// named asset:narration, as the lecture's is: the lecture's default check
// refuses it, and the error says where that check comes from and how to
// change it (it said only that 300s is outside 9.5s to 10.5s); with a
// Validate of the host's own, the run succeeds.
func TestOwnNarrationKindIsToldOfTheDefaultCheck(t *testing.T) {
	tm := graph.Template{Kinds: []graph.Kind{
		{Name: "outline"},
		{Name: graph.KindNarration, Deps: []graph.Dep{{Kind: "outline", Scope: graph.ScopeGlobal}}},
	}}
	g, err := graph.Build(tm, 10)
	require.NoError(t, err)
	gen := executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
		return executor.Asset{Data: []byte(req.NodeID), Length: 5 * time.Minute}, nil
	})
	reg := executor.Registry{"outline": gen, graph.KindNarration: gen}
	once := executor.KindOptions{Retry: executor.RetryPolicy{MaxAttempts: 1}}

	e, err := executor.New(executor.Options{Generators: reg, Default: once})
	require.NoError(t, err)
	defer e.Close(context.Background())
	_, err = e.Run(context.Background(), executor.RunRequest{GraphKey: "episode", Graph: g})
	require.ErrorIs(t, err, executor.ErrInvalidOutput)
	require.ErrorIs(t, err, graph.ErrNarrationLength)
	assert.Contains(t, err.Error(), `300s is outside 9.5s to 10.5s (10s ± 5%) (the default check of a kind named asset:narration, `+
		`a lecture segment's narration: set Options.Kinds["asset:narration"].Validate to check it otherwise)`)

	// The host's own check (or one that accepts everything).
	e2, err := executor.New(executor.Options{Generators: reg, Default: once, Kinds: map[string]executor.KindOptions{
		graph.KindNarration: {Validate: func(executor.Request, executor.Asset) error { return nil }}}})
	require.NoError(t, err)
	defer e2.Close(context.Background())
	_, err = e2.Run(context.Background(), executor.RunRequest{GraphKey: "episode", Graph: g})
	require.NoError(t, err)

	// Set explicitly, ValidateNarration says only what is wrong.
	e3, err := executor.New(executor.Options{Generators: reg, Default: once, Kinds: map[string]executor.KindOptions{
		graph.KindNarration: {Validate: executor.ValidateNarration}}})
	require.NoError(t, err)
	defer e3.Close(context.Background())
	_, err = e3.Run(context.Background(), executor.RunRequest{GraphKey: "episode-3", Graph: g})
	require.ErrorIs(t, err, graph.ErrNarrationLength)
	assert.NotContains(t, err.Error(), "default check")
}

// TestBulkGeneratorOfAKindWithoutKey registers one bulk endpoint for
// every kind of a 100-chapter podcast, as a host with one bulk-capable
// client does: the kinds with a batch key get calls of one key (its kinds
// share them, as they share the generator) and at most the key's
// concurrency, and a kind without one (the beds, the
// notes) is called node by node. A bulk generator took every ready bed in
// one call, 100 of them here (10,000 for a long podcast), past the cap of
// 64 singles at once.
func TestBulkGeneratorOfAKindWithoutKey(t *testing.T) {
	g, err := graph.Build(testgraph.Podcast(), 1000)
	require.NoError(t, err)
	s := newStudio()
	var all []string
	for i := range g.Kinds() {
		all = append(all, g.KindName(i))
	}
	e := studioExecutor(t, g, s, executor.Options{}, all...)
	_, err = e.Run(context.Background(), executor.RunRequest{GraphKey: "episode", Graph: g})
	require.NoError(t, err)
	s.mu.Lock()
	defer s.mu.Unlock()
	assert.Len(t, s.calls, g.Len())
	conc, keyOf := map[string]int{}, map[string]string{}
	for i := range g.Kinds() {
		key, c := g.BatchKey(i)
		if key != "" {
			conc[g.KindName(i)], keyOf[g.KindName(i)] = c, key
		}
	}
	inBulk, spans := 0, 0
	for _, b := range s.bulks {
		kind, kinds := "", map[string]bool{}
		for _, id := range b {
			parsed, err := graph.ParseID(id)
			require.NoError(t, err)
			if kind == "" {
				kind = parsed.Kind
			}
			kinds[parsed.Kind] = true
			require.Equal(t, keyOf[kind], keyOf[parsed.Kind], "a bulk call of two batch keys: %v", b)
		}
		if len(kinds) > 1 {
			spans++
		}
		c, keyed := conc[kind]
		require.True(t, keyed, "a bulk call of %d nodes of %s, which has no batch key", len(b), kind)
		require.LessOrEqual(t, len(b), c, "a bulk call of %s over its concurrency", kind)
		inBulk += len(b)
	}
	assert.Positive(t, spans, "no bulk call spans the kinds of a key")
	assert.Equal(t, 2+3*100, inBulk, "the intro, the cover, the transcripts, voices and summaries, in bulk calls")
}
