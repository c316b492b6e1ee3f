package redisstream

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/regengraph/regen/progress"
)

// hub is the one goroutine per run that blocks in XREAD and fans the
// entries out to the run's local readers. It holds every entry of the
// stream with Seq in (base, last]: the readers at or past base read from
// it, the others catch up from Redis first.
type hub struct {
	runID string
	key   string
	refs  int // guarded by Stream.mu
	stop  context.CancelFunc

	mu     sync.Mutex
	base   uint64
	last   uint64
	events []progress.Event // ascending Seq, all in (base, last]
	notify chan struct{}    // closed and replaced on each change
	err    error            // set when the hub stopped for good
	final  bool             // a final event has been added, or a reader had one
	// gapAt is the hub's last Seq when a poll of the History found a gap
	// after it, 0 if none: the next poll passes over the gap if Redis has
	// not filled it by then.
	gapAt uint64
}

// acquireHub returns the run's hub, starting one that reads from pos.
func (s *Stream) acquireHub(runID string, pos uint64) (*hub, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	h := s.hubs[runID]
	if h != nil && h.failed() {
		// It stopped for good; its readers are on their way out. A new
		// reader gets a new one, which tries Redis again.
		delete(s.hubs, runID)
		h = nil
	}
	if h == nil {
		ctx, cancel := context.WithCancel(s.ctx)
		h = &hub{
			runID:  runID,
			key:    s.Key(runID),
			stop:   cancel,
			base:   pos,
			last:   pos,
			notify: make(chan struct{}),
		}
		s.hubs[runID] = h
		s.wg.Add(1)
		go s.runHub(ctx, h)
	}
	h.refs++
	return h, nil
}

// releaseHub drops a reader's reference; the last one stops the hub,
// whose goroutine exits when its XREAD returns.
func (s *Stream) releaseHub(h *hub) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h.refs--
	if h.refs == 0 {
		if s.hubs[h.runID] == h {
			delete(s.hubs, h.runID)
		}
		h.stop()
	}
}

// since appends to dst the hub's events with Seq > after, and returns the
// hub's base, a channel closed at the next change, and the hub's error.
func (h *hub) since(after uint64, dst []progress.Event) ([]progress.Event, uint64, <-chan struct{}, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	i := sort.Search(len(h.events), func(i int) bool { return h.events[i].Seq > after })
	return append(dst, h.events[i:]...), h.base, h.notify, h.err
}

func (h *hub) lastSeq() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.last
}

// add appends events read from Redis, up to the entry ID last, keeping at
// most limit of them.
func (h *hub) add(events []progress.Event, last uint64, limit int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, events...)
	for _, e := range events {
		h.final = h.final || e.Type.Final()
	}
	if over := len(h.events) - limit; over > 0 {
		h.base = h.events[over-1].Seq
		clear(h.events[:over])
		h.events = h.events[over:]
	}
	h.last = max(h.last, last)
	close(h.notify)
	h.notify = make(chan struct{})
}

// failed reports whether the hub stopped for good.
func (h *hub) failed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err != nil
}

// setFinal records that the run's final event is known, from a reader
// that delivered it: the History need not be polled any more.
func (h *hub) setFinal() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.final = true
}

// polling reports whether the History is still polled.
func (h *hub) polling() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return !h.final
}

// fail records why the hub stopped and wakes its readers.
func (h *hub) fail(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.err = err
	close(h.notify)
	h.notify = make(chan struct{})
}

// runHub reads the run's stream with XREAD BLOCK from the last entry ID it
// has, never from "$", until ctx ends.
func (s *Stream) runHub(ctx context.Context, h *hub) {
	defer s.wg.Done()
	b := s.newBackoff()
	var polled time.Time // when the History was last read; zero: at once
	for ctx.Err() == nil {
		block := s.blockTime
		if s.history != nil && h.polling() {
			if time.Since(polled) >= s.poll {
				polled = time.Now()
				if s.pollHistory(ctx, h) {
					polled = time.Time{} // more to read: at once
				}
			}
			// Block no longer than until the next poll.
			block = max(min(block, s.poll-time.Since(polled)), time.Millisecond)
		}
		from := h.lastSeq()
		res, err := s.client.XRead(ctx, &redis.XReadArgs{
			Streams: []string{h.key, entryID(from)},
			Count:   s.pageSize,
			Block:   block,
		}).Result()
		if errors.Is(err, redis.Nil) {
			if b.reset() {
				polled = time.Time{} // Redis is back: read what it missed
			}
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			if err := b.wait(ctx, fmt.Errorf("redisstream: xread %s: %w", h.key, err)); err != nil {
				if ctx.Err() == nil {
					h.fail(err)
				}
				break
			}
			continue
		}
		if b.reset() {
			polled = time.Time{}
		}
		var events []progress.Event
		last := from
		for _, stream := range res {
			for _, m := range stream.Messages {
				e, seq, err := s.parse(m)
				last = max(last, seq)
				if err == nil {
					events = append(events, e)
				}
			}
		}
		h.add(events, last, s.hubBuffer)
	}
	if s.ctx.Err() != nil {
		h.fail(ErrClosed)
	}
}

