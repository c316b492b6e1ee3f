package sinktest_test

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/sinktest"
)

// prefixTail is a pair whose live delivery goes by run ID prefix, as a
// pattern subscription (PSUBSCRIBE run:{id}*) does: a tailer of a run
// also gets the live events of the runs whose IDs its run's ID prefixes.
// Its Replay is right.
type prefixTail struct {
	*progress.Memory
	mu   sync.Mutex
	subs map[chan progress.Event]string // a tailer's leak channel: its run
}

func (p *prefixTail) Publish(ctx context.Context, events ...progress.Event) error {
	if err := p.Memory.Publish(ctx, events...); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range events {
		for ch, run := range p.subs {
			if e.RunID != run && strings.HasPrefix(e.RunID, run) {
				select {
				case ch <- e:
				default:
				}
			}
		}
	}
	return nil
}

func (p *prefixTail) Tail(ctx context.Context, run string, after uint64, fn func(progress.Event) error) error {
	leak := make(chan progress.Event, 1024)
	p.mu.Lock()
	p.subs[leak] = run
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.subs, leak)
		p.mu.Unlock()
	}()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	own := make(chan progress.Event)
	done := make(chan error, 1)
	go func() {
		done <- p.Memory.Tail(ctx, run, after, func(e progress.Event) error {
			select {
			case own <- e:
				return nil
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		})
	}()
	for {
		var e progress.Event
		select {
		case e = <-own:
		case e = <-leak:
		case err := <-done:
			return err
		}
		if err := fn(e); err != nil {
			cancel(err)
			<-done
			return err
		}
	}
}

// TestPrefixTailBrokenPair runs Run against one broken pair.
func TestPrefixTailBrokenPair(t *testing.T) {
	if os.Getenv(brokenEnv) == "" {
		t.Skip("runs in a child process of TestPrefixTailKitCatchesBroken")
	}
	sinktest.SetWait(t, 5*time.Second)
	sinktest.Run(t, func(t *testing.T) (progress.Sink, progress.Source) {
		m := progress.NewMemory(progress.MemoryOptions{})
		switch os.Getenv(brokenEnv) {
		case "prefixTail":
			p := &prefixTail{Memory: m, subs: map[chan progress.Event]string{}}
			return p, p
		}
		return m, m
	})
}

// TestPrefixTailKitCatchesBroken runs Run, in a child process, against a
// pair whose Tail leaks the live events of the runs its run's ID
// prefixes: the kit checked runs whose IDs prefix one another's by
// Replay only.
func TestPrefixTailKitCatchesBroken(t *testing.T) {
	tests := []struct {
		broken  string
		failing []string
		passing []string
	}{
		{"prefixTail", []string{"RunsIsolated"}, nil},
		{"correct", nil, []string{"RunsIsolated"}},
	}
	for _, tt := range tests {
		t.Run(tt.broken, func(t *testing.T) {
			t.Parallel()
			checkBrokenChild(t, "TestPrefixTailBrokenPair", tt.broken, tt.failing, tt.passing)
		})
	}
}
