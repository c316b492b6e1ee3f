package redisstream

import (
	"context"
	"errors"
	"fmt"
	"slices"
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
	// finalSeq is the Seq of the run's final event once known, from the
	// window or from a reader that delivered it; 0 before. The History is
	// polled until the window reaches it.
	finalSeq uint64
	// gap says that the last poll of the History found a gap right after
	// gapAt (the window's last Seq then): a later poll passes over it if
	// Redis has not filled it meanwhile, once Redis has answered an XREAD
	// made since the gap was found (answered): while Redis does not answer
	// (it hangs, or is down), it may hold the gap's events, which readers
	// past the gap would skip for good.
	gap      bool
	gapAt    uint64
	gapFound uint64 // counts the gaps found, for answeredSince
	answered bool
	// stale says that the last XREAD failed: the window may lag behind
	// the stream by more than a round trip.
	stale bool
	// held says that the hub holds the entries of the stream after a gap
	// right after its window's last Seq, waiting for the History to fill
	// the gap (see fillGaps): a reader that reaches the gap in Redis
	// stops there and follows the hub, rather than skip the gap's events.
	held bool
	// ahead is, while held, the entries that the hub read after the gap
	// and holds, in ascending Seq: a reader past the gap (it resumed
	// above it, or got its events from the History itself) had the gap's
	// events, and takes these at once rather than wait with the readers
	// below the gap.
	ahead []progress.Event
	// read is the highest entry ID (as a Seq) read from the stream, held
	// after a gap or not: a reader's lag counts up to it.
	read uint64
	// full says that the last XREAD read a whole page (PageSize entries):
	// the stream may hold more after read, which a hub that holds the
	// entries after a gap does not read (it reads from the gap again).
	full bool
	// newAt is when the window's last Seq last moved on (or the hub
	// started): with a History, the hub checks that its stream is still
	// there only once the run has been quiet for IdleTTL (see
	// checksGone).
	newAt time.Time
	// gone says that the stream was found gone from Redis (see forget):
	// the hub serves the readers that follow it what its window holds
	// for them, and no other reader; a reader that has it all ends with
	// ErrStreamGone.
	gone bool
}

// acquireHub returns the run's hub, starting one that reads from pos.
func (s *Stream) acquireHub(runID string, pos uint64) (*hub, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	h := s.hubs[runID]
	if h != nil && (h.failed() || h.isGone()) {
		// It stopped for good, and its readers are on their way out; or
		// its stream is gone, and it serves the readers that follow it
		// alone. A new reader gets a new one, which tries Redis again.
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
			newAt:  time.Now(),
			notify: make(chan struct{}),
		}
		s.hubs[runID] = h
		s.wg.Add(1)
		go s.runHub(ctx, h)
	}
	h.refs++
	return h, nil
}

// joinHub returns the run's running hub, with a reference taken, if its
// window serves a reader at pos (its base is at most pos); nil if there
// is none.
func (s *Stream) joinHub(runID string, pos uint64) *hub {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.hubs[runID]
	if s.closed || h == nil {
		return nil
	}
	h.mu.Lock()
	ok := h.err == nil && !h.gone && h.base <= pos
	h.mu.Unlock()
	if !ok {
		return nil
	}
	h.refs++
	return h
}

// releaseHub drops a reader's reference; the last one stops the hub,
// whose goroutine exits when its XREAD returns. A hub that holds the
// entries after a gap, waiting for the History to fill it, goes on until
// its hold ends (see endIdleHold), so that a reader that left at the gap
// and reconnects (a browser's EventSource does at once) waits for it as
// before, rather than skip the gap.
func (s *Stream) releaseHub(h *hub) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h.refs--
	if _, held := h.holding(); h.refs == 0 && !held {
		if s.hubs[h.runID] == h {
			delete(s.hubs, h.runID)
		}
		h.stop()
	}
}

// followBatch bounds how many events a reader copies from its hub's
// window at a time: a burst in the window (a Buffered sink's batch, a
// backlog after an outage) would otherwise be copied whole by each
// reader, and held by each while its client is slow.
const followBatch = 16

// since appends to dst the hub's first events with Seq > after, at most
// followBatch of them (for a reader past the gap that the hub holds the
// entries after, the held entries that directly follow after), and returns the hub's base, the Seq of the run's
// final event if known (else 0), a channel closed at the next change,
// whether the stream was found gone (see forget), and the hub's error.
func (h *hub) since(after uint64, dst []progress.Event) (events []progress.Event, base, final uint64, notify <-chan struct{}, gone bool, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	i := sort.Search(len(h.events), func(i int) bool { return h.events[i].Seq > after })
	events = append(dst, h.events[i:min(len(h.events), i+followBatch)]...)
	if len(events) == 0 && h.held {
		// Past the window: the held entries, if they go on from after
		// with no gap (a reader at or below the gap waits for it).
		j := sort.Search(len(h.ahead), func(j int) bool { return h.ahead[j].Seq > after })
		for prev := after; j < len(h.ahead) && h.ahead[j].Seq == prev+1 && len(events) < followBatch; j++ {
			events = append(events, h.ahead[j])
			prev = h.ahead[j].Seq
		}
	}
	return events, h.base, h.finalSeq, h.notify, h.gone, h.err
}

