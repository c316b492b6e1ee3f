package redisstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/regengraph/regen/progress"
)

// sweepScanCount is the COUNT of each SCAN of a sweep for idle streams.
const sweepScanCount = 1000

// firstSweep is how long after its start a Stream makes its first sweep
// for idle streams, if sooner than IdleTTL/4: so that a host whose
// processes live less than IdleTTL/4 (18h by default: a deploy a day,
// workers that scale down) still sweeps, and a minute on, rather than at
// once, so that a process that starts and stops at once does not scan.
var firstSweep = time.Minute

// sweepHook, if set, is called by each sweep of every Stream as it
// starts (done false), and as it ends (done true), in the sweep's
// goroutine (tests set it).
var sweepHook atomic.Pointer[func(s *Stream, done bool)]

// sweepIdle copies into the History, a minute after the Stream starts
// (see firstSweep) and then every IdleTTL/4, the streams of
// the Stream's KeyTemplate that have been idle for half IdleTTL or more
// without their run's final event, before IdleTTL expires them: the
// streams of runs whose process stopped (killed, say), which may hold
// events that the History lacks, and which a Resume, coming after the
// expiry, could no longer copy (see copyInterrupted). That copy takes a
// History and IdleTTL. With or without them, once the Stream has
// published, it gives an expiry to the streams of the KeyTemplate that
// have none (see expireBare): those that a release without expiries
// wrote. It runs with either TTL (see sweepEvery), and sends nothing on
// a Stream that has neither to do; it exits when the Stream is closed,
// and Close waits for it.
func (s *Stream) sweepIdle(first time.Duration) {
	defer s.wg.Done()
	interval := s.sweepEvery()
	t := time.NewTicker(max(min(first, interval), time.Millisecond))
	defer t.Stop()
	copied := &sweptStreams{m: make(map[string]sweptStream)}
	for {
		select {
		case <-t.C:
		case <-s.ctx.Done():
			return
		}
		t.Reset(interval) // from the sweep's start, as before its first
		s.sweep(copied)
	}
}

// sweptStreams is what this Stream's sweeps copied, by key. The scans of
// a cluster's masters, or a ring's shards, run at once (go-redis's
// ForEachMaster and ForEachShard), each in a goroutine: mu guards m.
type sweptStreams struct {
	mu sync.Mutex
	m  map[string]sweptStream
}

// sweptStream is a stream that a sweep copied: its newest entry then, and
// when it expires, unless a publish came since.
type sweptStream struct {
	top     string
	expires time.Time
}

// sweep is one pass of sweepIdle: SCAN (TYPE stream) for the keys of the
// KeyTemplate, their PTTL in one pipeline a page, and for each stream
// with an expiry of at most IdleTTL/2 left, its newest entry (XREVRANGE
// COUNT 1): unless it is the run's final event and the History holds it
// (one Replay of the History), or the entry that this Stream copied the
// stream up to, or found in the History, already, the stream is copied
// into the History as an interrupted run's is (copyToHistory). A failure is
// logged and counted in Stats.CopyErrors, and the next sweep tries again
// while the stream is left. Once the Stream has published, the streams
// of a page without an expiry are given one (expireBare: two more
// pipelines a page, three without @scripting, only for a page that holds
// such streams). A Stream
// that has not published, and has no History or IdleTTL, sends nothing.
func (s *Stream) sweep(copied *sweptStreams) {
	if f := sweepHook.Load(); f != nil {
		(*f)(s, false)
		defer (*f)(s, true)
	}
	// Expiries are the writers' work: a Stream that only reads (a
	// progress/sse service's), whose Redis user may lack EVAL, PEXPIRE
	// or SCAN, gives none, and without a History sends nothing.
	expire, copies := s.hasPublished.Load(), s.history != nil && s.idleTTL > 0
	if !expire && !copies {
		return
	}
	now := time.Now()
	copied.mu.Lock()
	for key, c := range copied.m {
		if now.After(c.expires) {
			delete(copied.m, key)
		}
	}
	copied.mu.Unlock()
	var expired atomic.Int64 // the pages of a cluster's masters are swept at once
	err := s.scanKeys(s.ctx, func(ctx context.Context, c redis.Cmdable, keys []string) error {
		pipe := c.Pipeline()
		ttls := make([]*redis.DurationCmd, len(keys))
		for i, key := range keys {
			ttls[i] = pipe.PTTL(ctx, key)
		}
		if _, err := pipe.Exec(ctx); err != nil && ctx.Err() != nil {
			return ctx.Err()
		}
		var bare []string // the streams without an expiry
		for i, key := range keys {
			ttl, err := ttls[i].Result()
			if err == nil && ttl == -1 {
				if expire {
					bare = append(bare, key)
				}
				continue
			}
			if !copies || err != nil || ttl <= 0 || ttl > s.idleTTL/2 {
				continue // no copy to make, gone, or not idle long enough
			}
			runID, ok := s.runOf(key)
			if !ok {
				continue
			}
			s.sweepStream(ctx, runID, key, ttl, copied)
		}
		if len(bare) > 0 {
			expired.Add(int64(s.expireBare(ctx, c, bare)))
		}
		return nil
	})
	if n := expired.Load(); n > 0 {
		s.logger.Info("redisstream: the sweep gave an expiry to streams that had none (written by a release without expiries)",
			"streams", n)
	}
	if err != nil && s.ctx.Err() == nil {
		s.readErrors.Add(1)
		s.logger.Warn("redisstream: the sweep for idle streams, and for streams without an expiry, failed; it tries again in IdleTTL/4 (FinishedTTL/4 without IdleTTL)",
			"error", err)
	}
}

