package progress_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/regengraph/regen/progress"
)

func ExampleEvent_MarshalJSON() {
	e := progress.Event{
		RunID: "r1", GraphKey: "lecture-42", Seq: 7,
		Time: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
		Type: progress.NodeRetrying, Node: "asset:narration:segment[3]", Kind: "asset:narration", BatchKey: "asset:narration",
		Round: 1, Stage: 1, StageDone: 2, StageTotal: 7,
		BatchDone: 1, BatchTotal: 3, Attempt: 2,
		Error: "tts: 503", Done: 5, Total: 20, ETA: 61 * time.Second,
	}
	data, _ := json.Marshal(e)
	fmt.Println(string(data))
	// Output:
	// {"runId":"r1","graphKey":"lecture-42","seq":7,"time":"2025-01-02T03:04:05Z","type":"node.retrying","node":"asset:narration:segment[3]","kind":"asset:narration","batchKey":"asset:narration","round":1,"stage":1,"stageDone":2,"stageTotal":7,"batchDone":1,"batchTotal":3,"attempt":2,"error":"tts: 503","done":5,"total":20,"etaMs":61000}
}

func ExampleMemory() {
	ctx := context.Background()
	m := progress.NewMemory(progress.MemoryOptions{})
	_ = m.Publish(ctx,
		progress.Event{RunID: "r1", Seq: 1, Type: progress.RunStarted, Stage: progress.NoStage},
		progress.Event{RunID: "r1", Seq: 2, Type: progress.StageStarted, Stage: 0, Message: "Stage 1: Generating 6 script nodes"},
		progress.Event{RunID: "r1", Seq: 3, Type: progress.NodeStarted, Node: "script/0", Stage: 0, Attempt: 1},
	)
	// A reconnecting view that has seen seq 1 gets the rest, once each.
	_ = m.Replay(ctx, "r1", 1, func(e progress.Event) error {
		fmt.Println(e.Seq, e.Type, e.Node, e.Message)
		return nil
	})
	// Output:
	// 2 stage.started  Stage 1: Generating 6 script nodes
	// 3 node.started script/0
}

func ExampleBuffered() {
	ctx := context.Background()
	down := progress.SinkFunc(func(context.Context, ...progress.Event) error {
		return fmt.Errorf("redis: connection refused")
	})
	// The fallback logs from the Buffered's goroutine: into a buffer,
	// printed once Close has waited for that goroutine, so that the
	// output's order does not depend on scheduling.
	var logs strings.Builder
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	b := progress.NewBuffered(down, progress.BufferedOptions{
		Fallback: progress.NewSlog(logger, progress.SlogOptions{}),
		Logger:   slog.New(slog.DiscardHandler),
		Attempts: 1,
	})
	// The run never sees the failure.
	err := b.Publish(ctx, progress.Event{RunID: "r1", Seq: 1, Type: progress.RunStarted, Stage: progress.NoStage})
	fmt.Println("publish:", err)
	_ = b.Close(ctx)
	fmt.Print(logs.String())
	s := b.Stats()
	fmt.Println("errors:", s.Errors, "fallback:", s.Fallback)
	// Output:
	// publish: <nil>
	// level=INFO msg=run.started runId=r1 seq=1 done=0 total=0
	// errors: 1 fallback: 1
}

func ExampleFanout() {
	ctx := context.Background()
	hist := progress.NewMemoryHistory()
	live := progress.NewMemory(progress.MemoryOptions{Capacity: 2, History: hist})
	sink := progress.NewFanout(progress.NewArchive(hist), live)
	for seq := uint64(1); seq <= 4; seq++ {
		_ = sink.Publish(ctx, progress.Event{RunID: "r1", Seq: seq, Type: progress.Message, Stage: progress.NoStage})
	}
	// The ring kept only 3 and 4; the archive fills in 1 and 2.
	_ = live.Replay(ctx, "r1", 0, func(e progress.Event) error {
		fmt.Print(e.Seq, " ")
		return nil
	})
	fmt.Println()
	// Output:
	// 1 2 3 4
}