func (h *hub) lastSeq() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.last
}

// readSeq returns the highest Seq that the hub knows the stream to hold:
// its window's last, or the last entry it read and holds after a gap.
func (h *hub) readSeq() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return max(h.last, h.read)
}

// setRead records the highest entry ID (as a Seq) that an XREAD read, and
// whether it read a whole page.
func (h *hub) setRead(seq uint64, full bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.read = max(h.read, seq)
	h.full = full
}

// beyondHold reports whether a reader whose last event is after is past
// everything that the hub holds after a gap, while the stream holds more
// than the hub holds (it read more than a window's worth, HubBuffer, and
// holds a window's worth) or may hold more than it read (its last XREAD
// read a whole page): the hub reads from the gap again, so that such a
// reader reads on from Redis itself.
func (h *hub) beyondHold(after uint64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.held || h.err != nil || len(h.ahead) == 0 || after < h.ahead[len(h.ahead)-1].Seq {
		return false
	}
	return h.full || h.read > after
}

// add appends events read from Redis, up to the entry ID last, keeping at
// most limit of them, and records the entries that it holds after a gap
// right after last (ahead, nil if it holds none; see hub.held).
func (h *hub) add(events []progress.Event, last uint64, limit int, ahead []progress.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, events...)
	for _, e := range events {
		if e.Type.Final() {
			h.finalSeq = e.Seq
		}
	}
	if over := len(h.events) - limit; over > 0 {
		h.base = h.events[over-1].Seq
		clear(h.events[:over])
		h.events = h.events[over:]
	}
	if last > h.last {
		// The window moved past the gap it held at.
		h.held, h.ahead = false, nil
		h.newAt = time.Now()
	}
	h.last = max(h.last, last)
	if ahead != nil {
		h.held, h.ahead = true, ahead
	}
	close(h.notify)
	h.notify = make(chan struct{})
}

// passHold ends a hold whose entries after the gap are gone from the
// stream: the window takes the entries that it holds, over the gap.
func (h *hub) passHold(limit int) {
	h.mu.Lock()
	ahead := h.ahead
	h.mu.Unlock()
	if len(ahead) == 0 {
		h.unhold()
		return
	}
	h.add(ahead, ahead[len(ahead)-1].Seq, limit, nil)
}

// unhold records that the hub holds no entries after a gap.
func (h *hub) unhold() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.held, h.ahead = false, nil
}

// holding returns the window's last Seq, right before a gap whose entries
// after it the hub holds, and false if it holds none.
func (h *hub) holding() (uint64, bool) {
	at, _, held := h.heldGap()
	return at, held
}

// heldGap is holding, with the Seq of the first entry that the hub holds
// after the gap (the gap is (at, next)).
func (h *hub) heldGap() (at, next uint64, held bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.held || h.err != nil || len(h.ahead) == 0 {
		return h.last, 0, false
	}
	return h.last, h.ahead[0].Seq, true
}

func (h *hub) setStale(stale bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stale = stale
}

// newest returns the newest event of the stream as the hub knows it, and
// false if it has none, and the ID (as a Seq) of the newest entry it read,
// with known false if the hub cannot tell: it is
// failing, or its window is empty while it started past entries it does
// not hold. A hub's window follows the stream an XREAD of at most
// PageSize entries at a time, so its answer lags the stream by a round
// trip, or by more while it catches up with a burst. Only for a Stream
// without a History, where the window holds Redis's entries alone.
func (h *hub) newest() (e progress.Event, top uint64, ok, known bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.err != nil, h.stale, h.gone:
		return progress.Event{}, 0, false, false
	case len(h.events) > 0:
		return h.events[len(h.events)-1], h.last, true, true
	case h.last == 0:
		// It has seen no entry since it started on an empty stream.
		return progress.Event{}, 0, false, true
	}
	return progress.Event{}, 0, false, false
}

// checksGone reports whether the hub is to check, after an XREAD that
// found nothing new, that its stream is still there: it has seen the
// run's events (its window's last Seq is above 0: it read them, or it
// started past the entries that its first reader read), and has not
// found it gone yet. A hub of a stream not made yet (a run not started)
// waits for it. With a History (quiet above 0: IdleTTL), the hub checks
// only once the window has not moved on for quiet: a stream gone sooner
// (Redis restarted without persistence while the run goes on) is
// written again by the run's next Publish, and the History holds what
// Redis lost; a run quiet for IdleTTL is one that IdleTTL takes for
// dead, whose stream it expires.
func (h *hub) checksGone(quiet time.Duration) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.last > 0 && !h.gone && time.Since(h.newAt) >= quiet
}

// isGone reports whether the hub's stream was found gone (see forget).
func (h *hub) isGone() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.gone
}

// forget marks the hub of a stream that is gone from Redis: no new
// reader joins it, nor does LastEvent answer from it, so that they find
// what Redis holds, as in a process that never read the stream (a new
// reader gets a new hub); the readers that follow it still get what its
// window holds, which they were due before the stream went (a reader
// behind it, its client slow), and then end with ErrStreamGone (see
// tail.follow), rather than wait for good for events that can no longer
// come (the run's writer stopped, or its final event never reached
// Redis). It wakes them.
func (h *hub) forget() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.gone = true
	close(h.notify)
	h.notify = make(chan struct{})
}

