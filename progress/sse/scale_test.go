package sse_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/internal/testenv"
	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/redisstream"
	"github.com/regengraph/regen/progress/sinktest"
	"github.com/regengraph/regen/progress/sse"
)

// The load checks below serve runs on Redis to many SSE clients through
// httptest on loopback, wired as a production host wires them: a private
// redis-server (so that INFO commandstats counts this test's commands
// alone), the archive beside a Buffered Redis sink, and a handler with
// CloseOnFinal. They assert correctness (each client gets every event
// once, in order), bounded costs and that everything is released, never
// timings; the figures they measure go to the test log.

// sendBufferListener sets the send buffer of the connections it accepts.
type sendBufferListener struct {
	net.Listener
	size int
}

func (l sendBufferListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(l.size)
	}
	return c, err
}

// scale returns the number of clients of a load check: fewer under the
// race detector, which makes each delivery many times slower.
func scale(race, norace int) int {
	if raceEnabled {
		return race
	}
	return norace
}

// scaleRig is one production-like wiring on a private redis-server.
type scaleRig struct {
	server   *testenv.RedisServer
	client   *redis.Client
	hist     *replayCountingHistory
	stream   *redisstream.Stream
	buffered *progress.Buffered
	sink     progress.Sink
	handler  *sse.Handler
	http     *httptest.Server
	hc       *http.Client
}

type scaleOptions struct {
	noHistory bool
	pool      int // the Redis client's PoolSize; 0: go-redis's default
	stream    redisstream.Options
	handler   sse.HandlerOptions
	// sendBuffer, if positive, is the server's socket send buffer, so
	// that a client that stops reading stalls its stream soon.
	sendBuffer int
}

func newScaleRig(t *testing.T, o scaleOptions) *scaleRig {
	t.Helper()
	rig := &scaleRig{server: testenv.StartRedisServer(t)}
	ropts, err := redis.ParseURL(rig.server.URL)
	require.NoError(t, err)
	ropts.MaxRetries = -1
	ropts.DialTimeout = 500 * time.Millisecond
	ropts.PoolSize = o.pool
	rig.client = testenv.NewRedisClient(ropts)
	t.Cleanup(func() { rig.client.Close() })

	sopts := o.stream
	if !o.noHistory {
		rig.hist = &replayCountingHistory{MemoryHistory: progress.NewMemoryHistory()}
		sopts.History = rig.hist
	}
	if sopts.BlockTime == 0 {
		sopts.BlockTime = 100 * time.Millisecond
	}
	if sopts.RetryDelay == 0 {
		sopts.RetryDelay = 20 * time.Millisecond
	}
	sopts.Logger = quiet()
	rig.stream, err = redisstream.New(rig.client, sopts)
	require.NoError(t, err)
	t.Cleanup(func() { rig.stream.Close() })
	// Timeout bounds a write to a Redis that answers (one that is down
	// fails at once): the checks of events that missed Redis count a
	// batch that took longer twice, which a loaded machine made of a
	// bound of 2s (TestScaleStalledClients: 256 events, a batch, went to
	// the fallback).
	rig.buffered = progress.NewBuffered(rig.stream, progress.BufferedOptions{
		Logger: quiet(), Timeout: wait, RetryDelay: 10 * time.Millisecond, Attempts: 2,
	})
	t.Cleanup(func() { rig.buffered.Close(context.Background()) })
	rig.sink = rig.buffered
	if rig.hist != nil {
		rig.sink = progress.NewFanout(progress.NewArchive(rig.hist), rig.buffered)
	}

	hopts := o.handler
	hopts.Authorize = byPath
	hopts.CloseOnFinal = true
	hopts.Logger = quiet()
	if hopts.Retry == 0 {
		hopts.Retry = time.Millisecond
	}
	if hopts.MaxStreams == 0 {
		hopts.MaxStreams = 10000
	}
	rig.handler, err = sse.NewHandler(rig.stream, hopts)
	require.NoError(t, err)
	rig.http = httptest.NewUnstartedServer(rig.handler)
	if o.sendBuffer > 0 {
		rig.http.Listener = sendBufferListener{rig.http.Listener, o.sendBuffer}
	}
	rig.http.Start()
	t.Cleanup(rig.http.Close)
	transport := &http.Transport{MaxIdleConnsPerHost: 4096}
	t.Cleanup(transport.CloseIdleConnections)
	rig.hc = &http.Client{Transport: transport}
	return rig
}

