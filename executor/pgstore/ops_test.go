package pgstore_test

// Operational tests: a host running regen on Postgres, with several
// executors (and processes) sharing one store and one graph key.

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/pgstore"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/internal/testenv"
)

// provider is a generator like a real AI provider's: each call gives a
// new output (a random nonce), made from the request's inputs. It counts
// its calls by node, and a hook may hold or fail a call.
type provider struct {
	mu    sync.Mutex
	calls map[string]int
	// hook, if set, runs before a call returns; a non-nil error fails it.
	hook func(ctx context.Context, req executor.Request) error
}

func newProvider() *provider { return &provider{calls: map[string]int{}} }

// holdKind makes the calls of kind's nodes wait until release is closed
// (or their context ends), each first signalling started, which holds one
// signal.
func (p *provider) holdKind(kind string) (started chan struct{}, release chan struct{}) {
	started, release = make(chan struct{}, 1), make(chan struct{})
	p.hook = func(ctx context.Context, req executor.Request) error {
		if req.ID.Kind != kind {
			return nil
		}
		select {
		case started <- struct{}{}:
		default:
		}
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return started, release
}

func (p *provider) Generate(ctx context.Context, req executor.Request) (executor.Asset, error) {
	p.mu.Lock()
	p.calls[req.NodeID]++
	hook := p.hook
	p.mu.Unlock()
	if hook != nil {
		if err := hook(ctx, req); err != nil {
			return executor.Asset{}, err
		}
	}
	var nonce [8]byte
	_, _ = rand.Read(nonce[:])
	data := fmt.Appendf(nil, "%s@%d run %s nonce %x", req.NodeID, req.Rev, req.RunID, nonce)
	for _, d := range req.Deps {
		data = fmt.Appendf(data, " <%s>", d.Asset.Hash)
	}
	sum := sha256.Sum256(data)
	a := executor.Asset{Data: data, Hash: hex.EncodeToString(sum[:])}
	if req.ID.Kind == graph.KindNarration {
		a.Length = graph.SegmentLength
	}
	return a, nil
}

// calledFor returns the nodes called, sorted.
func (p *provider) called() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int, len(p.calls))
	for k, v := range p.calls {
		out[k] = v
	}
	return out
}

func (p *provider) registry() executor.Registry {
	reg := executor.Registry{}
	for _, k := range graph.Lecture().Kinds {
		reg[k.Name] = p
	}
	return reg
}

// checkCurrent checks that every node of g that is clean in snap has its
// asset, and was made from the outputs that snap holds for its
// dependencies, all clean; and, if all is set, that every node is clean.
// It returns the problems found.
func checkCurrent(t *testing.T, s *pgstore.Store, g *graph.Graph, snap executor.Snapshot, all bool) []string {
	t.Helper()
	var problems []string
	for n := range graph.Node(g.Len()) {
		id := g.NodeID(n)
		st, ok := snap.States[id]
		if !ok || st.Status != dirty.StatusClean {
			if all {
				problems = append(problems, fmt.Sprintf("%s is %v, not clean", id, st.Status))
			}
			continue
		}
		exists, err := s.Exists(t.Context(), st.AssetRef)
		require.NoError(t, err)
		if !exists {
			problems = append(problems, fmt.Sprintf("%s is clean without its asset %q", id, st.AssetRef))
		}
		var hashes []string
		for _, d := range g.Deps(n) {
			ds := snap.States[g.NodeID(d)]
			if ds.Status != dirty.StatusClean {
				problems = append(problems, fmt.Sprintf("%s is clean, but its dependency %s is %v", id, g.NodeID(d), ds.Status))
			}
			hashes = append(hashes, ds.OutputHash)
		}
		if want := dirty.InputHash(st.Rev, hashes); want != st.InputHash {
			problems = append(problems, fmt.Sprintf("%s is clean, but made from inputs that are not current", id))
		}
	}
	return problems
}

// build returns the lecture graph of that many seconds.
func build(t *testing.T, seconds int) *graph.Graph {
	t.Helper()
	g, err := graph.Build(graph.Lecture(), seconds)
	require.NoError(t, err)
	return g
}

// childEnv is the environment variable that makes the test binary run
// opsChild instead of the tests: the JSON of a childConfig.
const childEnv = "REGEN_PGSTORE_OPS_CHILD"