// forgetGone marks h as gone if the run's stream is gone from Redis
// (it expired: its writer stopped, and IdleTTL passed; or Redis lost it).
// Called by a hub whose XREAD found nothing new, once it has seen the
// run's events (and with a History, once the run has been quiet for
// IdleTTL: see checksGone): a stream trimmed by MaxLen still exists,
// and its window is still served.
//
// It reads the stream's first entry (XRANGE - + COUNT 1), a stream
// command as every read of the package, not EXISTS, which a Redis user
// whose ACL allows @stream without @keyspace may not send: Redis
// refused it at each check, and the hub never found its stream gone. On
// a client whose ReadTimeout does not bound a command without a BLOCK
// (see Stream.blockAll), it reads it with an XREAD with a BLOCK of 1ms,
// so that go-redis ends it 10s on while Redis does not answer (a
// connection cut without a reset), as it ends the hub's XREADs, rather
// than hold the hub, and Close, until TCP gives the connection up. A
// stream that exists without entries (all deleted) is taken for gone:
// readers find nothing in it either.
func (s *Stream) forgetGone(ctx context.Context, h *hub) {
	if !s.takeRead(ctx) {
		return
	}
	var gone bool
	var err error
	if s.blockAll {
		err = s.client.XRead(ctx, &redis.XReadArgs{
			Streams: []string{h.key, entryID(0)},
			Count:   1,
			Block:   time.Millisecond,
		}).Err()
		if gone = errors.Is(err, redis.Nil); gone {
			err = nil
		}
	} else {
		var first []redis.XMessage
		first, err = s.client.XRangeN(ctx, h.key, "-", "+", 1).Result()
		gone = err == nil && len(first) == 0
	}
	s.readEnded(ctx, err)
	<-s.reads
	if err == nil && gone {
		h.forget()
		s.logger.Warn("redisstream: the stream of a run followed is gone from Redis (expired or deleted); its readers end with ErrStreamGone once they have the events read before",
			"run", h.runID, "key", h.key, "last", h.lastSeq())
	}
}

// failed reports whether the hub stopped for good.
func (h *hub) failed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err != nil
}

// setFinal records the Seq of the run's final event, which a reader
// delivered: once the window reaches it, the History is not polled any
// more.
func (h *hub) setFinal(seq uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.finalSeq = max(h.finalSeq, seq)
}

// polling reports whether the History is still polled: until the window
// reaches the run's final event.
func (h *hub) polling() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.finalSeq == 0 || h.last < h.finalSeq
}

// idle reports whether no reader refers to h.
func (h *hub) idle(s *Stream) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return h.refs == 0
}

// endIdleHold stops h if no reader refers to it any more, when its hold
// has ended: it outlived its last reader only to hold a gap for a reader
// that reconnects. It reports whether it stopped h.
func (s *Stream) endIdleHold(h *hub) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h.refs > 0 {
		return false
	}
	if s.hubs[h.runID] == h {
		delete(s.hubs, h.runID)
	}
	h.stop()
	return true
}

// fail records why the hub stopped and wakes its readers.
func (h *hub) fail(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.err = err
	close(h.notify)
	h.notify = make(chan struct{})
}

// gaps returns how many gaps in the History the hub has found, for
// answeredSince.
func (h *hub) gaps() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.gapFound
}

// answeredSince records that Redis answered an XREAD made when the hub
// had found found gaps in the History: if no gap was found since, the
// last one may be passed over (see pollHistory).
func (h *hub) answeredSince(found uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.gapFound == found {
		h.answered = true
	}
}