// replayCountingHistory counts its Replay and LastEvent calls, each of
// which is a query to a host's database.
type replayCountingHistory struct {
	*progress.MemoryHistory
	replays, lookups atomic.Int64
}

func (h *replayCountingHistory) LastEvent(ctx context.Context, run string) (progress.Event, bool, error) {
	h.lookups.Add(1)
	return h.MemoryHistory.LastEvent(ctx, run)
}

func (h *replayCountingHistory) Replay(ctx context.Context, run string, after uint64, fn func(progress.Event) error) error {
	h.replays.Add(1)
	return h.MemoryHistory.Replay(ctx, run, after, fn)
}

// commandStats returns the calls of each command the private server has
// run since it started (or since its last restart), from INFO
// commandstats, by lowercase name.
func (rig *scaleRig) commandStats(t *testing.T) map[string]int {
	t.Helper()
	info, err := rig.client.Info(context.Background(), "commandstats").Result()
	require.NoError(t, err)
	out := make(map[string]int)
	for line := range strings.Lines(info) {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":calls=")
		if !ok {
			continue
		}
		calls, _, _ := strings.Cut(rest, ",")
		n, err := strconv.Atoi(calls)
		require.NoError(t, err, "INFO line %q", line)
		out[strings.TrimPrefix(name, "cmdstat_")] = n
	}
	return out
}

// delta returns after - before, per command, without the zeros.
func delta(before, after map[string]int) map[string]int {
	out := make(map[string]int)
	for k, v := range after {
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// follower is one browser tab: a Go SSE client that follows a run until
// its final event and the 204 of its reconnect, recording each Seq.
type follower struct {
	c    *sse.Client
	from uint64
	mu   sync.Mutex
	seqs []uint64
	done chan error
}

func (rig *scaleRig) follow(ctx context.Context, run string, from uint64) *follower {
	f := &follower{from: from, done: make(chan error, 1)}
	opts := sse.ClientOptions{HTTPClient: rig.hc, Retry: time.Millisecond}
	if from > 0 {
		opts.LastEventID = strconv.FormatUint(from, 10)
	}
	f.c = sse.NewClient(rig.http.URL+"/runs/"+run, opts)
	go func() {
		// The IDs alone: decoding every event's JSON in this process
		// would cost more than serving it.
		f.done <- f.c.Stream(ctx, func(m sse.Message) error {
			seq, err := strconv.ParseUint(m.ID, 10, 64)
			if err != nil || !strings.Contains(m.Data, `"seq":`+m.ID+",") {
				return fmt.Errorf("message id %q with data %.80s", m.ID, m.Data)
			}
			f.mu.Lock()
			f.seqs = append(f.seqs, seq)
			f.mu.Unlock()
			return nil
		})
	}()
	return f
}

func (f *follower) received() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.seqs)
}

// scaleWait bounds each wait of the scale tests for their clients: many
// clients under the race detector on a loaded 2-core machine take far
// longer than one (a bound, never a timing assertion).
const scaleWait = 6 * wait

