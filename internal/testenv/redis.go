package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// Redis is a client of the shared test Redis with a key prefix private to
// one test. Keys outside the prefix belong to other tests.
type Redis struct {
	// Client is connected to [RedisURL]; it is closed when the test ends.
	Client *redis.Client
	// Prefix starts every key the test may create ("regentest:<name>:").
	Prefix string
}

// redisDown holds, by RedisURL, why the first test of the binary that
// found the shared Redis unreachable there (refused or dropped, not
// timed out) skipped: the tests after it skip at once, rather than each
// wait about 2 s for go-redis's retries of a refused dial (several
// minutes of skips on a machine without Redis).
var redisDown sync.Map

// NewRedis connects to the shared Redis at [RedisURL], skipping the test
// (failing it in CI) if Redis cannot be reached. When the test ends, every
// key under the returned Prefix is deleted, with SCAN and UNLINK, and the
// client is closed.
func NewRedis(t testing.TB) *Redis {
	t.Helper()
	opts, err := redis.ParseURL(RedisURL())
	if err != nil {
		t.Fatalf("testenv: REGEN_REDIS_URL %q: %v", RedisURL(), err)
	}
	if why, ok := redisDown.Load(RedisURL()); ok {
		Unavailable(t, "%s", why)
		return nil
	}
	client := NewRedisClient(opts)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		client.Close()
		why := fmt.Sprintf("Redis is not reachable at %s (%v)", opts.Addr, err)
		if !timedOut(err) {
			// Refused or dropped: no Redis there. One that was only
			// slow to answer (a loaded machine) is asked again by the
			// next test, which may then run.
			redisDown.Store(RedisURL(), why)
		}
		Unavailable(t, "%s", why)
		return nil
	}
	r := &Redis{Client: client, Prefix: "regentest:" + UniqueName(t) + ":"}
	t.Cleanup(func() {
		if err := r.deleteKeys(); err != nil {
			t.Errorf("testenv: delete keys %s*: %v", r.Prefix, err)
		}
		client.Close()
	})
	return r
}

// timedOut reports whether err is a wait that ran out, not a refusal.
func timedOut(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// NewRedisClient returns a client for opts with the go-redis background
// features that outlive a test (maintenance notifications) turned off, so
// that goleak sees only what the code under test started.
func NewRedisClient(opts *redis.Options) *redis.Client {
	o := *opts
	o.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	return redis.NewClient(&o)
}

// Key returns Prefix + name.
func (r *Redis) Key(name string) string { return r.Prefix + name }

// Keys returns the keys under the prefix, for assertions.
func (r *Redis) Keys(t testing.TB) []string {
	t.Helper()
	var keys []string
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	iter := r.Client.Scan(ctx, 0, r.Prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatalf("testenv: scan %s*: %v", r.Prefix, err)
	}
	return keys
}

func (r *Redis) deleteKeys() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	iter := r.Client.Scan(ctx, 0, r.Prefix+"*", 1000).Iterator()
	var batch []string
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 500 {
			if err := r.Client.Unlink(ctx, batch...).Err(); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	if err := iter.Err(); err != nil {
		return err
	}
	if len(batch) > 0 {
		return r.Client.Unlink(ctx, batch...).Err()
	}
	return nil
}

// Commands counts the Redis commands a client sends, by name, for tests
// that check how many round trips a piece of code makes.
type Commands struct {
	mu sync.Mutex
	n  map[string]int
}

// CountCommands adds a hook to c that counts its commands from now on.
func CountCommands(c *redis.Client) *Commands {
	l := &Commands{n: make(map[string]int)}
	c.AddHook(l)
	return l
}

// Count returns how many commands of the given names (lowercase, as
// go-redis names them: "xrange") were sent.
func (l *Commands) Count(names ...string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, name := range names {
		n += l.n[name]
	}
	return n
}

// DialHook is part of redis.Hook.
func (l *Commands) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessHook is part of redis.Hook: it counts the command.
func (l *Commands) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		l.mu.Lock()
		l.n[cmd.Name()]++
		l.mu.Unlock()
		return next(ctx, cmd)
	}
}

// ProcessPipelineHook is part of redis.Hook; pipelines are not counted.
func (l *Commands) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