// runHub reads the run's stream with XREAD BLOCK from the last entry ID it
// has, never from "$", until ctx ends.
func (s *Stream) runHub(ctx context.Context, h *hub) {
	defer s.wg.Done()
	b := s.newBackoff()
	var polled time.Time // when the History was last read; zero: at once
	// read is the newest entry ID an XREAD read: after fillGaps cut its
	// events to a window's worth, the next XREAD reads the entries after
	// the cut again, and a corrupt one among them is counted already.
	var read uint64
	// foreign is the ID of another writer's entry that an XREAD found
	// after the run's entries, counted once: nothing follows it but
	// other such entries, and until the stream is gone each XREAD
	// returns it again at once, so that the hub waits out its block
	// instead (see foreignID).
	var foreign string
	// holdAt is the window's last Seq when an XREAD found entries after a
	// gap that the History did not fill (it may lag behind Redis, behind
	// a progress.Buffered of its own), and holdSince when: the entries
	// after the gap wait, up to HistoryPoll, for the History to fill it.
	var (
		holdAt    uint64
		holdSince time.Time
	)
	for ctx.Err() == nil {
		block := s.blockTime
		if s.history != nil && h.polling() {
			if time.Since(polled) >= s.poll {
				more := s.pollHistory(ctx, h)
				// From the poll's end, so that a slow History rests.
				polled = time.Now()
				if more {
					polled = time.Time{} // more to read: at once
				}
			}
			// Block no longer than until the next poll.
			block = max(min(block, s.poll-time.Since(polled)), time.Millisecond)
		}
		if ctx.Err() != nil {
			break // stopped during the History's poll: no read more
		}
		from := h.lastSeq()
		// Block only with one of the MaxBlockingReads tokens: without, read
		// what is there and wait out the block here, holding no connection.
		pause := block // after an XREAD that only found foreign entries
		blocks, wait := s.takeBlocking(), time.Duration(0)
		if !blocks {
			block, wait = -1, block // no BLOCK argument
			if s.blockAll {
				// A client whose ReadTimeout is -1 (none) would wait for
				// a read without BLOCK for as long as Redis does not
				// answer, and Close with it: go-redis bounds one with a
				// BLOCK at its block and 10s. Redis answers it as one
				// without, but for the millisecond it waits when the
				// stream has nothing new.
				block = time.Millisecond
			}
			if !s.takeReadPolling(ctx, h, &polled) {
				break
			}
		}
		found := h.gaps()
		res, err := s.hubRead(ctx, h, &redis.XReadArgs{
			Streams: []string{h.key, entryID(from)},
			Count:   s.pageSize,
			Block:   block,
		}, blocks, max(block, wait), &polled)
		if err == nil || errors.Is(err, redis.Nil) {
			h.answeredSince(found)
		}
		if errors.Is(err, redis.Nil) {
			h.setStale(false)
			if b.reset() {
				polled = time.Time{} // Redis is back: read what it missed
			}
			if (s.history == nil || s.idleTTL > 0) && h.checksGone(s.goneQuiet()) {
				s.forgetGone(ctx, h)
			}
			if !holdSince.IsZero() && time.Since(holdSince) >= s.poll {
				// The entries after the held gap are gone from the
				// stream (it expired, or Redis restarted without
				// persistence): the hold ends as one that lasted
				// HistoryPoll does, over the gap.
				h.passHold(s.hubBuffer)
				holdSince = time.Time{}
				if s.endIdleHold(h) {
					break
				}
			}
			if wait > 0 && !sleepCtx(ctx, wait) {
				break
			}
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			h.setStale(true)
			if err := b.wait(ctx, fmt.Errorf("redisstream: xread %s: %w", h.key, err)); err != nil {
				if ctx.Err() == nil {
					h.fail(err)
				}
				break
			}
			if !holdSince.IsZero() && time.Since(holdSince) >= s.poll && h.idle(s) {
				// Its hold is over, and no reader follows it: it does
				// not wait for Redis to come back.
				h.passHold(s.hubBuffer)
				if s.endIdleHold(h) {
					break
				}
			}
			continue
		}
		if b.reset() {
			polled = time.Time{}
		}
		var events []progress.Event
		last, stuck := from, false
		for _, stream := range res {
			for _, m := range stream.Messages {
				if foreignID(m.ID) {
					if m.ID != foreign {
						s.parse(h.runID, m) // counted and logged as corrupt
						foreign = m.ID
					}
					stuck = true
					break
				}
				parse := s.parse
				if id, err := parseID(m.ID); err == nil && id <= read {
					parse = decodeEntry // counted already
				}
				e, seq, err := parse(h.runID, m)
				last = max(last, seq)
				if err == nil {
					events = append(events, e)
				}
			}
		}
		read = max(read, last)
		entries := 0
		for _, stream := range res {
			entries += len(stream.Messages)
		}
		h.setRead(read, int64(entries) >= s.pageSize)
		if stuck && last == from {
			h.setStale(false)
			if !sleepCtx(ctx, pause) {
				break
			}
			continue
		}
		if now := h.lastSeq(); now > from {
			// A poll of the History while the XREAD hung (see hubRead)
			// took the window past from: it holds the entries up to now.
			events = slices.DeleteFunc(events, func(e progress.Event) bool { return e.Seq <= now })
			from, last = now, max(last, now)
		}
		pass := !holdSince.IsZero() && holdAt == from && time.Since(holdSince) >= s.poll
		events, last, ahead := s.fillGaps(ctx, h, from, last, events, pass)
		h.add(events, last, s.hubBuffer, ahead)
		h.setStale(false)
		if ahead == nil {
			h.unhold()
			holdSince = time.Time{}
			if s.endIdleHold(h) {
				break
			}
			continue
		}
		if holdSince.IsZero() || holdAt != last {
			holdAt, holdSince = last, time.Now()
		}
		// Ask the History again soon: the next XREAD returns the entries
		// after the gap again at once.
		if !sleepCtx(ctx, max(min(s.retryDelay, s.poll-time.Since(holdSince)), time.Millisecond)) {
			break
		}
	}
	if s.ctx.Err() != nil {
		h.fail(ErrClosed)
		// Its readers may have returned already (they return ErrClosed
		// at once), without taking it out as the last of them does.
		s.mu.Lock()
		if s.hubs[h.runID] == h {
			delete(s.hubs, h.runID)
		}
		s.mu.Unlock()
	}
}

