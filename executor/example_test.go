package executor_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
)

func Example() {
	g, _ := graph.Build(graph.Lecture(), 60) // 6 segments, 21 nodes

	// One fake generator for every kind: a real host calls its providers.
	gen := executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
		a := executor.Asset{Data: fmt.Appendf(nil, "%s rev %d", req.NodeID, req.Rev)}
		if req.ID.Kind == graph.KindNarration {
			a.Length = 10 * time.Second // within the segment's ±5%
		}
		return a, nil
	})
	reg := executor.Registry{}
	for i := range g.Kinds() {
		reg[g.KindName(i)] = gen
	}
	e, _ := executor.New(executor.Options{Generators: reg})
	defer closeWithin(e, 30*time.Second)
	ctx := context.Background()

	rep, err := e.Run(ctx, executor.RunRequest{GraphKey: "lecture-1", Graph: g, TriggeredBy: "example"})
	fmt.Println(rep.Record.Status, len(rep.Generated), err)

	// The user edits segment 3's narration: only what depends on it runs.
	rep, err = e.Run(ctx, executor.RunRequest{GraphKey: "lecture-1", Graph: g,
		Marks: []dirty.Mark{{ID: "asset:narration:segment[3]", Reason: dirty.ReasonEdited}}})
	fmt.Println(rep.Record.Status, rep.Generated, err)
	// Output:
	// succeeded 21 <nil>
	// succeeded [asset:narration:segment[3] asset:video:segment[3] timeline] <nil>
}

// A host with assets of its own defines its own template: here a
// podcast, whose segments are chapters. Each chapter has a transcript, a
// voice and a summary that reads the previous chapter's; the show notes
// read every summary; the final mix reads every voice, the intro and the
// notes. The executor needs a generator for each kind, and nothing else
// from the lecture.
func Example_ownTemplate() {
	tmpl := graph.Template{Kinds: []graph.Kind{
		{Name: "brief"},
		{Name: "intro", Deps: []graph.Dep{{Kind: "brief", Scope: graph.ScopeGlobal}}, BatchKey: "tts", Concurrency: 4},
		{Name: "chapter:transcript", PerSegment: true,
			Deps:     []graph.Dep{{Kind: "brief", Scope: graph.ScopeGlobal}},
			BatchKey: "llm", Concurrency: 3},
		{Name: "chapter:voice", PerSegment: true,
			Deps:     []graph.Dep{{Kind: "chapter:transcript", Scope: graph.ScopeSameSegment}},
			BatchKey: "tts", Concurrency: 4},
		{Name: "chapter:summary", PerSegment: true, Deps: []graph.Dep{
			{Kind: "chapter:summary", Scope: graph.ScopePreviousSegment},
			{Kind: "chapter:transcript", Scope: graph.ScopeSameSegment}},
			BatchKey: "llm", Concurrency: 3},
		{Name: "show-notes", Deps: []graph.Dep{{Kind: "chapter:summary", Scope: graph.ScopeAllSegments}}},
		{Name: "mix", Deps: []graph.Dep{{Kind: "chapter:voice", Scope: graph.ScopeAllSegments},
			{Kind: "intro", Scope: graph.ScopeGlobal}, {Kind: "show-notes", Scope: graph.ScopeGlobal}}},
	}}
	const chapters = 3 // a segment per chapter
	g, err := graph.Build(tmpl, chapters*graph.SegmentSeconds)
	if err != nil {
		fmt.Println(err) // a *graph.TemplateError says what is wrong
		return
	}

	// One fake provider for every kind: a real host calls its LLM, its
	// text-to-speech and its mixer, by req.ID.Kind.
	gen := executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
		data := fmt.Appendf(nil, "%s rev %d", req.NodeID, req.Rev)
		for _, d := range req.Deps { // in the graph's order; d.NodeID names each
			data = fmt.Appendf(data, " <%s>", d.Asset.Hash)
		}
		return executor.Asset{Data: data}, nil
	})
	reg := executor.Registry{}
	for i := range g.Kinds() {
		reg[g.KindName(i)] = gen
	}
	e, err := executor.New(executor.Options{Generators: reg})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer closeWithin(e, 30*time.Second)
	ctx := context.Background()

	rep, err := e.Run(ctx, executor.RunRequest{GraphKey: "episode-12", Graph: g})
	fmt.Println(rep.Record.Status, len(rep.Generated), "of", g.Len(), err)

	// The host edits chapter 1's transcript. Preview, then run.
	edit := []dirty.Mark{{ID: "chapter:transcript:segment[1]", Reason: dirty.ReasonEdited}}
	plan, why, err := e.Plan(ctx, executor.RunRequest{GraphKey: "episode-12", Graph: g, Marks: edit})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(plan)
	notes, _ := g.Lookup("show-notes")
	fmt.Println("show-notes:", why.Explain(notes))
	rep, err = e.Run(ctx, executor.RunRequest{GraphKey: "episode-12", Graph: g, Marks: edit})
	fmt.Println(rep.Record.Status, rep.Generated, err)
	// Output:
	// succeeded 13 of 13 <nil>
	// Stage 0: Generating 1 chapter:transcript node in batches of 3
	// Stage 1: Generating 1 chapter:voice node in batches of 4, 1 chapter:summary node in batches of 3
	// Stage 2: Generating 1 chapter:summary node in batches of 3
	// Stage 3: Generating 1 show-notes node
	// Stage 4: Generating 1 mix node
	// show-notes: upstream chapter:summary:segment[1], from chapter:transcript:segment[1] edited
	// succeeded [chapter:summary:segment[1] chapter:summary:segment[2] chapter:transcript:segment[1] chapter:voice:segment[1] mix show-notes] <nil>
}