// childConfig tells a child process what to run.
type childConfig struct {
	Schema   string `json:"schema"`
	GraphKey string `json:"graphKey"`
	Seconds  int    `json:"seconds"`
	// Hold lists node IDs whose generator blocks until the process is
	// killed.
	Hold []string `json:"hold"`
	// Jitter makes every call take up to 3 ms.
	Jitter bool `json:"jitter"`
	// Lock makes the child take the graph key's lock (LockGraph) before
	// it starts the run, and print "locked"; it never unlocks it.
	Lock bool `json:"lock"`
}

// opsChild is the second process of the multi-process tests: TestMain
// runs it instead of the tests when childEnv is set. It starts a run on
// the store and prints "run <id>", then "started <node>" as generators
// start, and blocks in the held nodes until it is killed. It returns an
// exit status only when it cannot start.
func opsChild(raw string) int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "ops child:", err)
		return 1
	}
	var cfg childConfig
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		return fail(err)
	}
	pool, err := pgxpool.New(context.Background(), testenv.PostgresURL())
	if err != nil {
		return fail(err)
	}
	s, err := pgstore.New(pool, pgstore.Options{Schema: cfg.Schema})
	if err != nil {
		return fail(err)
	}
	g, err := graph.Build(graph.Lecture(), cfg.Seconds)
	if err != nil {
		return fail(err)
	}
	hold := map[string]bool{}
	for _, id := range cfg.Hold {
		hold[id] = true
	}
	var out sync.Mutex
	say := func(format string, args ...any) {
		out.Lock()
		defer out.Unlock()
		fmt.Printf(format+"\n", args...)
	}
	p := newProvider()
	p.hook = func(ctx context.Context, req executor.Request) error {
		say("started %s", req.NodeID)
		if hold[req.NodeID] {
			select {} // until killed
		}
		if cfg.Jitter {
			return jitter(ctx, req)
		}
		return nil
	}
	e, err := executor.New(executor.Options{Generators: p.registry(), States: s, Assets: s, Runs: s})
	if err != nil {
		return fail(err)
	}
	if cfg.Lock {
		if _, err := s.LockGraph(context.Background(), cfg.GraphKey); err != nil {
			return fail(err)
		}
		say("locked")
	}
	r, err := e.Start(context.Background(), executor.RunRequest{GraphKey: cfg.GraphKey, Graph: g, TriggeredBy: "child"})
	if err != nil {
		return fail(err)
	}
	say("run %s", r.ID())
	select {} // until killed
}

// child is a process running opsChild.
type child struct {
	cmd   *exec.Cmd
	lines chan string
	done  chan struct{}
}

// startChild starts the child process; it is killed when the test ends.
func startChild(t *testing.T, cfg childConfig) *child {
	t.Helper()
	raw, err := json.Marshal(cfg)
	require.NoError(t, err)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"="+string(raw))
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	c := &child{cmd: cmd, lines: make(chan string, 1024), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case c.lines <- sc.Text():
			default: // nobody reads this many
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	t.Cleanup(func() { c.kill(t) })
	return c
}

// kill kills the child with SIGKILL (its own PID only) and waits for it.
func (c *child) kill(t *testing.T) {
	t.Helper()
	if c.cmd.ProcessState != nil {
		return
	}
	_ = c.cmd.Process.Kill()
	<-c.done
	_ = c.cmd.Wait()
}

// waitLine waits for a line with the prefix and returns the rest.
func (c *child) waitLine(t *testing.T, prefix string) string {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		select {
		case l := <-c.lines:
			if rest, ok := strings.CutPrefix(l, prefix); ok {
				return rest
			}
		case <-c.done:
			t.Fatalf("the child exited before printing %q", prefix)
		case <-deadline:
			t.Fatalf("the child printed no %q within 60s", prefix)
		}
	}
}