// hungAfter is how much longer than its block, or its wait for a read
// without one, the hub's XREAD may take before hubRead takes Redis for
// unresponsive and polls the History while it waits.
const hungAfter = time.Second

// hubRead makes the hub's XREAD with args, and gives back the token it was
// made with (a blocking one if blocks) once it returns, having recorded
// how it ended (see Stream.readsFailing). With a History,
// while the XREAD takes more than block (its block, or its wait) and
// hungAfter (Redis does not answer: go-redis gives a blocking command 10s
// more than its block, and another its ReadTimeout), it polls the History
// every HistoryPoll, as the hub's loop does between reads, so that the
// run's readers get the events that only the History holds, the run's
// end among them, within about HistoryPoll as while Redis answers. It
// makes one XREAD at a time, in a goroutine of the Stream (Close waits
// for it), and waits for it to return.
func (s *Stream) hubRead(ctx context.Context, h *hub, args *redis.XReadArgs, blocks bool, block time.Duration, polled *time.Time) ([]redis.XStream, error) {
	token := s.reads
	if blocks {
		token = s.blocking
	}
	if s.history == nil {
		res, err := s.client.XRead(ctx, args).Result()
		s.readEnded(ctx, err) // before the token frees: see readWith
		<-token
		return res, err
	}
	type result struct {
		res []redis.XStream
		err error
	}
	done := make(chan result, 1)
	s.wg.Add(1) // while the hub's goroutine holds one: never from zero
	go func() {
		defer s.wg.Done()
		res, err := s.client.XRead(ctx, args).Result()
		s.readEnded(ctx, err) // before the token frees: see readWith
		<-token
		done <- result{res, err}
	}()
	hung := time.Now().Add(block + hungAfter)
	for {
		if !h.polling() || ctx.Err() != nil {
			r := <-done
			return r.res, r.err
		}
		t := time.NewTimer(max(time.Until(hung), time.Until(polled.Add(s.poll)), time.Millisecond))
		select {
		case r := <-done:
			t.Stop()
			return r.res, r.err
		case <-t.C:
		}
		more := s.pollHistory(ctx, h)
		*polled = time.Now()
		if more {
			*polled = time.Time{} // more to read: at once
		}
	}
}

// takeBlocking takes one of the MaxBlockingReads tokens if one is free;
// the caller puts it back after its XREAD.
func (s *Stream) takeBlocking() bool {
	select {
	case s.blocking <- struct{}{}:
		return true
	default:
		return false
	}
}