// A host that lets users change a lecture's length finds which length a
// run was made with, to build its graph again for Resume, by comparing
// the run's Record.Graph with the fingerprints of the lengths it offers.
func ExampleFingerprint() {
	gen := executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
		return executor.Asset{Data: []byte(req.NodeID), Length: graph.SegmentLength}, nil
	})
	reg := executor.Registry{}
	for _, k := range graph.Lecture().Kinds {
		reg[k.Name] = gen
	}
	e, _ := executor.New(executor.Options{Generators: reg})
	defer closeWithin(e, 30*time.Second)
	ctx := context.Background()

	made, _ := graph.Build(graph.Lecture(), 90)
	rep, _ := e.Run(ctx, executor.RunRequest{GraphKey: "lecture-7", Graph: made, RunID: "run-1"})

	rec, _ := e.Runs().GetRun(ctx, rep.Record.ID)
	for _, seconds := range []int{60, 90, 120} {
		g, _ := graph.Build(graph.Lecture(), seconds)
		if executor.Fingerprint(g) == rec.Graph {
			fmt.Println("run-1 was made with", seconds, "s")
			r, err := e.Resume(ctx, g, rec.ID)
			if err != nil {
				fmt.Println(err)
				return
			}
			rep, err := r.Wait()
			fmt.Println(rep.Record.Status, len(rep.Generated), err)
		}
	}
	// Output:
	// run-1 was made with 90 s
	// succeeded 0 <nil>
}

// closeWithin closes e, waiting at most d: [Executor.Close] waits for
// every generator call the executor started, and a generator that ignores
// its context would hold a Close with an unbounded context (such as
// context.Background()) forever. On a timeout Close returns ctx's error,
// and the host goes on with its shutdown (and logs it).
func closeWithin(e *executor.Executor, d time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := e.Close(ctx); err != nil {
		fmt.Println("close:", err) // a generator that ignores its context
	}
}

// A host checks its Options against its templates once, at start-up: a
// misspelt batch key or kind name fails there, not in a log line of each
// run.
func ExampleExecutor_CheckTemplates() {
	gen := executor.GeneratorFunc(func(context.Context, executor.Request) (executor.Asset, error) {
		return executor.Asset{Data: []byte("x")}, nil
	})
	reg := executor.Registry{}
	for _, k := range graph.Lecture().Kinds {
		reg[k.Name] = gen
	}
	e, _ := executor.New(executor.Options{
		Generators: reg,
		Rates:      map[string]executor.Rate{"asset:imag": {Starts: 5, Per: time.Second}}, // a typo
	})
	defer closeWithin(e, 30*time.Second)
	fmt.Println(e.CheckTemplates(graph.Lecture()))
	// Output:
	// executor: options do not match the templates: keys in Options.Rates or Options.Limits that are no batch key of the templates: "asset:imag"
}

