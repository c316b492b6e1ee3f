package executor_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
	"github.com/regengraph/regen/graph"
	"github.com/regengraph/regen/progress"
)

// reportCounts returns the lengths of rep's lists, as the final event's
// Counts must give them.
func reportCounts(rep *executor.Report) progress.Counts {
	return progress.Counts{Generated: len(rep.Generated), Unchanged: len(rep.Unchanged), Failed: len(rep.Failed),
		Skipped: len(rep.Skipped), Superseded: len(rep.Superseded), Cancelled: len(rep.Cancelled), Dirty: len(rep.Dirty)}
}

// requireFinalCounts checks that the final event of rep's run carries
// the Report's counts, and returns it.
func (l *lab) requireFinalCounts(t *testing.T, rep *executor.Report) progress.Event {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var final *progress.Event
	for i, ev := range l.events {
		if ev.RunID == rep.Record.ID && ev.Type.Final() {
			require.Nil(t, final, "a second final event, seq %d", ev.Seq)
			final = &l.events[i]
		}
	}
	require.NotNil(t, final, "no final event of run %s", rep.Record.ID)
	require.NotNil(t, final.Counts, "the final event (%s) has no Counts; its message: %s", final.Type, final.Message)
	want := reportCounts(rep)
	assert.Equal(t, want, *final.Counts, "the final event's Counts, against the Report's lists")
	c := rep.Record.Counts
	assert.Equal(t, progress.Counts{Generated: c.Generated, Unchanged: c.Unchanged, Failed: c.Failed, Skipped: c.Skipped,
		Superseded: c.Superseded, Cancelled: c.Cancelled, Dirty: len(rep.Dirty)}, *final.Counts, "the final event's Counts, against the Record's")
	return *final
}

