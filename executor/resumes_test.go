package executor_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
)

// putLog is a RunStore that keeps a copy of every record put, in order.
type putLog struct {
	executor.RunStore
	mu   sync.Mutex
	puts []executor.Record
}

func (p *putLog) PutRun(ctx context.Context, r executor.Record) error {
	p.mu.Lock()
	p.puts = append(p.puts, r)
	p.mu.Unlock()
	return p.RunStore.PutRun(ctx, r)
}

// resumesOf returns the Resumes of every record of run id put, in order.
func (p *putLog) resumesOf(id string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, r := range p.puts {
		if r.ID == id {
			out = append(out, r.Resumes)
		}
	}
	return out
}

// An embedder's crash recovery resumed a cancelled run at every start:
// the record of the run that Resume (or RerunFailed) started said which
// run it finished only in its default Reason, which a host's
// ResumeOptions.Reason replaced, and the resumed run's record stayed as
// it ended. Record.Resumes now names the run finished, in every record of
// the new run put (from its first, while it runs), in its Report, and in
// what the store gives back; a run that Start or Run started names none,
// and a resume of a resume names its direct predecessor. The records of
// the runs finished stay as they ended.
func TestRunRecordsSayWhichRunTheyFinish(t *testing.T) {
	for _, st := range []struct {
		name string
		runs func() executor.RunStore
	}{
		{"MemoryRuns", func() executor.RunStore { return executor.NewMemoryRuns() }},
		{"MemoryStore", func() executor.RunStore { return executor.NewMemoryStore() }},
	} {
		t.Run(st.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				l := newLab(t, 30)
				runs := &putLog{RunStore: st.runs()}
				image := "asset:image:segment[1]"
				l.set(image, fail(errors.New("provider down")))
				e, err := executor.New(executor.Options{Generators: l.registry(l), States: l.states, Assets: l.assets,
					Runs: runs, Kinds: map[string]executor.KindOptions{"asset:image": {Retry: executor.RetryPolicy{MaxAttempts: 1}}}})
				require.NoError(t, err)
				t.Cleanup(func() { require.NoError(t, e.Close(ctx)) })

				// A run that Run started, which fails a node, then its rerun,
				// with the host's own Reason.
				first, err := e.Run(ctx, executor.RunRequest{GraphKey: "lecture", Graph: l.g, RunID: "first"})
				require.Error(t, err)
				assert.Empty(t, first.Record.Resumes, "a run that Run started finishes none")
				l.set(image, nil)
				rr, err := e.RerunFailed(ctx, l.g, "first", executor.ResumeOptions{RunID: "rerun", Reason: "retry button"})
				require.NoError(t, err)
				rep, err := rr.Wait()
				require.NoError(t, err)
				assert.Equal(t, "first", rep.Record.Resumes, "Report.Record of the rerun")
				assert.Equal(t, "retry button", rep.Record.Reason)
				assert.Equal(t, []dirty.Mark{{ID: image, Reason: dirty.ReasonForced}}, rep.Record.Marks,
					"a rerun's marks force the failed nodes")

				// A run that Start started, cancelled; its resume, cancelled;
				// and the resume of that resume.
				x, err := e.Start(ctx, executor.RunRequest{GraphKey: "lecture", Graph: l.g, RunID: "x",
					Marks: []dirty.Mark{{ID: "script", Reason: dirty.ReasonEdited}}})
				require.NoError(t, err)
				time.Sleep(time.Second)
				x.Cancel()
				_, err = x.Wait()
				require.ErrorIs(t, err, executor.ErrCancelled)
				y, err := e.Resume(ctx, l.g, "x", executor.ResumeOptions{RunID: "y"})
				require.NoError(t, err)
				time.Sleep(21 * time.Second) // the script is made; narrations run
				y.Cancel()
				yRep, err := y.Wait()
				require.ErrorIs(t, err, executor.ErrCancelled)
				assert.Equal(t, "x", yRep.Record.Resumes, "Report.Record of a cancelled resume")
				z, err := e.Resume(ctx, l.g, "y", executor.ResumeOptions{RunID: "z"})
				require.NoError(t, err)
				zRep, err := z.Wait()
				require.NoError(t, err)
				assert.Equal(t, "y", zRep.Record.Resumes, "a resume of a resume names the run it resumed, not the first")
				assert.Empty(t, zRep.Record.Marks, "a resume's marks")
				l.requireAllClean()

				// Every record put of each run, from the first (running) on.
				for id, want := range map[string]string{"first": "", "rerun": "first", "x": "", "y": "x", "z": "y"} {
					puts := runs.resumesOf(id)
					require.GreaterOrEqual(t, len(puts), 2, "records of run %s put", id)
					for i, got := range puts {
						assert.Equal(t, want, got, "Resumes of record %d of run %s put", i, id)
					}
				}

				// What the store gives back: the runs finished keep their
				// status, and name no run that finished them.
				recs, err := runs.ListRuns(ctx, "lecture")
				require.NoError(t, err)
				type got struct {
					ID      string
					Status  executor.RunStatus
					Resumes string
				}
				var have []got
				for _, r := range recs {
					have = append(have, got{r.ID, r.Status, r.Resumes})
				}
				want := []got{
					{"first", executor.RunFailed, ""}, {"rerun", executor.RunSucceeded, "first"},
					{"x", executor.RunCancelled, ""}, {"y", executor.RunCancelled, "x"}, {"z", executor.RunSucceeded, "y"},
				}
				if d := cmp.Diff(want, have); d != "" {
					t.Errorf("ListRuns (-want +got):\n%s", d)
				}
				for _, r := range recs {
					g, err := runs.GetRun(ctx, r.ID)
					require.NoError(t, err)
					assert.Equal(t, r.Resumes, g.Resumes, "GetRun(%q)", r.ID)
				}
			})
		})
	}
}

