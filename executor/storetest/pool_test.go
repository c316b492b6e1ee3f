package storetest_test

import (
	"context"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/executor/storetest"
)

// TestKitKeepsPoolsOutOfTheBubble runs the retention checks that call a
// store from a testing/synctest bubble against a store on a pool of
// connections that reads the process's clock, in a child process: a
// pool that opened a connection inside the bubble, and used it outside
// after, would make the runtime abort, as pgx's does ("WaitGroup.Add
// called from inside and outside synctest bubble"), and the host's whole
// test binary with it.
func TestKitKeepsPoolsOutOfTheBubble(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestPooledStore$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "STORETEST_POOL=1")
	out, err := cmd.CombinedOutput()
	assert.NoError(t, err, "the kit's retention checks on a store on a pool:\n%s", out)
	assert.Contains(t, string(out), "--- PASS: TestPooledStore/PruneAssetsWhilePutting", "the check of a prune while a run puts on a store on a pool:\n%s", out)
}

// TestPooledStore runs the retention checks against a fakeRetainer on a
// pool; TestKitKeepsPoolsOutOfTheBubble runs it.
func TestPooledStore(t *testing.T) {
	if os.Getenv("STORETEST_POOL") == "" {
		t.Skip("run by TestKitKeepsPoolsOutOfTheBubble")
	}
	storetest.Retention(t, func(*testing.T) storetest.Retainer {
		p := &pooledRetainer{fakeRetainer: newFakeRetainer(""), idle: 1}
		p.conns.Add(1) // connected, as a store that checked its schema
		return p
	})
}

// pooledRetainer is a fakeRetainer whose every call takes a connection
// of a pool, as one on pgxpool does: an idle one, or one it opens then,
// which the pool counts on a sync.WaitGroup, as puddle's does.
type pooledRetainer struct {
	*fakeRetainer
	mu    sync.Mutex
	idle  int
	conns sync.WaitGroup // never done: the pool keeps its connections
}

// use runs call on a connection, after a round trip's time.
func (p *pooledRetainer) use(call func()) {
	p.mu.Lock()
	if p.idle > 0 {
		p.idle--
	} else {
		p.conns.Add(1) // opens a connection
	}
	p.mu.Unlock()
	time.Sleep(50 * time.Microsecond)
	call()
	p.mu.Lock()
	p.idle++
	p.mu.Unlock()
}

func (p *pooledRetainer) Load(ctx context.Context, key string) (s executor.Snapshot, err error) {
	p.use(func() { s, err = p.fakeRetainer.Load(ctx, key) })
	return s, err
}

func (p *pooledRetainer) Commit(ctx context.Context, key string, expect int64, changes []executor.Change) (v int64, err error) {
	p.use(func() { v, err = p.fakeRetainer.Commit(ctx, key, expect, changes) })
	return v, err
}

func (p *pooledRetainer) Put(ctx context.Context, key string, a executor.Asset) (ref string, err error) {
	p.use(func() { ref, err = p.fakeRetainer.Put(ctx, key, a) })
	return ref, err
}

func (p *pooledRetainer) Get(ctx context.Context, ref string) (a executor.Asset, err error) {
	p.use(func() { a, err = p.fakeRetainer.Get(ctx, ref) })
	return a, err
}

func (p *pooledRetainer) Exists(ctx context.Context, ref string) (ok bool, err error) {
	p.use(func() { ok, err = p.fakeRetainer.Exists(ctx, ref) })
	return ok, err
}

func (p *pooledRetainer) PutRun(ctx context.Context, r executor.Record) (err error) {
	p.use(func() { err = p.fakeRetainer.PutRun(ctx, r) })
	return err
}

func (p *pooledRetainer) GetRun(ctx context.Context, id string) (r executor.Record, err error) {
	p.use(func() { r, err = p.fakeRetainer.GetRun(ctx, id) })
	return r, err
}

func (p *pooledRetainer) ListRuns(ctx context.Context, key string) (rs []executor.Record, err error) {
	p.use(func() { rs, err = p.fakeRetainer.ListRuns(ctx, key) })
	return rs, err
}

func (p *pooledRetainer) DeleteGraph(ctx context.Context, key string) (ok bool, err error) {
	p.use(func() { ok, err = p.fakeRetainer.DeleteGraph(ctx, key) })
	return ok, err
}

func (p *pooledRetainer) PruneAssets(ctx context.Context, olderThan time.Duration) (n int64, err error) {
	p.use(func() { n, err = p.fakeRetainer.PruneAssets(ctx, olderThan) })
	return n, err
}

func (p *pooledRetainer) PruneRuns(ctx context.Context, olderThan time.Duration) (n int64, err error) {
	p.use(func() { n, err = p.fakeRetainer.PruneRuns(ctx, olderThan) })
	return n, err
}