// sweepEvery is how often the sweep comes (see sweepIdle): every IdleTTL/4,
// or, without IdleTTL, every FinishedTTL/4; 0 without either, and then
// there is no sweep.
func (s *Stream) sweepEvery() time.Duration {
	if s.idleTTL > 0 {
		return s.idleTTL / 4
	}
	return s.ttl / 4
}

// expireBare gives an expiry to each of keys, streams of the KeyTemplate
// (a page of a scan, at most sweepScanCount) that had none: streams
// written by a release without expiries, which no Publish will expire,
// as their runs publish no more. It looks up each one's newest entry, in
// one pipeline (XREVRANGE COUNT 1), and sets, in another,
// FinishedTTL on a stream whose newest entry is its run's final event,
// and IdleTTL on any other whose newest entry is an event of its run,
// each unless the TTL is negative; with sweepExpireScript, which sets it
// only if the key is still a stream without an expiry whose newest entry
// is the one looked up. So a key of another type, a stream whose
// newest entry is not an event of its run (another writer's), and a
// stream that a Publish has written to meanwhile are left as they are.
// Where the Redis user's ACL refuses the script (no @scripting: a writer
// with a negative IdleTTL needs none), it sets the expiry with PEXPIRE NX
// instead, in one more pipeline (Redis 7 or later), which checks only
// that the key has no expiry yet: a stream that a Publish wrote to
// between the two pipelines may get the TTL chosen for its newest entry
// before (a Publish's own expiry, set meanwhile, wins). It reports how
// many it gave an expiry; it logs a failure, which the next sweep tries
// again: one that Redis replied (the ACL refuses PEXPIRE, or Redis 6
// knows no PEXPIRE NX), which each sweep meets again, is counted in
// Stats.ExpiryErrors and warned of once a Stream, at debug level after.
func (s *Stream) expireBare(ctx context.Context, c redis.Cmdable, keys []string) int {
	pipe := c.Pipeline()
	tops := make([]*redis.XMessageSliceCmd, len(keys))
	for i, key := range keys {
		tops[i] = pipe.XRevRangeN(ctx, key, "+", "-", 1)
	}
	if _, err := pipe.Exec(ctx); err != nil && ctx.Err() != nil {
		return 0
	}
	pipe = c.Pipeline()
	var sets []*redis.Cmd
	var ttls []time.Duration // of sets
	for i, key := range keys {
		msgs, err := tops[i].Result()
		runID, ok := s.runOf(key)
		if err != nil || len(msgs) == 0 || !ok {
			continue
		}
		e, _, err := decodeEntry(runID, msgs[0])
		if err != nil {
			continue // not an event of the run: not a stream that Publish wrote
		}
		ttl := s.idleTTL
		if e.Type.Final() && s.ttl > 0 {
			ttl = s.ttl
		}
		if ttl <= 0 {
			continue // kept, as the options say
		}
		sets = append(sets, pipe.Eval(ctx, sweepExpireScript, []string{key}, msgs[0].ID, ttl.Milliseconds()))
		ttls = append(ttls, ttl)
	}
	if len(sets) == 0 {
		return 0
	}
	_, _ = pipe.Exec(ctx) // each command's error is examined below
	n := 0
	var firstErr, firstRefusal error
	var refused uint64 // the expiries that Redis refused (a reply, not a lost connection)
	fail := func(err error) {
		if refusal(err) {
			refused++
			if firstRefusal == nil {
				firstRefusal = err
			}
		} else if firstErr == nil {
			firstErr = err
		}
	}
	var nx redis.Pipeliner // PEXPIRE NX, for the scripts that the ACL refuses
	var nxs []*redis.Cmd
	for i, cmd := range sets {
		set, err := cmd.Int()
		var perm *PermissionError
		switch {
		case err != nil && errors.As(permission(cmd, expiryKey(cmd), err), &perm):
			if nx == nil {
				nx = c.Pipeline()
			}
			// PEXPIRE, as the script: EXPIRE would cut the TTL to whole seconds.
			nxs = append(nxs, nx.Do(ctx, "pexpire", expiryKey(cmd), ttls[i].Milliseconds(), "nx"))
		case err != nil:
			fail(err)
		case set == 1:
			n++
		}
	}
	if nx != nil {
		_, _ = nx.Exec(ctx) // each command's error is examined below
		for _, cmd := range nxs {
			set, err := cmd.Int()
			switch {
			case err != nil:
				fail(err)
			case set == 1:
				n++
			}
		}
	}
	if refused > 0 {
		// Refused again at each sweep until an operator acts: warned of
		// once a Stream, and counted for the host to watch.
		s.expiryErrors.Add(refused)
		level := slog.LevelDebug
		if s.sweepExpiryRefused.CompareAndSwap(false, true) {
			level = slog.LevelWarn
		}
		s.logger.Log(ctx, level, "redisstream: the sweep could not give an expiry to streams that have none, as Redis refused it (an ACL without PEXPIRE, or PEXPIRE NX before Redis 7); each sweep tries again (counted in Stats.ExpiryErrors; warned of once)",
			"streams", refused, "error", firstRefusal)
	}
	if firstErr != nil && ctx.Err() == nil {
		s.logger.Warn("redisstream: the sweep could not give an expiry to streams that have none; the next sweep tries again",
			"error", firstErr)
	}
	return n
}

