package progress_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/progress"
	"github.com/regengraph/regen/progress/sinktest"
)

// A tailer of a finished run that the Memory evicted, whose History
// never gets the run's last events (an archive that dropped them), waits
// for them for HistoryWait, as a tailer that fell behind the ring does,
// and then gets the run's final event, which the Memory keeps, after the
// gap, and ErrEvicted: it does not ask the History every HistoryPoll
// until its ctx ends. So does a tailer that was behind the run when it
// was evicted.
func TestMemoryTailerOfAnEvictedRunGivesUpOnTheHistoryAfterHistoryWait(t *testing.T) {
	for _, behind := range []bool{false, true} {
		t.Run("", func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				h := progress.NewMemoryHistory()
				m := progress.NewMemory(progress.MemoryOptions{MaxRuns: 1, History: h,
					HistoryPoll: time.Second, HistoryWait: 10 * time.Second})
				all := finished("a", 1, 6)
				require.NoError(t, h.Append(ctx, all[:3]...)) // never gets 4..6
				require.NoError(t, m.Publish(ctx, all[:2]...))

				var got []uint64
				done := make(chan error, 1)
				tctx, cancel := context.WithCancel(ctx)
				defer cancel()
				at2, release := make(chan struct{}), make(chan struct{})
				tail := func() {
					go func() {
						done <- m.Tail(tctx, "a", 0, func(e progress.Event) error {
							got = append(got, e.Seq)
							if behind && e.Seq == 2 {
								close(at2)
								<-release
							}
							return nil
						})
					}()
				}
				if behind {
					tail()
					<-at2
				}
				require.NoError(t, m.Publish(ctx, all[2:]...))
				require.NoError(t, m.Publish(ctx, sinktest.Events("b", 1, 1)...)) // evicts a
				if behind {
					close(release)
				} else {
					tail()
				}
				synctest.Wait()
				time.Sleep(9 * time.Second)
				synctest.Wait()
				select {
				case err := <-done:
					t.Fatalf("Tail returned %v before HistoryWait passed", err)
				default:
				}
				time.Sleep(2 * time.Second)
				synctest.Wait()
				select {
				case err := <-done:
					assert.ErrorIs(t, err, progress.ErrEvicted)
				default:
					t.Fatal("Tail still waits for the History after HistoryWait")
				}
				assert.Equal(t, []uint64{1, 2, 3, 6}, got)
				assert.Equal(t, uint64(2), m.Stats().Skipped)
			})
		})
	}
}