// A run's final event carried only Done and Total, which count failed
// and skipped nodes as done, and the outcomes in its text alone ("failed:
// 9 generated, 0 unchanged, 1 failed, 2 skipped, ..."): a page that
// reconnected after the end, or drew the final status, had to parse
// it. The final event now carries Counts, the lengths of the Report's
// lists, on every way a run ends.
func TestFinalEventCarriesTheRunsCounts(t *testing.T) {
	image1, image3 := ids(nil, graph.KindImage, 1)[0], ids(nil, graph.KindImage, 3)[0]
	video3 := ids(nil, graph.KindVideo, 3)[0]
	forced := func(id ...string) []dirty.Mark {
		var out []dirty.Mark
		for _, s := range id {
			out = append(out, dirty.Mark{ID: s, Reason: dirty.ReasonForced})
		}
		return out
	}
	for _, tc := range []struct {
		name string
		// end runs what the test checks, after a first run made the
		// lecture clean, and returns the runs whose final events it
		// checks, and the counts of the last.
		end func(t *testing.T, l *lab, e *executor.Executor) []*executor.Report
		// want is the last run's final event's Counts, nil where they
		// depend on when the graph goes: they are the Report's, as
		// checked for every run.
		want *progress.Counts
		typ  progress.Type
	}{
		{"generated, unchanged, failed and skipped", func(t *testing.T, l *lab, e *executor.Executor) []*executor.Report {
			// Image 3 comes out the same, so video 3 keeps its result;
			// image 1 fails, so video 1 and the timeline are skipped.
			l.set(image1, fail(executor.Permanent(errors.New("provider refused the prompt"))))
			rep, err := l.run(e, forced(image1, image3)...)
			require.ErrorIs(t, err, executor.ErrRunFailed)
			return []*executor.Report{rep}
		}, &progress.Counts{Generated: 1, Unchanged: 1, Failed: 1, Skipped: 2, Dirty: 3}, progress.RunFailed},
		{"succeeded", func(t *testing.T, l *lab, e *executor.Executor) []*executor.Report {
			rep, err := l.run(e, forced(image3)...)
			require.NoError(t, err)
			return []*executor.Report{rep}
		}, &progress.Counts{Generated: 1, Unchanged: 2}, progress.RunFinished},
		{"nothing to do", func(t *testing.T, l *lab, e *executor.Executor) []*executor.Report {
			rep, err := l.run(e)
			require.NoError(t, err)
			return []*executor.Report{rep}
		}, &progress.Counts{}, progress.RunFinished},
		{"cancelled, then resumed", func(t *testing.T, l *lab, e *executor.Executor) []*executor.Report {
			// Image 3 is cancelled as it runs; image 1 was made.
			var r atomic.Pointer[executor.Run]
			l.set(image3, func(ctx context.Context, req executor.Request) ([]byte, error) {
				r.Load().Cancel()
				<-ctx.Done()
				return nil, ctx.Err()
			})
			run, err := e.Start(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g,
				Marks: forced(image3)})
			require.NoError(t, err)
			r.Store(run)
			cancelled, err := run.Wait()
			require.ErrorIs(t, err, executor.ErrCancelled)
			assert.Equal(t, []string{image3}, cancelled.Cancelled)
			l.set(image3, nil)
			resumed, err := e.Resume(context.Background(), l.g, run.ID())
			require.NoError(t, err)
			rep, err := resumed.Wait()
			require.NoError(t, err)
			return []*executor.Report{cancelled, rep}
		}, &progress.Counts{Generated: 1, Unchanged: 2}, progress.RunFinished},
		{"rerun failed", func(t *testing.T, l *lab, e *executor.Executor) []*executor.Report {
			l.set(image1, fail(executor.Permanent(errors.New("provider refused the prompt"))))
			failed, err := l.run(e, forced(image1)...)
			require.ErrorIs(t, err, executor.ErrRunFailed)
			l.set(image1, nil)
			r, err := e.RerunFailed(context.Background(), l.g, failed.Record.ID)
			require.NoError(t, err)
			rep, err := r.Wait()
			require.NoError(t, err)
			return []*executor.Report{failed, rep}
		}, &progress.Counts{Generated: 1, Unchanged: 2}, progress.RunFinished},
		{"graph replaced", func(t *testing.T, l *lab, e *executor.Executor) []*executor.Report {
			var once sync.Once
			l.set(video3, func(ctx context.Context, req executor.Request) ([]byte, error) {
				once.Do(func() { replaceLecture(t, l) })
				return nil, nil
			})
			rep, err := l.run(e, forced(image1, video3)...)
			require.ErrorIs(t, err, executor.ErrGraphReplaced)
			return []*executor.Report{rep}
		}, nil, progress.RunCancelled},
		{"graph deleted", func(t *testing.T, l *lab, e *executor.Executor) []*executor.Report {
			var once sync.Once
			l.set(video3, func(ctx context.Context, req executor.Request) ([]byte, error) {
				once.Do(func() { deleteLecture(t, l) })
				return nil, nil
			})
			rep, err := l.run(e, forced(image1, video3)...)
			require.ErrorIs(t, err, executor.ErrGraphDeleted)
			return []*executor.Report{rep}
		}, nil, progress.RunCancelled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, 40)
				e := l.executor(executor.Options{})
				first, err := l.run(e)
				require.NoError(t, err)
				require.Equal(t, progress.Counts{Generated: l.g.Len()}, *l.requireFinalCounts(t, first).Counts, "the first run's")
				reps := tc.end(t, l, e)
				var last progress.Event
				for _, rep := range reps {
					last = l.requireFinalCounts(t, rep)
				}
				assert.Equal(t, tc.typ, last.Type)
				if tc.want != nil {
					assert.Equal(t, *tc.want, *last.Counts)
				} else {
					assert.NotZero(t, *last.Counts, "the run settled no node: the test checks nothing")
				}
			})
		})
	}
}

// With Converge a node settles in each round it is planned in, and the
// final event's Done counts each settlement; its Counts are the run's
// whole, as the Report's lists: each node once, under its last outcome.
func TestFinalEventCountsOfAConvergeRun(t *testing.T) {
	const video = "asset:video:segment[3]"
	synctest.Test(t, func(t *testing.T) {
		l := newLab(t, 60)
		e := l.executor(executor.Options{Converge: 1})
		_, err := l.run(e)
		require.NoError(t, err)
		// Its old parameters fail, so that round 1 supersedes it and
		// skips the timeline; round 2 makes the edited one.
		l.set(video, func(ctx context.Context, req executor.Request) ([]byte, error) {
			if req.Rev == 0 {
				return nil, executor.Permanent(errors.New("provider refused the prompt"))
			}
			return nil, nil
		})
		r, err := e.Start(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g,
			Marks: []dirty.Mark{{ID: video, Reason: dirty.ReasonForced}}})
		require.NoError(t, err)
		time.Sleep(10 * time.Second)
		synctest.Wait()
		_, err = e.Edit(context.Background(), l.g, "lecture", video)
		require.NoError(t, err)
		rep, err := r.Wait()
		require.NoError(t, err)
		require.Equal(t, 2, rep.Rounds)
		final := l.requireFinalCounts(t, rep)
		assert.Equal(t, progress.Counts{Generated: 2}, *final.Counts)
		assert.Equal(t, 4, final.Done, "Done counts the settlements of both rounds")
	})
}