// takeRead takes one of the tokens of reads that do not block (see
// Stream.reads), and reports false, with none taken, if ctx ends first.
func (s *Stream) takeRead(ctx context.Context) bool {
	select {
	case s.reads <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

// takeReadPolling is takeRead for h's loop: with a History, it polls the
// History every HistoryPoll while it waits (as hubRead does while its
// XREAD hangs), polled being when it last did. While Redis does not
// answer, reads hold the tokens until the client's ReadTimeout, one
// after another when many wait, and the run's readers would get nothing
// of what the History alone holds, its end among them, meanwhile.
func (s *Stream) takeReadPolling(ctx context.Context, h *hub, polled *time.Time) bool {
	for s.history != nil && h.polling() {
		t := time.NewTimer(max(time.Until(polled.Add(s.poll)), time.Millisecond))
		select {
		case s.reads <- struct{}{}:
			t.Stop()
			return true
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
		more := s.pollHistory(ctx, h)
		*polled = time.Now()
		if more {
			*polled = time.Time{} // more to read: at once
		}
	}
	return s.takeRead(ctx)
}

// readFor makes cmd, a reader's read of Redis, under one of the tokens of
// reads that do not block (see Stream.reads), and returns its result, or
// context.Cause(ctx) as soon as ctx ends (ErrClosed once the Stream is
// closed). go-redis does not interrupt a
// command in flight when its context is cancelled (only the command's
// deadline, the client's ReadTimeout, ends it), so that against a Redis
// that does not answer (paused, or cut off by a network fault that sends
// no reset) a reader whose client has left would wait that long, and
// with it the SSE handler's stream slot. cmd goes on in a goroutine of
// the Stream, which keeps the token until cmd returns, so that the reads
// in flight stay capped, and which Close waits for.
func readFor[T any](ctx context.Context, s *Stream, cmd func(context.Context) (T, error)) (T, error) {
	return readWith(ctx, s, true, cmd)
}

// errReadsBusy fails a read of readNow that found no token of reads
// that do not block while Redis fails (see readNow).
var errReadsBusy = errors.New("no read of Redis can start: the last one failed, and every read that does not block is in flight")

// readNow is readFor for a caller with an answer of its own for an
// outage (LastEvent fails, a Tail or a Replay with a History serves
// itself from the History; see Stream.readerRead), which does not wait its turn behind reads that
// Redis holds, nor for its own read while Redis hangs. It takes a free
// token at once. Else it waits for one,
// up to readWait (hungAfter) if the Stream's last read of Redis to end
// failed, and fails with errReadsBusy then, unless Redis has answered a
// read meanwhile (it is busy: it waits on, its turn coming a round trip
// a read before it); and it fails so too if the
// read that gave the token back failed (every read records how it ended
// before it gives its token back), also if none had when it began to
// wait, and then as soon as any read fails. While Redis hangs, the reads in flight hold the tokens until the
// client's ReadTimeout (with go-redis's defaults, MaxRetries+1 of them),
// and fail one after the other: such a caller fails at the first of
// them, whenever it came, rather than wait for a read of its own to
// fail. While the Stream's last read of Redis to end failed, it waits
// for its own read up to readWait too, and fails then with errReadHung,
// and so does a read made before any failed, from the first that fails
// while it is in flight (Redis may have begun to hang as it went out):
// so a Tail serves itself from the History every HistoryPoll (see
// tail.outage), and LastEvent answers within readWait of its read's
// start (after its wait for a token, up to readWait), rather than once
// a ReadTimeout or more (with go-redis's defaults, MaxRetries+1 of
// them). The read goes on, holding its token, and records how it ends,
// so that a Redis that is back is seen. While Redis answers (it is busy,
// or a read failed long ago and none has ended since), a token comes
// back within a round trip, with no failure, and the caller reads Redis
// as readFor does.
func readNow[T any](ctx context.Context, s *Stream, cmd func(context.Context) (T, error)) (T, error) {
	return readWith(ctx, s, false, cmd)
}

// readWith is readFor, waiting for a token if wait, else readNow.
func readWith[T any](ctx context.Context, s *Stream, wait bool, cmd func(context.Context) (T, error)) (T, error) {
	var zero T
	var failed <-chan struct{} // readNow's, while no read has failed
	if !wait {
		if err := s.takeReadNow(ctx); err != nil {
			return zero, err
		}
		// Taken before readsFailing is: a read that fails after closes it.
		s.failMu.Lock()
		failed = s.readFailed
		s.failMu.Unlock()
	} else {
		select {
		case s.reads <- struct{}{}:
		case <-ctx.Done():
			return zero, context.Cause(ctx)
		case <-s.ctx.Done():
			return zero, ErrClosed
		}
	}
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	if !s.spawn(func() {
		v, err := cmd(ctx)
		s.readEnded(ctx, err)
		// The token frees before the result is handed: a caller that
		// reads again at once finds it free, and does not take its own
		// read for one in flight (see readNow).
		<-s.reads
		done <- result{v, err}
	}) {
		<-s.reads
		return zero, ErrClosed
	}
	var (
		hung  <-chan time.Time // readNow's, once the last read failed
		timer *time.Timer
	)
	hangs := func() {
		timer = time.NewTimer(s.readWait)
		hung, failed = timer.C, nil
	}
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	if !wait && s.readsFailing.Load() {
		hangs()
	}
	for {
		select {
		case r := <-done:
			return r.v, r.err
		case <-failed:
			// A read failed while this one was in flight: Redis may
			// have begun to hang as it went out; wait for it as for
			// one made after that failure.
			hangs()
		case <-hung:
			return zero, errReadHung
		case <-ctx.Done():
			return zero, context.Cause(ctx)
		case <-s.ctx.Done():
			return zero, ErrClosed
		}
	}
}

// lookupNow is readNow for a lookup that no BLOCK bounds (LastEvent's
// XREVRANGE, a gap check's XREVRANGE and XINFO STREAM): on a client
// whose ReadTimeout does not bound it either (-1, none, or one above
// 10s: see Stream.blockAll), it fails with errLookupTimeout once
// Stream.lookupWait (10s, the margin that go-redis gives a blocking
// command, as the package's XREADs get) has passed since its call
// without an answer, its wait for a token included, rather than hang
// for as long as Redis does, when the caller's context has no deadline;
// and it counts then as a read that failed (see Stream.readsFailing),
// so that the reads after it serve themselves from the History, or fail,
// rather than each wait so. The command gets that deadline as its
// context's (go-redis applies it with redis.Options.ContextTimeoutEnabled
// only): without, it goes on, holding its token, until Redis answers,
// and records how it ended if it succeeded.
func lookupNow[T any](ctx context.Context, s *Stream, cmd func(context.Context) (T, error)) (T, error) {
	if s.lookupWait <= 0 {
		return readNow(ctx, s, cmd)
	}
	lctx, cancel := context.WithTimeoutCause(ctx, s.lookupWait, errLookupTimeout)
	defer cancel()
	v, err := readNow(lctx, s, cmd)
	if errors.Is(err, errLookupTimeout) && ctx.Err() == nil {
		s.readEnded(context.Background(), err) // as a read that timed out
	}
	return v, err
}

// errLookupTimeout fails a lookup of lookupNow that Redis has not
// answered within Stream.lookupWait.
var errLookupTimeout = errors.New("no answer from Redis within 10s to a lookup that the client's ReadTimeout does not bound")

// errReadHung fails a read of readNow that has had no answer within
// readWait, made while the Stream's last read of Redis to end failed
// (see readNow). The command goes on, and records how it ends.
var errReadHung = errors.New("no answer from Redis in time, after a read that failed; the read goes on")

// takeReadNow takes a token of reads that do not block for readNow: at
// once if one is free; else it waits for one, up to readWait if the
// Stream's last read of Redis to end failed, and keeps it only if that
// read (the one that gave it back) did not fail; past readWait, it waits
// on if the last read to end did not fail (Redis answered one since: it
// is busy, not hung); if none had failed when it began to wait, or
// once it waits on, it stops waiting at the first read that fails
// (see Stream.readFailed). Otherwise it returns
// errReadsBusy, with no token taken, or context.Cause(ctx), or
// ErrClosed.
func (s *Stream) takeReadNow(ctx context.Context) error {
	select {
	case s.reads <- struct{}{}:
		return nil
	default:
	}
	if err := ctx.Err(); err != nil {
		return context.Cause(ctx)
	}
	// Taken before readsFailing is: a read that fails after closes it.
	s.failMu.Lock()
	failed := s.readFailed
	s.failMu.Unlock()
	var bound <-chan time.Time // none while no read has failed
	if s.readsFailing.Load() {
		t := time.NewTimer(s.readWait)
		defer t.Stop()
		bound = t.C
		failed = nil
	}
	for {
		select {
		case s.reads <- struct{}{}:
			if s.readsFailing.Load() {
				<-s.reads
				return errReadsBusy
			}
			return nil
		case <-bound:
			if s.readsFailing.Load() {
				return errReadsBusy
			}
			// Redis has answered a read since it began to wait: it is
			// busy, not hung, and the tokens come back a round trip
			// each; wait on as one that began while none had failed.
			bound = nil
			s.failMu.Lock()
			failed = s.readFailed
			s.failMu.Unlock()
			if s.readsFailing.Load() { // failed before the channel was taken
				return errReadsBusy
			}
		case <-failed:
			// The first read to fail since it began to wait: the token it
			// gives back may go to a read that waits its turn (readFor, a
			// hub's), and hang in its turn.
			return errReadsBusy
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-s.ctx.Done():
			return ErrClosed
		}
	}
}

// readEnded records how a read of Redis made with ctx ended (see
// Stream.readsFailing): Redis answered (an error reply that retrying does
// not cure is an answer too), or failed as it does when down or hung. A
// read whose context ended says nothing.
func (s *Stream) readEnded(ctx context.Context, err error) {
	switch {
	case err == nil, errors.Is(err, redis.Nil), !retryable(err):
		s.readsFailing.Store(false)
	case ctx.Err() == nil:
		s.failMu.Lock()
		s.readsFailing.Store(true)
		close(s.readFailed)
		s.readFailed = make(chan struct{})
		s.failMu.Unlock()
	}
}

// sleepCtx waits d, or until ctx ends; it reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// pollHistory adds to the hub the History's events after the last entry
// it has: the events that reached the History but not Redis. It reads at
// most a window's worth, and reports whether there may be more. It adds
// events up to a gap in the History only: events after a gap wait for
// the next poll, in case Redis delivers the missing ones first, which the
// readers would otherwise pass over. A poll that finds the same gap again
// passes over it, once Redis has answered an XREAD made since the gap was
// found (not while Redis hangs or is down), and stops at the next one. The hub's readers drop the
// events they delivered already. A History that fails is logged, and
// read again at the next poll.
func (s *Stream) pollHistory(ctx context.Context, h *hub) (more bool) {
	h.mu.Lock()
	last, waited := h.last, h.gap && h.gapAt == h.last && h.answered
	h.mu.Unlock()
	var events []progress.Event
	err := s.history.Replay(ctx, h.runID, last, func(e progress.Event) error {
		if e.RunID != h.runID || e.Seq <= last || len(events) > 0 && e.Seq <= events[len(events)-1].Seq {
			return nil
		}
		events = append(events, e)
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
	// Keep the events up to the first gap; a gap before the first event
	// is passed over if the last poll found it already.
	keep, prev := 0, last
	for _, e := range events {
		if e.Seq > prev+1 && (keep > 0 || !waited) {
			break
		}
		keep, prev = keep+1, e.Seq
	}
	gap := keep < len(events)
	h.mu.Lock()
	if gap && (!h.gap || h.gapAt != prev) {
		h.gapFound++ // a new gap: Redis is to answer a read made from now
		h.answered = false
	}
	h.gap, h.gapAt = gap, prev
	h.mu.Unlock()
	if keep > 0 {
		h.add(events[:keep], prev, s.hubBuffer, nil)
	}
	return more && !gap
}

// fillGaps returns the events an XREAD read after the entry ID from, up
// to the entry ID last, with the History's events merged into the gaps
// among them (after a Redis restart without persistence, the events
// published while Redis was down; after trimming, those trimmed), so that
// the run's readers find no gap in the window and each reads nothing from
// the History itself: one read of the History per run, not one per
// reader. Redis refuses an ID below the stream's newest entry, so such a
// gap is never filled by Redis later; but the History, behind a
// progress.Buffered of its own, may get the missing events a moment after
// Redis got the later ones: it returns the events up to the first gap
// that the History did not fill and that a reader following the hub has
// yet to deliver, or that is young (see heldGap), and the Seq before the
// gap as the entry ID to read on from, with the events after the gap that it holds (ahead, nil when it
// holds none), so that the hub asks again, and passes over the
// gap right after from (pass) only once it has waited HistoryPoll for
// it; a later gap is then held in its turn. It returns at most a window's worth
// (HubBuffer) of events, and the entry ID to read on from: when the
// merged events would not fit in the window, which would then drop the
// start of them, below its readers, it returns the first window's worth
// and the Seq of its last event, so that the next XREAD reads the entries
// after it again (Redis keeps them) and the next call fills on. A History
// that fails holds the entries after a gap as one that lacks the gap's
// events does, up to HistoryPoll; then it leaves the gap, which the
// readers fill (waiting for the History with backoff) on their own, as
// they skip the gaps that the History lacked for HistoryPoll.
func (s *Stream) fillGaps(ctx context.Context, h *hub, from, last uint64, events []progress.Event, pass bool) (_ []progress.Event, _ uint64, ahead []progress.Event) {
	if s.history == nil || len(events) == 0 {
		return events, last, nil
	}
	gap, prev := false, from
	for _, e := range events {
		if e.Seq > prev+1 {
			gap = true
			break
		}
		prev = e.Seq
	}
	if !gap {
		return events, last, nil
	}
	top := events[len(events)-1].Seq
	merged := make([]progress.Event, 0, min(len(events), s.hubBuffer))
	i, prev, full := 0, from, false
	err := s.history.Replay(ctx, h.runID, from, func(a progress.Event) error {
		if a.Seq >= top {
			return errPollFull
		}
		if a.RunID != h.runID || a.Seq <= prev {
			return nil
		}
		for i < len(events) && events[i].Seq <= a.Seq {
			if full = len(merged) == s.hubBuffer; full {
				return errPollFull
			}
			merged = append(merged, events[i])
			prev = events[i].Seq
			i++
		}
		if a.Seq > prev {
			if full = len(merged) == s.hubBuffer; full {
				return errPollFull
			}
			merged = append(merged, a)
			prev = a.Seq
		}
		return nil
	})
	if err != nil && !errors.Is(err, errPollFull) {
		if _, holding := h.holding(); ctx.Err() == nil && !holding {
			s.logger.Warn("redisstream: read the history", "run", h.runID, "error", err)
		}
		// The History may lack the gap's events, for now, as much as it
		// may fail: hold as for a gap it lacks, asking it again.
		if k, prev, held := s.heldGap(h, from, events, pass); held {
			return events[:k], prev, slices.Clone(events[k:])
		}
		return events, last, nil
	}
	if room := s.hubBuffer - len(merged); full || len(events)-i > room {
		// A window's worth: the next XREAD reads on after it.
		merged = append(merged, events[i:i+max(0, min(room, len(events)-i))]...)
		last = merged[len(merged)-1].Seq
	} else {
		merged = append(merged, events[i:]...)
	}
	if k, prev, held := s.heldGap(h, from, merged, pass); held {
		// The History lacks the gap's events, for now.
		return merged[:k], prev, slices.Clone(merged[k:])
	}
	return merged, last, nil
}

// heldGap finds the first gap among events, which follow the entry ID
// from, that a reader of h's run has yet to deliver, or that a reader may
// yet connect at (the event after it is younger than HistoryPoll, by its
// Time: a browser that left at the gap reconnects, while readers past the
// gap follow the run): the hub holds the events from index k on, and
// reads on from prev, the Seq before the gap. pass passes over the gap
// right after from, which the hub held at for HistoryPoll; a later one,
// whose entries may have reached Redis a moment ago, is held in its turn.
func (s *Stream) heldGap(h *hub, from uint64, events []progress.Event, pass bool) (k int, prev uint64, held bool) {
	prev = from
	for k, e := range events {
		if e.Seq > prev+1 && !(pass && prev == from) && (time.Since(e.Time) < s.poll || s.followerNeeds(h, e.Seq-1)) {
			return k, prev, true
		}
		prev = e.Seq
	}
	return 0, 0, false
}

// followerNeeds reports whether a reader of h's run has yet to deliver
// seq: the hub holds a gap that ends at seq only for such a reader, not
// for readers that resumed past it (they had its events). A reader still
// replaying the stream counts too, before it follows h: it stops at the
// gap that h holds (see atHeldGap), and would otherwise skip the gap's
// events that the History lacks when it gets there.
func (s *Stream) followerNeeds(h *hub, seq uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h.refs == 0 {
		// It holds for no reader: for one that left at the gap and may
		// reconnect (see releaseHub).
		return true
	}
	for r := range s.readers {
		if r.runID == h.runID && r.delivered.Load() < seq {
			return true
		}
	}
	return false
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
// outage, and waited out. It returns context.Cause(ctx) if ctx ends, and
// ErrClosed once the Stream is closed, so that Close ends a reader that
// retries an outage (whose client the host may then close, which would
// fail every try).
func (b *backoff) wait(ctx context.Context, err error) error {
	if de := (*deliverError)(nil); errors.As(err, &de) {
		return de.err
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if b.s.ctx.Err() != nil {
		return ErrClosed
	}
	if !retryable(err) {
		return outward(err)
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
	case <-b.s.ctx.Done():
		return ErrClosed
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