// sweepExpireScript sets the expiry of KEYS[1] to ARGV[2] milliseconds
// if it is a stream without an expiry whose newest entry is ARGV[1], as
// the sweep found it (see expireBare).
const sweepExpireScript = `if redis.call('TYPE', KEYS[1])['ok'] ~= 'stream' or redis.call('PTTL', KEYS[1]) ~= -1 then
	return 0
end
local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #top == 1 and top[1][1] == ARGV[1] then
	return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0`

// sweepStream copies the idle stream key of runID into the History,
// unless its run has ended and the History holds its final event, or
// this Stream copied it, or found it so, already.
func (s *Stream) sweepStream(ctx context.Context, runID, key string, ttl time.Duration, copied *sweptStreams) {
	msgs, err := s.client.XRevRangeN(ctx, key, "+", "-", 1).Result()
	if err != nil || len(msgs) == 0 {
		return // gone, or Redis fails: the next sweep looks again
	}
	top := msgs[0].ID
	copied.mu.Lock()
	was, ok := copied.m[key]
	copied.mu.Unlock()
	if ok && was.top == top {
		return
	}
	if e, _, err := decodeEntry(runID, msgs[0]); err == nil && e.Type.Final() {
		// The run ended. Its process may still have been killed before
		// its archive's queue reached the History (the final event
		// reached Redis alone): the History is all that readers have
		// once the stream expires, so it is copied unless the History
		// holds the final event too. A failed lookup is taken for a
		// History without it: the copy then says what fails.
		if held, err := s.historyHolds(ctx, runID, e.Seq); err == nil && held {
			copied.mu.Lock()
			copied.m[key] = sweptStream{top: top, expires: time.Now().Add(ttl)}
			copied.mu.Unlock()
			return
		}
	}
	cctx, cancel := context.WithTimeout(ctx, copyTryTimeout)
	c, err := s.copyToHistory(cctx, runID)
	cancel()
	if err != nil {
		s.copyErrors.Add(1)
		s.logger.Warn("redisstream: could not copy the idle stream of a run to the history; the next sweep tries again while the stream is left (once it expires, readers skip the events that only it held)",
			"run", runID, "copied", c.copied, "expiresIn", ttl, "error", err)
		return
	}
	copied.mu.Lock()
	copied.m[key] = sweptStream{top: top, expires: time.Now().Add(ttl)}
	copied.mu.Unlock()
	s.logger.Info("redisstream: copied the idle stream of a run to the history, before IdleTTL expires it",
		"run", runID, "events", c.copied, "corrupt", c.corrupt, "refused", c.refused, "expiresIn", ttl)
}

