package redisstream_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/redisstream"
	"github.com/regengraph/regen/progress/sinktest"
)

// A read that Redis holds from before any read failed (it began to hang
// as the read went out) is not waited for past readWait once another
// read fails either, as one made after that failure is not: the Tail
// that made it serves itself from the History, Replay falls back to the
// History, and LastEvent answers with the History's final event. Else
// such a call waited for its own read to fail, at the client's
// ReadTimeout (with go-redis's defaults, MaxRetries+1 of them; with a
// ReadTimeout of -1, until Redis answered), while the calls that came a
// moment later were served from the History: a browser that connected
// as Redis began to hang got nothing of a finished run meanwhile, or,
// through progress/sse's lookup, not even its response's headers.
func TestReadFromBeforeAFailureDoesNotWaitForRedis(t *testing.T) {
	for _, call := range []string{"tail", "replay", "last event"} {
		t.Run(call, func(t *testing.T) {
			hist := progress.NewMemoryHistory()
			// Two tokens of reads that do not block.
			s, reads := outageStream(t, redisstream.Options{History: hist, MaxBlockingReads: 4})
			redisstream.SetReadWait(s, 100*time.Millisecond)
			ctx := context.Background()
			run := sinktest.RunID(t)
			all := sinktest.Events(run, 1, 46)
			all[45].Type = progress.RunFinished
			require.NoError(t, progress.NewFanout(progress.NewArchive(hist), s).Publish(ctx, all...))

			reads.mode.Store(2) // Redis hangs; no read has failed yet
			type answer struct {
				got []uint64
				err error
			}
			done := make(chan answer, 1)
			var tl *sinktest.Tailer
			switch call {
			case "tail":
				tl = sinktest.StartTail(t, s, run, 0)
			case "replay":
				go func() {
					var got []uint64
					err := s.Replay(ctx, run, 0, func(e progress.Event) error {
						got = append(got, e.Seq)
						return nil
					})
					done <- answer{got, err}
				}()
			case "last event":
				go func() {
					e, _, err := s.LastEvent(ctx, run)
					done <- answer{[]uint64{e.Seq}, err}
				}()
			}
			reads.waitHanging(t, "the call")
			reads.mode.Store(1)
			_, _, err := s.LastEvent(ctx, run+"-other") // another read fails
			require.Error(t, err)

			if tl != nil {
				tl.Expect(t, sinktest.Span(1, 46))
				tl.Stop(t, context.Canceled)
				return
			}
			select {
			case a := <-done:
				require.NoError(t, a.err)
				if call == "replay" {
					assert.Equal(t, sinktest.Span(1, 46), a.got)
				} else {
					assert.Equal(t, []uint64{46}, a.got)
				}
			case <-time.After(hangBound):
				t.Fatalf("%s waited for its read of Redis over %v", call, hangBound)
			}
		})
	}
}