// check waits for the follower to end with the run's 204 and checks that
// it received every event after its start up to last, once, in order.
func (f *follower) check(t *testing.T, name string, last uint64) {
	t.Helper()
	select {
	case err := <-f.done:
		f.mu.Lock()
		n, tailSeqs := len(f.seqs), f.seqs[max(0, len(f.seqs)-3):]
		f.mu.Unlock()
		require.NoError(t, err, "%s: its stream must end with the run's final event and a 204; it has %d events, last %v, %d connects",
			name, n, tailSeqs, f.c.Connects())
	case <-time.After(scaleWait):
		t.Fatalf("%s: received %d events in %v, not every event up to %d", name, f.received(), scaleWait, last)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if diff := cmp.Diff(sinktest.Span(f.from+1, last), f.seqs); diff != "" {
		t.Errorf("%s, from %d: gap or duplicate (-want +got):\n%s", name, f.from, diff)
	}
}

// released waits until the handler serves no stream, the Stream has no
// reader and no shared reader, and the goroutines are back to about what
// they were before (the HTTP clients' idle connections closed).
func (rig *scaleRig) released(t *testing.T, goroutinesBefore int) {
	t.Helper()
	waitFor(t, "every stream, reader and shared reader to be released", func() bool {
		st := rig.stream.Stats()
		return rig.handler.Stats().Active == 0 && st.Readers == 0 && st.Runs == 0
	})
	rig.hc.CloseIdleConnections()
	rig.http.CloseClientConnections()
	waitFor(t, "the goroutines to return to what they were before the clients", func() bool {
		return runtime.NumGoroutine() <= goroutinesBefore+5
	})
}

// startRun makes the events of a new run, n of them, the last one final,
// and publishes the first stored ones through the rig's sink, flushed.
func (rig *scaleRig) startRun(ctx context.Context, t *testing.T, n, stored uint64) (string, []progress.Event) {
	t.Helper()
	run := sinktest.RunID(t)
	all := sinktest.Events(run, 1, n)
	all[n-1].Type = progress.RunFinished
	publishRun(t, rig.sink, all[:stored])
	require.NoError(t, rig.buffered.Flush(ctx))
	return run, all
}

// publishRun publishes events one by one, as the executor does.
func publishRun(t *testing.T, sink progress.Sink, events []progress.Event) {
	t.Helper()
	for _, e := range events {
		require.NoError(t, sink.Publish(context.Background(), e))
	}
}

// One run followed live by many clients: every client gets every event
// once, in order; the run's Redis reads are one shared XREAD at a time,
// whatever the number of clients; the handler starts no goroutine per
// client of its own; and everything is released when the run ends.
func TestScaleManyClientsOneRun(t *testing.T) {
	clients := scale(200, 1000)
	const events = 120
	rig := newScaleRig(t, scaleOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*scaleWait)
	defer cancel()
	run, all := rig.startRun(ctx, t, events, 10)

	goroutines := runtime.NumGoroutine()
	var mem runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&mem)
	heapBefore := mem.HeapAlloc + mem.StackInuse
	fs := make([]*follower, clients)
	for i := range fs {
		fs[i] = rig.follow(ctx, run, uint64(i%10))
	}
	waitFor(t, "every client to follow the run", func() bool {
		return rig.stream.Stats().Readers == clients && rig.stream.Stats().Runs == 1
	})
	for _, f := range fs {
		waitFor(t, "every client to have the stored events", func() bool { return f.received() == int(10-f.from) })
	}
	runtime.GC()
	runtime.ReadMemStats(&mem)
	perClient := float64(mem.HeapAlloc+mem.StackInuse-heapBefore) / float64(clients)
	gPerClient := float64(runtime.NumGoroutine()-goroutines) / float64(clients)
	t.Logf("%d idle clients on one run: %.0f bytes and %.1f goroutines per client (server and client sides, in one process)",
		clients, perClient, gPerClient)
	// The Go client costs one goroutine and the transport's two; the
	// server its connection's goroutine (which runs the handler) and its
	// background read: no more, or the handler or the Stream started one
	// per client.
	assert.LessOrEqual(t, gPerClient, 5.1, "goroutines per client")

	before := rig.commandStats(t)
	publishRun(t, rig.sink, all[10:])
	for i, f := range fs {
		f.check(t, fmt.Sprintf("client %d", i), events)
	}
	live := delta(before, rig.commandStats(t))
	t.Logf("Redis commands while %d clients followed %d events live: %v", clients, events-10, live)
	assert.LessOrEqual(t, live["xread"], 2*(events-10)+10, "XREADs: one shared reader for the run, not one per client")
	// INFO commandstats counts the commands that a script calls too:
	// each Publish call without the run's final event sets IdleTTL with
	// an EVAL whose script reads the stream with one XRANGE (and sets
	// PEXPIRE). The Buffered sink makes a call of each batch, and splits
	// the events into more than one batch when its flush runs while they
	// are still being published (under -race, say): those XRANGEs are the
	// writer's, not a reader's.
	readerRanges := live["xrange"] - live["eval"]
	assert.Zero(t, readerRanges, "XRANGEs: no client fell behind the shared reader's window")
	rig.released(t, goroutines)
}

// All the clients of a run drop at once, again and again, and reconnect
// with Last-Event-ID while the run goes on, some from IDs that the
// trimmed stream no longer holds, and the run ends during the last
// storm: each client gets every event once, in order, and its reconnect
// after the end is answered 204. Each reconnect costs Redis a bounded
// number of commands.
func TestScaleReconnectStorm(t *testing.T) {
	t.Run("with an archive, the stream trimmed", func(t *testing.T) { reconnectStorm(t, true) })
	// Without an archive, readers join the run's shared reader without
	// a replay of their own when its window holds their position.
	t.Run("without an archive", func(t *testing.T) { reconnectStorm(t, false) })
}