// pollHistory adds to the hub the History's events after the last entry
// it has: the events that reached the History but not Redis. It reads at
// most a window's worth, and reports whether there may be more. Events
// after a gap in the History are added only if the gap is still there at
// the next poll: Redis may yet deliver the missing events, and the
// readers would pass over them. The hub's readers drop the events they
// delivered already. A History that fails is logged, and read again at
// the next poll.
func (s *Stream) pollHistory(ctx context.Context, h *hub) (more bool) {
	h.mu.Lock()
	last, gapAt := h.last, h.gapAt
	h.mu.Unlock()
	var (
		events []progress.Event
		gap    = -1 // index in events of the first one after a gap
	)
	next := last
	err := s.history.Replay(ctx, h.runID, last, func(e progress.Event) error {
		if e.Seq <= next || e.RunID != h.runID {
			return nil
		}
		if e.Seq > next+1 && gap < 0 {
			gap = len(events)
		}
		events = append(events, e)
		next = e.Seq
		if len(events) == s.hubBuffer {
			more = true
			return errPollFull
		}
		return nil
	})
	if err != nil && !errors.Is(err, errPollFull) {
		if ctx.Err() == nil {
			s.logger.Warn("redisstream: read the history", "run", h.runID, "error", err)
		}
		return false
	}
	switch {
	case gap < 0:
		gapAt = 0
	case gap == 0 && gapAt == last:
		gapAt = 0 // the same gap as at the last poll: pass over it
	default:
		if gap > 0 {
			gapAt = events[gap-1].Seq
		} else {
			gapAt = last
		}
		events, more = events[:gap], false
	}
	h.mu.Lock()
	h.gapAt = gapAt
	h.mu.Unlock()
	if len(events) > 0 {
		h.add(events, events[len(events)-1].Seq, s.hubBuffer)
	}
	return more
}

// errPollFull ends a poll of the History that read a window's worth.
var errPollFull = errors.New("redisstream: poll full")

// backoff paces the retries of one reader or hub while Redis is failing.
type backoff struct {
	s       *Stream
	delay   time.Duration
	failing bool
}

func (s *Stream) newBackoff() *backoff { return &backoff{s: s, delay: s.retryDelay} }

// maxRetryDelay caps the pause between retries.
const maxRetryDelay = 2 * time.Second

// wait decides what to do about err: the reader's own errors and Redis's
// permanent ones are returned; transient ones are counted, logged once per
// outage, and waited out. It returns context.Cause(ctx) if ctx ends.
func (b *backoff) wait(ctx context.Context, err error) error {
	if de := (*deliverError)(nil); errors.As(err, &de) {
		return de.err
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if !retryable(err) {
		return err
	}
	b.s.readErrors.Add(1)
	if !b.failing {
		b.failing = true
		b.s.logger.Warn("redisstream: read failed; retrying with backoff", "error", err)
	}
	t := time.NewTimer(b.delay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	b.delay = min(2*b.delay, maxRetryDelay)
	return nil
}

// reset ends a run of failures, if any, and reports whether there was one.
func (b *backoff) reset() bool {
	was := b.failing
	if was {
		b.failing = false
		b.s.logger.Info("redisstream: reads recovered")
	}
	b.delay = b.s.retryDelay
	return was
}

// retryable reports whether a read error may pass: network errors and
// Redis's transient states are retried, other server replies (a wrong key
// type, an auth failure) are not.
func retryable(err error) bool {
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return true
	}
	msg := rerr.Error()
	for _, p := range []string{"LOADING", "READONLY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "BUSY", "ERR max number of clients"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}
