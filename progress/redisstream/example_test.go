package redisstream_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/redisstream"
	"github.com/regengraph/regen/progress/sse"
)

// Example wires a host: the executor publishes to sink; the SSE handler
// reads the stream. It needs a Redis server, so it has no Output.
func Example() {
	ctx := context.Background()
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer client.Close()

	hist := progress.NewMemoryHistory() // a host would use its database
	stream, err := redisstream.New(client, redisstream.Options{History: hist})
	if err != nil {
		log.Fatal(err)
	}
	defer stream.Close()
	buffered := progress.NewBuffered(stream, progress.BufferedOptions{})
	defer func() {
		// Close keeps offering the queued events during an outage until
		// its ctx ends: bound it.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = buffered.Close(ctx)
	}()
	sink := progress.NewFanout(progress.NewArchive(hist), buffered)

	_ = sink.Publish(ctx, progress.Event{RunID: "r1", Seq: 1, Type: progress.RunStarted, Stage: progress.NoStage})

	h, err := sse.NewHandler(stream, sse.HandlerOptions{
		Authorize: func(r *http.Request) (string, error) { return r.PathValue("run"), nil },
	})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /runs/{run}/events", h)
	fmt.Println(stream.Key("r1"))
}