func reconnectStorm(t *testing.T, archive bool) {
	clients := scale(60, 300)
	const events, storms = 600, 5
	o := scaleOptions{noHistory: !archive}
	if archive {
		o.stream.MaxLen = 100
	}
	rig := newScaleRig(t, o)
	ctx, cancel := context.WithTimeout(context.Background(), 2*scaleWait)
	defer cancel()
	run, all := rig.startRun(ctx, t, events, 400)
	if archive {
		first, err := rig.client.XRangeN(ctx, rig.stream.Key(run), "-", "+", 1).Result()
		require.NoError(t, err)
		require.NotEqual(t, "0-1", first[0].ID, "the stream must be trimmed")
	}

	goroutines := runtime.NumGoroutine()
	starts := []uint64{0, 1, 50, 250, 399, 400}
	fs := make([]*follower, clients)
	for i := range fs {
		fs[i] = rig.follow(ctx, run, starts[i%len(starts)])
	}
	waitFor(t, "every client to follow the run", func() bool { return rig.stream.Stats().Readers == clients })

	before := rig.commandStats(t)
	var replays, lookups int64
	if archive {
		replays, lookups = rig.hist.replays.Load(), rig.hist.lookups.Load()
	}
	step := (events - 400) / storms
	for i := range storms {
		if i > 0 {
			// Every client back after the storm before: under load the
			// handler may still count a stream whose connection the last
			// storm closed, and storms would then merge.
			waitFor(t, "the clients to reconnect", func() bool {
				for _, f := range fs {
					if f.c.Connects() <= i {
						return false
					}
				}
				return rig.handler.Stats().Active == clients
			})
		}
		publishRun(t, rig.sink, all[400+i*step:400+(i+1)*step])
		rig.http.CloseClientConnections()
	}
	connects := 0
	for i, f := range fs {
		f.check(t, fmt.Sprintf("client %d", i), events)
		connects += f.c.Connects()
	}
	cmds := delta(before, rig.commandStats(t))
	if archive {
		replays, lookups = rig.hist.replays.Load()-replays, rig.hist.lookups.Load()-lookups
	}
	t.Logf("%d clients, %d storms: %d streams opened; Redis commands %v; archive reads %d, lookups %d",
		clients, storms, connects, cmds, replays, lookups)
	assert.GreaterOrEqual(t, connects, storms*clients, "each storm made every client reconnect")
	reads := cmds["xrange"] + cmds["xrevrange"] + cmds["xread"]
	assert.LessOrEqual(t, reads, 4*(connects+clients)+2*events, "reads per reconnect")
	rig.released(t, goroutines)
}