// waitStates polls the store until cond holds for its snapshot.
func waitStates(t *testing.T, s *pgstore.Store, key string, cond func(executor.Snapshot) bool) executor.Snapshot {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		snap, err := s.Load(t.Context(), key)
		require.NoError(t, err)
		if cond(snap) {
			return snap
		}
		if time.Now().After(deadline) {
			t.Fatalf("the store did not reach the state awaited within 60s: %d states at version %d", len(snap.States), snap.Version)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// downstream returns the nodes not clean in snap, and all that depend on
// them: what a run without marks regenerates.
func downstream(g *graph.Graph, snap executor.Snapshot) map[string]bool {
	out := map[string]bool{}
	var visit func(n graph.Node)
	visit = func(n graph.Node) {
		if out[g.NodeID(n)] {
			return
		}
		out[g.NodeID(n)] = true
		for _, d := range g.Dependents(n) {
			visit(d)
		}
	}
	for n := range graph.Node(g.Len()) {
		if st, ok := snap.States[g.NodeID(n)]; !ok || st.Status != dirty.StatusClean {
			visit(n)
		}
	}
	return out
}

// TestOpsCrashedProcessIsResumed runs a lecture in a second process,
// edits two narrations from this one while the child's videos run, kills
// the child with SIGKILL, and finishes the run from this process, by
// Resume and by RerunFailed: no node that the child committed clean is
// regenerated unless an edit made it stale, the edits are kept, the
// child's record ends interrupted, and every node ends clean, with its
// asset, made from current inputs.
func TestOpsCrashedProcessIsResumed(t *testing.T) {
	t.Parallel() // each test has its own schema
	for _, tc := range []struct {
		name   string
		finish func(e *executor.Executor, ctx context.Context, g *graph.Graph, id string, opts ...executor.ResumeOptions) (*executor.Run, error)
	}{
		{"Resume", (*executor.Executor).Resume},
		{"RerunFailed", (*executor.Executor).RerunFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, pg := newStore(t)
			g := build(t, 60)
			key := testenv.UniqueName(t)
			// Two videos hang until the child dies; the third slot of the
			// videos' batch key makes the others.
			c := startChild(t, childConfig{Schema: pg.Schema, GraphKey: key, Seconds: 60,
				Hold: []string{"asset:video:segment[1]", "asset:video:segment[3]"}})
			runID := c.waitLine(t, "run ")
			even := []string{"asset:video:segment[0]", "asset:video:segment[2]", "asset:video:segment[4]", "asset:video:segment[5]"}
			waitStates(t, s, key, func(snap executor.Snapshot) bool {
				for _, id := range even {
					if snap.States[id].Status != dirty.StatusClean {
						return false
					}
				}
				return true
			})

			// Edits from this process while the child runs: one narration
			// whose video was made, one whose video hangs.
			p := newProvider()
			e := newExecutor(t, s, p.registry())
			edited := []string{"asset:narration:segment[2]", "asset:narration:segment[3]"}
			_, err := e.Edit(t.Context(), g, key, edited...)
			require.NoError(t, err)

			c.kill(t)
			snap, err := s.Load(t.Context(), key)
			require.NoError(t, err)
			want := downstream(g, snap)
			require.NotEqual(t, g.Len(), len(want), "the child committed nothing clean")

			r, err := tc.finish(e, t.Context(), g, runID)
			require.NoError(t, err)
			rep, err := r.Wait()
			require.NoError(t, err)
			assert.Equal(t, executor.RunSucceeded, rep.Record.Status)

			for id := range p.called() {
				assert.True(t, want[id], "%s was committed clean by the crashed run, with current inputs, and was regenerated", id)
			}
			assert.Len(t, rep.Generated, len(want))

			final, err := s.Load(t.Context(), key)
			require.NoError(t, err)
			assert.Empty(t, checkCurrent(t, s, g, final, true))
			for _, id := range edited {
				assert.Equal(t, int64(1), final.States[id].Rev, "the edit of %s was lost", id)
			}

			rec, err := s.GetRun(t.Context(), runID)
			require.NoError(t, err)
			assert.Equal(t, executor.RunInterrupted, rec.Status, "the crashed run's record")
			assert.False(t, rec.EndedAt.IsZero(), "the crashed run's record has no end")
			assert.Contains(t, rec.Error, r.ID())
		})
	}
}

// jitter makes a provider's calls take up to 3 ms, so that runs
// interleave.
func jitter(ctx context.Context, _ executor.Request) error {
	var b [1]byte
	_, _ = rand.Read(b[:])
	select {
	case <-time.After(time.Duration(b[0]%30) * 100 * time.Microsecond):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// consistentWith returns the durations, among those given, whose graph
// the snapshot is consistent with: every node clean, with its asset, and
// made from current inputs.
func consistentWith(t *testing.T, s *pgstore.Store, snap executor.Snapshot, seconds ...int) []int {
	t.Helper()
	var out []int
	for _, secs := range seconds {
		if problems := checkCurrent(t, s, build(t, secs), snap, true); len(problems) == 0 {
			out = append(out, secs)
		} else {
			t.Logf("not consistent with the %d s graph: %v", secs, problems)
		}
	}
	return out
}

// TestOpsConcurrentRuns runs a lecture from two executors, each with its
// own pool, on one graph key at once, with edits from a third while they
// run, for graphs of the same duration and of different ones: the
// stored states end consistent with one of the graphs (every node clean,
// with its asset, made from current inputs), and no edit is lost.
func TestOpsConcurrentRuns(t *testing.T) {
	t.Parallel() // each test has its own schema
	for _, tc := range []struct {
		name    string
		seconds [2]int
		edit    bool
	}{
		{"same duration", [2]int{120, 120}, false},
		{"same duration with edits", [2]int{120, 120}, true},
		{"60s and 120s", [2]int{60, 120}, false},
		{"120s and 60s with edits", [2]int{120, 60}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, pg := newStore(t)
			key := testenv.UniqueName(t)
			var runs [2]*executor.Run
			var es [2]*executor.Executor
			for i := range es {
				p := newProvider()
				p.hook = jitter
				es[i] = newExecutor(t, poolStore(t, pg.Schema, nil), p.registry())
			}
			for i, e := range es {
				r, err := e.Start(t.Context(), executor.RunRequest{GraphKey: key, Graph: build(t, tc.seconds[i])})
				require.NoError(t, err)
				runs[i] = r
			}
			edited := []string{"script", "asset:narration:segment[1]", "asset:image:segment[4]"}
			if tc.edit {
				p := newProvider()
				e := newExecutor(t, s, p.registry())
				for _, id := range edited {
					_, err := e.Edit(t.Context(), build(t, tc.seconds[1]), key, id)
					require.NoError(t, err)
				}
			}
			for i, r := range runs {
				_, err := r.Wait()
				if i == 0 && tc.seconds[0] != tc.seconds[1] && errors.Is(err, executor.ErrGraphReplaced) {
					continue // the second run's graph is the key's now
				}
				require.NoError(t, err)
			}
			// Converge: what an edit left dirty is made by one run more
			// of either duration.
			if tc.edit {
				_, err := es[0].Run(t.Context(), executor.RunRequest{GraphKey: key, Graph: build(t, tc.seconds[0])})
				require.NoError(t, err)
			}
			snap, err := s.Load(t.Context(), key)
			require.NoError(t, err)
			// The graph of the run that started last is the key's.
			newest := tc.seconds[1]
			if tc.edit {
				newest = tc.seconds[0]
			}
			assert.Contains(t, consistentWith(t, s, snap, tc.seconds[:]...), newest)
			if tc.edit {
				for _, id := range edited {
					assert.Equal(t, int64(1), snap.States[id].Rev, "the edit of %s was lost", id)
				}
			}
		})
	}
}

// onFirst returns a hook that calls f once, at the first call of a node
// of that kind, and jitters every call.
func onFirst(kind string, f func(ctx context.Context)) func(ctx context.Context, req executor.Request) error {
	var once sync.Once
	return func(ctx context.Context, req executor.Request) error {
		if req.ID.Kind == kind {
			once.Do(func() { f(ctx) })
		}
		return jitter(ctx, req)
	}
}

// TestOpsRetentionDuringRuns prunes and deletes on the Postgres store
// while a run goes on. PruneRuns keeps the record of the run going on,
// which says running, whatever the age.
func TestOpsRetentionDuringRuns(t *testing.T) {
	t.Parallel() // each test has its own schema
	t.Run("PruneRuns", func(t *testing.T) {
		s, _ := newStore(t)
		key := testenv.UniqueName(t)
		g := build(t, 60)
		p := newProvider()
		var (
			pruned  int64
			running []executor.Record
		)
		p.hook = onFirst(graph.KindVideo, func(context.Context) {
			var err error
			pruned, err = s.PruneRuns(t.Context(), 0)
			assert.NoError(t, err)
			running, err = s.RunsByStatus(t.Context(), executor.RunRunning)
			assert.NoError(t, err)
		})
		e := newExecutor(t, s, p.registry())
		rep, err := e.Run(t.Context(), executor.RunRequest{GraphKey: key, Graph: g})
		require.NoError(t, err)
		assert.Zero(t, pruned, "the running run's record was pruned")
		if assert.Len(t, running, 1, "the records that say running, after the prune during the run") {
			assert.Equal(t, rep.Record.ID, running[0].ID)
		}
		rec, err := s.GetRun(t.Context(), rep.Record.ID)
		require.NoError(t, err)
		assert.Equal(t, executor.RunSucceeded, rec.Status)
	})
	t.Run("PruneAssets", func(t *testing.T) {
		s, pg := newStore(t)
		key := testenv.UniqueName(t)
		g := build(t, 60)
		p := newProvider()
		e := newExecutor(t, s, p.registry())
		_, err := e.Run(t.Context(), executor.RunRequest{GraphKey: key, Graph: g})
		require.NoError(t, err)
		// Made long ago.
		_, err = pg.Pool.Exec(t.Context(), `UPDATE "`+pg.Schema+`".assets SET put_at = now() - interval '2 hours'`)
		require.NoError(t, err)
		for _, edit := range []string{"asset:narration:segment[3]", "script"} {
			p.hook = onFirst(graph.KindVideo, func(context.Context) {
				_, err := s.PruneAssets(t.Context(), time.Hour)
				assert.NoError(t, err)
			})
			rep, err := e.Run(t.Context(), executor.RunRequest{GraphKey: key, Graph: g,
				Marks: []dirty.Mark{{ID: edit, Reason: dirty.ReasonEdited}}})
			require.NoError(t, err, "edit of %s", edit)
			assert.Equal(t, executor.RunSucceeded, rep.Record.Status)
			snap, err := s.Load(t.Context(), key)
			require.NoError(t, err)
			assert.Empty(t, checkCurrent(t, s, g, snap, true))
		}
	})
	t.Run("DeleteGraph", func(t *testing.T) {
		s, _ := newStore(t)
		key := testenv.UniqueName(t)
		g := build(t, 60)
		p := newProvider()
		p.hook = onFirst(graph.KindVideo, func(context.Context) {
			_, err := s.DeleteGraph(t.Context(), key)
			assert.NoError(t, err)
		})
		e := newExecutor(t, s, p.registry())
		rep, err := e.Run(t.Context(), executor.RunRequest{GraphKey: key, Graph: g})
		require.ErrorIs(t, err, executor.ErrGraphDeleted)
		assert.Equal(t, executor.RunCancelled, rep.Record.Status)
		snap, err := s.Load(t.Context(), key)
		require.NoError(t, err)
		assert.Empty(t, snap.States, "the run made the deleted graph again")
	})
}

// TestOpsScarceConnections runs two executors at once on one graph key
// over pools that a production host may have: a single connection, and
// connections whose statements time out after a few milliseconds. Runs
// may fail, but never leave a node clean without its asset or made from
// inputs that are not current, and a run on a sound pool then finishes
// the lecture.
func TestOpsScarceConnections(t *testing.T) {
	t.Parallel() // each test has its own schema
	for _, tc := range []struct {
		name   string
		config func(*pgxpool.Config)
	}{
		{"one connection", func(c *pgxpool.Config) { c.MaxConns = 1 }},
		{"statement timeout", func(c *pgxpool.Config) {
			c.ConnConfig.RuntimeParams["statement_timeout"] = "3"
			c.MaxConns = 2
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, pg := newStore(t)
			key := testenv.UniqueName(t)
			g := build(t, 120)
			var runs []*executor.Run
			for range 2 {
				p := newProvider()
				p.hook = jitter
				e := newExecutor(t, poolStore(t, pg.Schema, tc.config), p.registry())
				for try := 0; ; try++ {
					r, err := e.Start(t.Context(), executor.RunRequest{GraphKey: key, Graph: g})
					if err == nil {
						runs = append(runs, r)
						break
					}
					require.Less(t, try, 50, "no run started: %v", err)
				}
			}
			for _, r := range runs {
				rep, err := r.Wait()
				t.Logf("run %s: %v: %d generated, %d failed", r.ID(), err, len(rep.Generated), len(rep.Failed))
			}
			snap, err := s.Load(t.Context(), key)
			require.NoError(t, err)
			assert.Empty(t, checkCurrent(t, s, g, snap, false))

			e := newExecutor(t, s, newProvider().registry())
			_, err = e.Run(t.Context(), executor.RunRequest{GraphKey: key, Graph: g})
			require.NoError(t, err)
			snap, err = s.Load(t.Context(), key)
			require.NoError(t, err)
			assert.Empty(t, checkCurrent(t, s, g, snap, true))
		})
	}
}

// killer is a pgx query and batch tracer that terminates its
// connection's backend (pg_terminate_backend, through another pool) just
// before the first statement that match accepts, alone or in a batch: a
// connection lost mid-run, on this test's own connection only.
type killer struct {
	admin *pgxpool.Pool
	match func(sql string, args []any) bool
	mu    sync.Mutex
	done  bool
}

func (k *killer) TraceQueryStart(ctx context.Context, conn *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	return k.kill(ctx, conn, func() bool { return k.match(data.SQL, data.Args) })
}

func (k *killer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (k *killer) TraceBatchStart(ctx context.Context, conn *pgx.Conn, data pgx.TraceBatchStartData) context.Context {
	return k.kill(ctx, conn, func() bool {
		return slices.ContainsFunc(data.Batch.QueuedQueries, func(q *pgx.QueuedQuery) bool { return k.match(q.SQL, q.Arguments) })
	})
}

func (k *killer) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

func (k *killer) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// kill terminates conn's backend if no statement was matched yet and
// matched reports true.
func (k *killer) kill(ctx context.Context, conn *pgx.Conn, matched func() bool) context.Context {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.done || !matched() {
		return ctx
	}
	k.done = true
	var ok bool
	err := k.admin.QueryRow(context.WithoutCancel(ctx), "SELECT pg_terminate_backend($1, 10000)", conn.PgConn().PID()).Scan(&ok)
	if err != nil || !ok {
		panic(fmt.Sprintf("terminate backend %d: %v, %v", conn.PgConn().PID(), ok, err))
	}
	return ctx
}

func (k *killer) killed() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.done
}

// argHas reports whether the first argument is a string that holds s.
func argHas(args []any, s string) bool {
	a, ok := args[0].(string)
	return ok && strings.Contains(a, s)
}

// TestOpsConnectionLost loses the connection of one statement of a run
// (the server terminates it): a run on a pool goes on with a new
// connection, so the loss of one must not fail a node, nor make the
// provider generate a node twice.
func TestOpsConnectionLost(t *testing.T) {
	t.Parallel() // each test has its own schema
	for _, tc := range []struct {
		name  string
		match func(sql string, args []any) bool
	}{
		{"put of an asset", func(sql string, args []any) bool {
			return strings.Contains(sql, ".assets (key") && argHas(args, "/asset:video:segment[2]/")
		}},
		{"read of a dependency", func(sql string, args []any) bool {
			// The script is the one dependency of the narrations and
			// images, read with Get; the videos' two come with GetMany.
			return strings.Contains(sql, "WHERE key = $1") && argHas(args, "/script/")
		}},
		{"read of many dependencies", func(sql string, _ []any) bool {
			return strings.Contains(sql, "WHERE key = ANY")
		}},
		{"commit of results", func(sql string, _ []any) bool {
			return strings.Contains(sql, "SET version = version + 1")
		}},
		{"COMMIT of a transaction", func(sql string, _ []any) bool {
			return strings.EqualFold(strings.TrimSpace(sql), "commit")
		}},
		{"state upsert", func(sql string, _ []any) bool {
			return strings.Contains(sql, "INSERT INTO") && strings.Contains(sql, ".node_states")
		}},
		{"record of the outcome", func(sql string, args []any) bool {
			return strings.Contains(sql, ".runs") && strings.HasPrefix(strings.TrimSpace(sql), "INSERT") &&
				len(args) > 6 && args[6] == string(executor.RunSucceeded)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, pg := newStore(t)
			key := testenv.UniqueName(t)
			g := build(t, 60)
			k := &killer{admin: pg.Pool, match: tc.match}
			si := poolStore(t, pg.Schema, func(cfg *pgxpool.Config) { cfg.ConnConfig.Tracer = k })
			p := newProvider()
			e := newExecutor(t, si, p.registry())
			rep, err := e.Run(t.Context(), executor.RunRequest{GraphKey: key, Graph: g})
			require.True(t, k.killed(), "no statement matched")
			require.NoError(t, err)
			assert.Equal(t, executor.RunSucceeded, rep.Record.Status)
			for id, n := range p.called() {
				assert.Equal(t, 1, n, "%s was generated %d times", id, n)
			}
			snap, err := s.Load(t.Context(), key)
			require.NoError(t, err)
			assert.Empty(t, checkCurrent(t, s, g, snap, true))
			rec, err := s.GetRun(t.Context(), rep.Record.ID)
			require.NoError(t, err)
			assert.Equal(t, executor.RunSucceeded, rec.Status, "the stored record")
		})
	}
}

// TestOpsKilledAnywhere kills a process that runs a lecture at various
// points of its run, with an edit from this process just before, then
// resumes the run from this process: every node ends clean, with its
// asset, made from current inputs; the edit is kept; no node that was
// clean and current when the child died is generated again.
func TestOpsKilledAnywhere(t *testing.T) {
	t.Parallel() // each test has its own schema
	for _, after := range []int{1, 5, 12, 20, 30} {
		t.Run(fmt.Sprintf("after %d starts", after), func(t *testing.T) {
			s, pg := newStore(t)
			g := build(t, 120)
			key := testenv.UniqueName(t)
			// The music hangs, so the timeline never starts: the child
			// never ends its run. (Held, the timeline would not do: the
			// edit below makes it stale, and the child, once it sees the
			// edit, skips it and ends its run, succeeded, if it gets there
			// before it is killed, as it did under load.) Nothing the edit
			// makes stale depends on the music but the timeline.
			c := startChild(t, childConfig{Schema: pg.Schema, GraphKey: key, Seconds: 120, Jitter: true,
				Hold: []string{"asset:music"}})
			runID := c.waitLine(t, "run ")
			for range after {
				c.waitLine(t, "started ")
			}
			p := newProvider()
			e := newExecutor(t, s, p.registry())
			_, err := e.Edit(t.Context(), g, key, "asset:image:segment[7]")
			require.NoError(t, err)
			c.kill(t)

			snap, err := s.Load(t.Context(), key)
			require.NoError(t, err)
			want := downstream(g, snap)
			r, err := e.Resume(t.Context(), g, runID)
			require.NoError(t, err)
			_, err = r.Wait()
			require.NoError(t, err)
			for id := range p.called() {
				assert.True(t, want[id], "%s was clean and current when the child died, and was generated again", id)
			}
			final, err := s.Load(t.Context(), key)
			require.NoError(t, err)
			assert.Empty(t, checkCurrent(t, s, g, final, true))
			assert.Equal(t, int64(1), final.States["asset:image:segment[7]"].Rev, "the edit was lost")
			rec, err := s.GetRun(t.Context(), runID)
			require.NoError(t, err)
			assert.Equal(t, executor.RunInterrupted, rec.Status)
		})
	}
}

// TestOpsLaterDurationWins: a host starts a 60 s run, then the user makes
// the lecture 120 s long and the host starts a 120 s run on the same key,
// from another executor, while the 60 s run makes its timeline. The
// newest request wins: the 60 s run stops with ErrGraphReplaced, without
// writing its timeline over the 120 s one, and the store holds the 120 s
// lecture, whole and current.
func TestOpsLaterDurationWins(t *testing.T) {
	t.Parallel() // each test has its own schema
	s, _ := newStore(t)
	key := testenv.UniqueName(t)
	release := make(chan struct{})
	held := make(chan struct{})
	p60 := newProvider()
	p60.hook = func(ctx context.Context, req executor.Request) error {
		if req.ID.Kind == graph.KindTimeline {
			close(held)
			<-release
		}
		return nil
	}
	e60 := newExecutor(t, s, p60.registry())
	r60, err := e60.Start(t.Context(), executor.RunRequest{GraphKey: key, Graph: build(t, 60)})
	require.NoError(t, err)
	<-held
	e120 := newExecutor(t, s, newProvider().registry())
	rep120, err := e120.Run(t.Context(), executor.RunRequest{GraphKey: key, Graph: build(t, 120)})
	require.NoError(t, err)
	assert.Contains(t, rep120.Generated, "timeline")
	close(release)
	rep60, err := r60.Wait()
	require.ErrorIs(t, err, executor.ErrGraphReplaced)
	assert.Equal(t, executor.RunCancelled, rep60.Record.Status)
	assert.NotContains(t, rep60.Generated, "timeline")
	snap, err := s.Load(t.Context(), key)
	require.NoError(t, err)
	assert.Equal(t, []int{120}, consistentWith(t, s, snap, 60, 120))
}