// errHeld stops historyHolds's Replay at the first event.
var errHeld = errors.New("redisstream: the history holds the event")

// historyHolds reports whether the History holds runID's event seq, with
// one Replay from it that reads one event.
func (s *Stream) historyHolds(ctx context.Context, runID string, seq uint64) (bool, error) {
	held := false
	err := s.history.Replay(ctx, runID, seq-1, func(e progress.Event) error {
		held = e.Seq == seq
		return errHeld
	})
	if err != nil && !errors.Is(err, errHeld) {
		return false, err
	}
	return held, nil
}

// runOf returns the run ID of key, a key of the KeyTemplate.
func (s *Stream) runOf(key string) (string, bool) {
	if len(key) <= len(s.keyPrefix)+len(s.keySuffix) || !strings.HasPrefix(key, s.keyPrefix) || !strings.HasSuffix(key, s.keySuffix) {
		return "", false
	}
	return key[len(s.keyPrefix) : len(key)-len(s.keySuffix)], true
}

// scanKeys calls fn with each page of the stream keys that match the
// KeyTemplate (SCAN MATCH ... TYPE stream), on each master of a cluster
// and each shard of a ring, and on the one server of other clients.
func (s *Stream) scanKeys(ctx context.Context, fn func(context.Context, redis.Cmdable, []string) error) error {
	match := globEscape(s.keyPrefix) + "*" + globEscape(s.keySuffix)
	scan := func(ctx context.Context, c redis.Cmdable) error {
		for cursor := uint64(0); ; {
			if !s.takeRead(ctx) {
				return ctx.Err()
			}
			keys, next, err := c.ScanType(ctx, cursor, match, sweepScanCount, "stream").Result()
			s.readEnded(ctx, err)
			<-s.reads
			if err != nil {
				return fmt.Errorf("scan %s: %w", match, err)
			}
			if len(keys) > 0 {
				if err := fn(ctx, c, keys); err != nil {
					return err
				}
			}
			if cursor = next; cursor == 0 {
				return nil
			}
		}
	}
	switch c := s.client.(type) {
	case *redis.ClusterClient:
		return c.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error { return scan(ctx, n) })
	case *redis.Ring:
		return c.ForEachShard(ctx, func(ctx context.Context, n *redis.Client) error { return scan(ctx, n) })
	}
	return scan(ctx, s.client)
}

// globEscape escapes the characters that a SCAN MATCH pattern gives a
// meaning to.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// refusal reports whether err is Redis refusing an expiry for good, until
// its ACL or version changes: NOPERM, or an ERR reply (Redis 6 has no
// PEXPIRE NX). Other replies (READONLY after a failover, LOADING, BUSY,
// MASTERDOWN) and lost connections are failures that pass.
func refusal(err error) bool {
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return false
	}
	msg := rerr.Error()
	return strings.HasPrefix(msg, "NOPERM") || strings.HasPrefix(msg, "ERR ")
}
