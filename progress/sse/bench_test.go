package sse_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/internal/testenv"
	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/redisstream"
	"github.com/regengraph/regen/progress/sinktest"
	"github.com/regengraph/regen/progress/sse"
)

// benchSource returns the named source and its sink: "memory", or
// "redis" (a Stream on the shared Redis).
func benchSource(b *testing.B, name string) (progress.Sink, progress.Source) {
	b.Helper()
	if name == "memory" {
		m := progress.NewMemory(progress.MemoryOptions{})
		return m, m
	}
	r := testenv.NewRedis(b)
	s, err := redisstream.New(r.Client, redisstream.Options{KeyTemplate: r.Prefix + redisstream.RunIDPlaceholder, Logger: quiet()})
	require.NoError(b, err)
	b.Cleanup(func() { s.Close() })
	return s, s
}

// BenchmarkLatency measures the time from Publish to the Go SSE client's
// receipt, at 100 events/s (one op is one event; use -benchtime=1000x).
func BenchmarkLatency(b *testing.B) {
	for _, name := range []string{"memory", "redis"} {
		b.Run(name, func(b *testing.B) {
			sink, src := benchSource(b, name)
			h, err := sse.NewHandler(src, sse.HandlerOptions{Authorize: byPath, Logger: quiet()})
			require.NoError(b, err)
			server := httptest.NewServer(h)
			b.Cleanup(server.Close)
			run := sinktest.RunID(b)

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			lat := make([]time.Duration, 0, b.N)
			received := make(chan struct{}, b.N+1)
			var wg sync.WaitGroup
			wg.Go(func() {
				c := sse.NewClient(server.URL+"/runs/"+run, sse.ClientOptions{})
				_ = c.Events(ctx, func(e progress.Event) error {
					if e.Seq > 1 {
						lat = append(lat, time.Since(e.Time))
					}
					received <- struct{}{}
					return nil
				})
			})
			// Seq 1 opens the stream; then one event per tick.
			require.NoError(b, sink.Publish(ctx, progress.Event{RunID: run, Seq: 1, Time: time.Now(), Type: progress.RunStarted}))
			<-received
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			b.ResetTimer()
			for i := range b.N {
				<-tick.C
				e := progress.Event{RunID: run, Seq: uint64(i + 2), Time: time.Now(), Type: progress.NodeSucceeded, Node: "video/" + strconv.Itoa(i), Stage: 3, Attempt: 1, Done: i, Total: b.N}
				if err := sink.Publish(ctx, e); err != nil {
					b.Fatal(err)
				}
			}
			for range b.N {
				<-received
			}
			b.StopTimer()
			cancel()
			wg.Wait()
			slices.Sort(lat)
			b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
			b.ReportMetric(ms(lat[min(len(lat)-1, len(lat)*99/100)]), "p99-ms")
			b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
		})
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

const (
	fanoutHelperEnv = "REGEN_SSE_FANOUT_HELPER"
	fanoutClientsN  = 500
)

// BenchmarkFanout streams one run to 500 concurrent SSE clients; every
// event must reach every client, in order. One op is one event published;
// deliveries/s counts event×client. The clients run in a child process,
// and server-B/client is the growth of this process's heap and stacks
// from before the clients connected to after, divided by 500.
func BenchmarkFanout(b *testing.B) {
	for _, name := range []string{"memory", "redis"} {
		b.Run(name, func(b *testing.B) {
			sink, src := benchSource(b, name)
			h, err := sse.NewHandler(src, sse.HandlerOptions{Authorize: byPath, Logger: quiet(), MaxStreams: fanoutClientsN})
			require.NoError(b, err)
			server := httptest.NewServer(h)
			b.Cleanup(server.Close)
			run := sinktest.RunID(b)
			ctx := context.Background()
			require.NoError(b, sink.Publish(ctx, progress.Event{RunID: run, Seq: 1, Time: time.Now(), Type: progress.RunStarted}))
			before := memInUse()

			last := uint64(b.N) + 1
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(),
				fanoutHelperEnv+"=1",
				"FANOUT_URL="+server.URL+"/runs/"+run,
				"FANOUT_LAST="+strconv.FormatUint(last, 10),
			)
			cmd.Stderr = os.Stderr
			out, err := cmd.StdoutPipe()
			require.NoError(b, err)
			require.NoError(b, cmd.Start())
			defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }() // our own child, by PID
			lines := bufio.NewScanner(out)
			require.True(b, lines.Scan(), "helper: %v", lines.Err())
			require.Equal(b, "ready", lines.Text())
			require.Equal(b, fanoutClientsN, h.Stats().Active)
			perClient := float64(memInUse()-before) / fanoutClientsN

			b.ResetTimer()
			start := time.Now()
			events := make([]progress.Event, 0, b.N)
			for seq := uint64(2); seq <= last; seq++ {
				events = append(events, progress.Event{RunID: run, Seq: seq, Time: time.Now(), Type: progress.NodeSucceeded, Node: "n", Stage: 1, Attempt: 1})
			}
			for _, batch := range chunks(events, 64) {
				require.NoError(b, sink.Publish(ctx, batch...))
			}
			require.True(b, lines.Scan(), "helper: %v", lines.Err())
			elapsed := time.Since(start)
			b.StopTimer()
			require.Equal(b, "ok", lines.Text())
			require.NoError(b, cmd.Wait())
			b.ReportMetric(perClient, "server-B/client")
			b.ReportMetric(float64(b.N*fanoutClientsN)/elapsed.Seconds(), "deliveries/s")
		})
	}
}

func chunks(events []progress.Event, n int) [][]progress.Event {
	var out [][]progress.Event
	for len(events) > 0 {
		k := min(n, len(events))
		out = append(out, events[:k])
		events = events[k:]
	}
	return out
}

func memInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc + m.StackInuse
}

// fanoutClients is the child process of BenchmarkFanout: it connects the
// clients, says "ready" once each has seq 1, and "ok" once each has every
// event up to FANOUT_LAST in order. It returns the exit code.
func fanoutClients() int {
	url := os.Getenv("FANOUT_URL")
	last, err := strconv.ParseUint(os.Getenv("FANOUT_LAST"), 10, 64)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fanout helper:", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	transport := &http.Transport{MaxConnsPerHost: 0, MaxIdleConnsPerHost: fanoutClientsN}
	defer transport.CloseIdleConnections()
	hc := &http.Client{Transport: transport}
	var ready, done sync.WaitGroup
	errs := make(chan error, fanoutClientsN)
	for range fanoutClientsN {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			readyOnce := sync.OnceFunc(ready.Done)
			defer readyOnce()
			want := uint64(1)
			c := sse.NewClient(url, sse.ClientOptions{HTTPClient: hc})
			err := c.Stream(ctx, func(m sse.Message) error {
				seq, err := strconv.ParseUint(m.ID, 10, 64)
				if err != nil || seq != want {
					return fmt.Errorf("got id %q, want %d", m.ID, want)
				}
				if !strings.Contains(m.Data, `"seq":`+m.ID+",") {
					return fmt.Errorf("id %s: data %s", m.ID, m.Data)
				}
				if seq == 1 {
					readyOnce()
				}
				if seq == last {
					return io.EOF
				}
				want++
				return nil
			})
			if !errors.Is(err, io.EOF) {
				errs <- err
			}
		}()
	}
	ready.Wait()
	fmt.Println("ready")
	done.Wait()
	close(errs)
	for err := range errs {
		fmt.Fprintln(os.Stderr, "fanout helper: client:", err)
		return 1
	}
	fmt.Println("ok")
	return 0
}