// Record.Resumes is "resumes" in JSON, left out when empty.
func TestRecordResumesJSON(t *testing.T) {
	b, err := json.Marshal(executor.Record{ID: "z", Resumes: "y"})
	require.NoError(t, err)
	assert.Contains(t, string(b), `"resumes":"y"`)
	var back executor.Record
	require.NoError(t, json.Unmarshal(b, &back))
	assert.Equal(t, "y", back.Resumes)
	b, err = json.Marshal(executor.Record{ID: "x"})
	require.NoError(t, err)
	assert.NotContains(t, string(b), "resumes")
}

// A resume whose process crashed (its record left running) is recorded as
// interrupted by the Resume that finds it, which rewrites its record: the
// record still names the run it resumed, and the new run's names it.
func TestAnInterruptedResumeKeepsTheRunItFinished(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		l := newLab(t, 30)
		e := l.executor(executor.Options{})
		x, err := e.Start(ctx, executor.RunRequest{GraphKey: "lecture", Graph: l.g, RunID: "x",
			Marks: []dirty.Mark{{ID: "script", Reason: dirty.ReasonEdited}}})
		require.NoError(t, err)
		time.Sleep(time.Second)
		x.Cancel()
		_, err = x.Wait()
		require.ErrorIs(t, err, executor.ErrCancelled)
		y, err := e.Resume(ctx, l.g, "x", executor.ResumeOptions{RunID: "y"})
		require.NoError(t, err)
		time.Sleep(time.Second)
		y.Cancel()
		_, err = y.Wait()
		require.ErrorIs(t, err, executor.ErrCancelled)
		// y's process crashed instead: its record says running.
		rec, err := l.runs.GetRun(ctx, "y")
		require.NoError(t, err)
		rec.Status, rec.EndedAt, rec.Counts, rec.Error = executor.RunRunning, time.Time{}, executor.Counts{}, ""
		require.NoError(t, l.runs.PutRun(ctx, rec))

		z, err := e.Resume(ctx, l.g, "y", executor.ResumeOptions{RunID: "z"})
		require.NoError(t, err)
		rep, err := z.Wait()
		require.NoError(t, err)
		assert.Equal(t, "y", rep.Record.Resumes)
		got, err := l.runs.GetRun(ctx, "y")
		require.NoError(t, err)
		assert.Equal(t, executor.RunInterrupted, got.Status)
		assert.Contains(t, got.Error, "z", "the interrupted record names the run that resumed it")
		assert.Equal(t, "x", got.Resumes, "the interrupted record still names the run it resumed")
		l.requireAllClean()
	})
}