// A host that shuts down cancels its runs with a code of its own, and at
// its next start resumes the runs that its shutdown cancelled, by their
// record's CancelledBy, and not those that a user cancelled.
func ExampleCancelCode() {
	g, _ := graph.Build(graph.Lecture(), 60)
	store := executor.NewMemoryStore() // a real host's store outlives the process: pgstore, say
	registry := func(gen executor.GeneratorFunc) executor.Registry {
		reg := executor.Registry{}
		for i := range g.Kinds() {
			reg[g.KindName(i)] = gen
		}
		return reg
	}
	// The first process's providers are slow: its runs are under way at
	// its shutdown.
	slow := registry(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
		<-ctx.Done()
		return executor.Asset{}, ctx.Err()
	})
	e, _ := executor.New(executor.Options{Generators: slow, States: store, Assets: store, Runs: store})
	// The runs' context, which the host cancels at shutdown with its code.
	const shutdownCode = "shutdown"
	service, shutdown := context.WithCancelCause(context.Background())
	first, _ := e.Start(service, executor.RunRequest{GraphKey: "lecture-1", Graph: g, RunID: "first"})
	second, _ := e.Start(service, executor.RunRequest{GraphKey: "lecture-2", Graph: g, RunID: "second"})
	second.Cancel() // a user's cancel
	_, err := second.Wait()
	fmt.Println(err)
	shutdown(executor.CancelCode(shutdownCode, errors.New("service stopping")))
	_, err = first.Wait()
	fmt.Println(err)
	closeWithin(e, 30*time.Second)

	// The next start: resume what the shutdown cancelled.
	fast := registry(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
		a := executor.Asset{Data: fmt.Appendf(nil, "%s rev %d", req.NodeID, req.Rev)}
		if req.ID.Kind == graph.KindNarration {
			a.Length = 10 * time.Second
		}
		return a, nil
	})
	e, _ = executor.New(executor.Options{Generators: fast, States: store, Assets: store, Runs: store})
	defer closeWithin(e, 30*time.Second)
	ctx := context.Background()
	cancelled, _ := store.RunsByStatus(ctx, executor.RunCancelled)
	for _, rec := range cancelled {
		fmt.Printf("run %s cancelled by %q\n", rec.ID, rec.CancelledBy)
		if rec.CancelledBy != shutdownCode {
			continue // a user's cancel stands
		}
		// (A host that may start twice first skips the runs that a
		// record's Resumes names already.)
		r, err := e.Resume(ctx, g, rec.ID, executor.ResumeOptions{RunID: "resume-" + rec.ID})
		if err != nil {
			fmt.Println(err)
			continue
		}
		rep, err := r.Wait()
		fmt.Println(rep.Record.ID, "resumes", rep.Record.Resumes, rep.Record.Status, err)
	}
	// Output:
	// executor: run cancelled: run "second"
	// executor: run cancelled: run "first": service stopping
	// run first cancelled by "shutdown"
	// resume-first resumes first succeeded <nil>
	// run second cancelled by "cancel"
}

// A batch host exports what a run made: one node's output, then every
// clean output of the key, in node-ID order. The assets' Data is the
// host's, to modify or hand on.
func ExampleExecutor_Output() {
	g, _ := graph.Build(graph.Lecture(), 20) // 2 segments, 9 nodes
	gen := executor.GeneratorFunc(func(ctx context.Context, req executor.Request) (executor.Asset, error) {
		return executor.Asset{Data: []byte("made " + req.NodeID), Length: graph.SegmentLength}, nil
	})
	reg := executor.Registry{}
	for _, k := range graph.Lecture().Kinds {
		reg[k.Name] = gen
	}
	e, _ := executor.New(executor.Options{Generators: reg}) // the in-memory stores
	defer closeWithin(e, 30*time.Second)
	ctx := context.Background()
	if _, err := e.Run(ctx, executor.RunRequest{GraphKey: "lecture-1", Graph: g}); err != nil {
		fmt.Println(err)
		return
	}

	a, err := e.Output(ctx, "lecture-1", "script")
	fmt.Printf("%s %v\n", a.Data, err)
	_, err = e.Output(ctx, "lecture-1", "asset:video:segment[5]")
	fmt.Println(errors.Is(err, executor.ErrNotFound))

	for o, err := range e.Outputs(ctx, "lecture-1") {
		if err != nil {
			fmt.Println(err)
			break
		}
		fmt.Printf("%s: %d bytes\n", o.NodeID, len(o.Asset.Data))
	}
	// Output:
	// made script <nil>
	// true
	// asset:image:segment[0]: 27 bytes
	// asset:image:segment[1]: 27 bytes
	// asset:music: 16 bytes
	// asset:narration:segment[0]: 31 bytes
	// asset:narration:segment[1]: 31 bytes
	// asset:video:segment[0]: 27 bytes
	// asset:video:segment[1]: 27 bytes
	// script: 11 bytes
	// timeline: 13 bytes
}