// Many short runs at once, each with a few followers that connect before
// the run starts: every follower gets its run's events once, in order,
// and when the runs have ended no shared reader, reader, stream or
// goroutine is left, and the Redis client holds no more connections than
// its pool allows.
func TestScaleManyRuns(t *testing.T) {
	runs := scale(40, 200)
	const followers, events = 3, 20
	// Far more runs with followers than the pool has connections: only
	// MaxBlockingReads of their shared readers (half the pool) block in
	// XREAD, so publishing always finds a connection.
	rig := newScaleRig(t, scaleOptions{pool: 8, stream: redisstream.Options{BlockTime: time.Second}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*scaleWait)
	defer cancel()
	goroutines := runtime.NumGoroutine()
	before := rig.commandStats(t)
	ids := make([]string, runs)
	fs := make([][]*follower, runs)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%d", sinktest.RunID(t), i)
		for range followers {
			fs[i] = append(fs[i], rig.follow(ctx, ids[i], 0))
		}
	}
	waitFor(t, "every follower to wait for its run", func() bool {
		return rig.stream.Stats().Readers == runs*followers && rig.stream.Stats().Runs == runs
	})
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Go(func() {
			all := sinktest.Events(id, 1, events)
			all[events-1].Type = progress.RunFinished
			for _, e := range all {
				if err := rig.sink.Publish(ctx, e); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	for i := range fs {
		for j, f := range fs[i] {
			f.check(t, fmt.Sprintf("run %d, follower %d", i, j), events)
		}
	}
	cmds := delta(before, rig.commandStats(t))
	ps := rig.client.PoolStats()
	bs := rig.buffered.Stats()
	t.Logf("%d runs × %d followers: Redis commands %v; pool %+v; buffered %+v", runs, followers, cmds, *ps, bs)
	assert.Zero(t, bs.Fallback, "events that missed Redis")
	assert.Zero(t, ps.Timeouts, "calls that waited out the pool's PoolTimeout")
	rig.released(t, goroutines)
	assert.LessOrEqual(t, int(rig.client.PoolStats().TotalConns), rig.client.Options().PoolSize)
}

// Redis is killed and restarted empty on the same port while many
// clients follow a run, and the run goes on meanwhile: every client gets
// every event once, in order, those Redis lost from the archive, and the
// run's shared reader, not each client, waits out the outage.
func TestScaleRedisRestart(t *testing.T) {
	clients := scale(60, 500)
	const events = 90
	rig := newScaleRig(t, scaleOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*scaleWait)
	defer cancel()
	run, all := rig.startRun(ctx, t, events, 10)
	goroutines := runtime.NumGoroutine()
	fs := make([]*follower, clients)
	for i := range fs {
		fs[i] = rig.follow(ctx, run, uint64(i%10))
	}
	waitFor(t, "every client to follow the run", func() bool { return rig.stream.Stats().Readers == clients })

	publishRun(t, rig.sink, all[10:30])
	require.NoError(t, rig.buffered.Flush(ctx))
	for _, f := range fs {
		waitFor(t, "every client to have the events before the outage", func() bool { return f.received() == int(30-f.from) })
	}
	replays := rig.hist.replays.Load()
	rig.server.Kill()
	publishRun(t, rig.sink, all[30:60])
	require.NoError(t, rig.buffered.Flush(ctx))
	rig.server.Restart()
	publishRun(t, rig.sink, all[60:])
	for i, f := range fs {
		f.check(t, fmt.Sprintf("client %d", i), events)
	}
	replays = rig.hist.replays.Load() - replays
	st := rig.stream.Stats()
	t.Logf("%d clients through a Redis restart: %d reads of the archive; stream %+v, buffered %+v, commands since the restart %v",
		clients, replays, st, rig.buffered.Stats(), rig.commandStats(t))
	assert.Positive(t, rig.buffered.Stats().Fallback, "events published while Redis was down")
	assert.Positive(t, st.ReadErrors, "the outage was seen")
	assert.LessOrEqual(t, replays, int64(3), "reads of the archive to fill what Redis lost: one per run, not one per client")
	assert.Less(t, st.ReadErrors, uint64(clients), "read errors: the run's shared reader waited out the outage, not each client")
	rig.released(t, goroutines)
}

// Some clients stop reading (a phone that went to sleep with the tab
// open) while many others follow the same run: their writes block, and
// nothing else waits for them. The others get every event, the run's
// events reach Redis, and the stalled streams still hold their readers
// until their connections go.
func TestScaleStalledClients(t *testing.T) {
	clients := scale(30, 300)
	const stalled, events = 5, 300
	rig := newScaleRig(t, scaleOptions{sendBuffer: 16 << 10, handler: sse.HandlerOptions{WriteTimeout: time.Hour}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*scaleWait)
	defer cancel()
	run := sinktest.RunID(t)
	all := sinktest.Events(run, 1, events)
	for i := range all {
		all[i].Message = strings.Repeat("x", 1<<10) // 300 KiB in all
	}
	all[events-1].Type = progress.RunFinished
	publishRun(t, rig.sink, all[:1])
	require.NoError(t, rig.buffered.Flush(ctx))
	goroutines := runtime.NumGoroutine()

	var conns []net.Conn
	for range stalled {
		d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4<<10) })
			return errors.Join(err, serr)
		}}
		conn, err := d.DialContext(ctx, "tcp", rig.http.Listener.Addr().String())
		require.NoError(t, err)
		conns = append(conns, conn)
		_, err = fmt.Fprintf(conn, "GET /runs/%s HTTP/1.1\r\nHost: x\r\n\r\n", run)
		require.NoError(t, err) // and never read
	}
	fs := make([]*follower, clients)
	for i := range fs {
		fs[i] = rig.follow(ctx, run, 0)
	}
	waitFor(t, "every client to follow the run", func() bool { return rig.stream.Stats().Readers == clients+stalled })

	publishRun(t, rig.sink, all[1:])
	require.NoError(t, rig.buffered.Flush(ctx), "the run's events reach Redis")
	for i, f := range fs {
		f.check(t, fmt.Sprintf("client %d", i), events)
	}
	assert.Zero(t, rig.buffered.Stats().Fallback, "events that missed Redis")
	assert.Equal(t, stalled, rig.handler.Stats().Active, "the stalled streams are still open, their writes blocked")
	assert.Less(t, rig.handler.Stats().Events, uint64(clients*events+stalled*events), "the stalled clients took every event")
	for _, c := range conns {
		c.Close()
	}
	rig.released(t, goroutines)
}
