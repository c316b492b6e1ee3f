package sse_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/internal/testenv"
	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/redisstream"
	"github.com/regengraph/regen/progress/sinktest"
	"github.com/regengraph/regen/progress/sse"
)

// Browsers come and go on a run, each resuming with the last event ID it
// saw, while Redis is killed and restarted mid-run: without persistence
// (it comes back empty), or from a snapshot taken earlier (it comes back
// with the run's stream behind what the browsers saw), and with the run
// ending before or during the outage. Each browser gets every event after
// its start once, in order, up to the final one, and its reconnect after
// it gets 204.
func TestBrowsersAcrossARedisRestart(t *testing.T) {
	for _, tc := range []struct {
		name     string
		snapshot bool // SAVE before the outage: Redis restarts from it
		endDown  bool // the run ends while Redis is down
		small    bool // small pages and windows, and slow browsers: readers fall behind the window
	}{
		{"empty", false, false, false},
		{"snapshot, small windows", true, false, true},
		{"empty, ends while down", false, true, false},
		{"snapshot, ends while down", true, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			server := testenv.StartRedisServer(t)
			opts, err := redis.ParseURL(server.URL)
			require.NoError(t, err)
			opts.MaxRetries = -1
			opts.DialTimeout = 500 * time.Millisecond
			client := testenv.NewRedisClient(opts)
			t.Cleanup(func() { client.Close() })
			hist := progress.NewMemoryHistory()
			sopts := redisstream.Options{History: hist, BlockTime: 100 * time.Millisecond,
				RetryDelay: 20 * time.Millisecond, HistoryPoll: 500 * time.Millisecond, Logger: quiet()}
			if tc.small {
				sopts.PageSize, sopts.HubBuffer = 4, 8
			}
			stream, err := redisstream.New(client, sopts)
			require.NoError(t, err)
			t.Cleanup(func() { stream.Close() })
			buffered := progress.NewBuffered(stream, progress.BufferedOptions{Logger: quiet(), RetryDelay: time.Millisecond, Timeout: time.Second, Attempts: 2})
			t.Cleanup(func() { buffered.Close(context.Background()) })
			// The archive lags Redis by up to 30ms, behind a Buffered of
			// its own: the stream's readers hold the gaps it has yet to fill.
			toHist := progress.NewArchive(hist)
			archive := progress.NewBuffered(progress.SinkFunc(func(ctx context.Context, events ...progress.Event) error {
				time.Sleep(time.Duration(rand.IntN(30)) * time.Millisecond)
				return toHist.Publish(ctx, events...)
			}), progress.BufferedOptions{Logger: quiet()})
			t.Cleanup(func() { archive.Close(context.Background()) })
			sink := progress.NewFanout(archive, buffered)
			h, err := sse.NewHandler(stream, sse.HandlerOptions{Authorize: byPath, CloseOnFinal: true, Retry: 10 * time.Millisecond,
				KeepAlive: 200 * time.Millisecond, Logger: quiet()})
			require.NoError(t, err)
			hs := httptest.NewServer(h)
			t.Cleanup(hs.Close)

			run := sinktest.RunID(t)
			const n = 150
			all := sinktest.Events(run, 1, n)
			for i := range all {
				all[i].Type = progress.Message
			}
			all[n-1].Type = progress.RunFinished
			ctx := context.Background()
			rng := rand.New(rand.NewPCG(5, 6))
			b := &browsers{t: t, url: hs.URL + "/runs/" + run, n: n, slow: tc.small}
			down, up := 60, 110
			if tc.endDown {
				down, up = 100, n+1
			}
			for i := 0; i < n; i++ {
				switch i {
				case 40:
					if tc.snapshot {
						require.NoError(t, client.Save(ctx).Err())
					}
				case down:
					server.Kill()
				case up:
					require.NoError(t, buffered.Flush(ctx))
					server.Restart()
				}
				all[i].Time = time.Now() // as the executor stamps it: readers hold young gaps
				require.NoError(t, sink.Publish(ctx, all[i]))
				if rng.IntN(5) == 0 {
					b.start(uint64(rng.IntN(i+2)), rng.IntN(3) == 0, rng.Int64())
				}
				time.Sleep(time.Duration(rng.IntN(8)) * time.Millisecond)
			}
			if tc.endDown {
				// Browsers that connect while Redis is down, then up again.
				for range 5 {
					b.start(uint64(rng.IntN(n+1)), rng.IntN(2) == 0, rng.Int64())
				}
				time.Sleep(300 * time.Millisecond)
				require.NoError(t, buffered.Flush(ctx))
				server.Restart()
			}
			for range 5 {
				b.start(uint64(rng.IntN(n+1)), rng.IntN(2) == 0, rng.Int64())
			}
			b.wait()
		})
	}
}

// browsers are the SSE clients of one run of n events in a restart test.
type browsers struct {
	t    *testing.T
	url  string
	n    uint64
	slow bool // each browser takes 3ms an event
	wg   sync.WaitGroup
	mu   sync.Mutex
	errs []error
}

// start follows the run from after, as a browser that reconnects with
// Last-Event-ID after; if leave, it drops its connection once, at an event
// picked by seed, and resumes with a new client from that event.
func (b *browsers) start(after uint64, leave bool, seed int64) {
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		if err := b.follow(after, leave, seed); err != nil {
			b.mu.Lock()
			b.errs = append(b.errs, fmt.Errorf("browser from %d (leave %v): %w", after, leave, err))
			b.mu.Unlock()
		}
	}()
}

var errLeave = errors.New("leave")

func (b *browsers) follow(after uint64, leave bool, seed int64) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*wait)
	defer cancel()
	next := after + 1
	leaveAt := uint64(0)
	if leave && after < b.n {
		leaveAt = after + 1 + rand.New(rand.NewPCG(uint64(seed), 0)).Uint64N(b.n-after)
	}
	id := ""
	if after > 0 {
		id = strconv.FormatUint(after, 10)
	}
	for {
		c := sse.NewClient(b.url, sse.ClientOptions{LastEventID: id, Retry: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
		err := c.Events(ctx, func(e progress.Event) error {
			if e.Seq != next {
				return fmt.Errorf("got seq %d, want %d", e.Seq, next)
			}
			next++
			if b.slow {
				time.Sleep(3 * time.Millisecond)
			}
			if e.Seq == leaveAt {
				leaveAt = 0
				return errLeave
			}
			return nil
		})
		if errors.Is(err, errLeave) {
			id = strconv.FormatUint(next-1, 10) // the event it left at was taken
			continue
		}
		if err != nil {
			return fmt.Errorf("%w (next %d)", err, next)
		}
		if next != b.n+1 {
			return fmt.Errorf("stream ended with 204 before the final event (next %d)", next)
		}
		return nil
	}
}

func (b *browsers) wait() {
	b.wg.Wait()
	for _, err := range b.errs {
		b.t.Error(err)
	}
}
