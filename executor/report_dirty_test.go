package executor_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
)

// TestReportDirty checks Report.Dirty: the nodes a run leaves not clean,
// whether it succeeded or not, and that it matches the stored states.
func TestReportDirty(t *testing.T) {
	const video3 = "asset:video:segment[3]"
	tests := []struct {
		name string
		// act runs the second run of a lecture made clean by a first, and
		// returns its report.
		act       func(t *testing.T, l *lab, e *executor.Executor) (*executor.Report, error)
		converge  int
		wantErr   bool
		wantDirty []string
	}{
		{
			name: "a run that makes everything leaves nothing dirty",
			act: func(t *testing.T, l *lab, e *executor.Executor) (*executor.Report, error) {
				return l.run(e, dirty.Mark{ID: "asset:narration:segment[3]", Reason: dirty.ReasonEdited})
			},
			wantDirty: []string{},
		},
		{
			name: "a failed node and its skipped dependents stay dirty",
			act: func(t *testing.T, l *lab, e *executor.Executor) (*executor.Report, error) {
				l.set("asset:narration:segment[3]", fail(executor.Permanent(errors.New("voice refused"))))
				return l.run(e, dirty.Mark{ID: "asset:narration:segment[3]", Reason: dirty.ReasonEdited})
			},
			wantErr:   true,
			wantDirty: sorted("asset:narration:segment[3]", video3, "timeline"),
		},
		{
			name: "an edit during the run: it succeeds, and says what it left",
			act: func(t *testing.T, l *lab, e *executor.Executor) (*executor.Report, error) {
				return editDuringRun(t, l, e, video3)
			},
			wantDirty: sorted(video3, "timeline"),
		},
		{
			name:     "an edit during a converging run leaves nothing dirty",
			converge: 2,
			act: func(t *testing.T, l *lab, e *executor.Executor) (*executor.Report, error) {
				return editDuringRun(t, l, e, video3)
			},
			wantDirty: []string{},
		},
		{
			name: "a cancel leaves the node it interrupted and those it kept from starting",
			act: func(t *testing.T, l *lab, e *executor.Executor) (*executor.Report, error) {
				r, err := e.Start(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g,
					Marks: []dirty.Mark{{ID: video3, Reason: dirty.ReasonForced}}})
				require.NoError(t, err)
				time.Sleep(10 * time.Second) // the video takes 30 s
				synctest.Wait()
				r.Cancel()
				return r.Wait()
			},
			wantErr:   true,
			wantDirty: sorted(video3, "timeline"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newLab(t, 60)
				e := l.executor(executor.Options{Converge: tt.converge})
				rep, err := l.run(e)
				require.NoError(t, err)
				assert.Equal(t, []string{}, rep.Dirty, "a new lecture, made whole")
				rep, err = tt.act(t, l, e)
				if tt.wantErr {
					require.Error(t, err)
				} else {
					require.NoError(t, err)
				}
				require.NotNil(t, rep.Dirty)
				assert.Equal(t, tt.wantDirty, rep.Dirty)
				// The store says the same.
				var stored []string
				for id, st := range l.snapshot().States {
					if id != executor.GraphStateID && st.Status != dirty.StatusClean {
						stored = append(stored, id)
					}
				}
				assert.ElementsMatch(t, tt.wantDirty, stored)
			})
		})
	}
}

// editDuringRun forces node id and edits it with Executor.Edit while it
// runs, 10 s into its 30 s.
func editDuringRun(t *testing.T, l *lab, e *executor.Executor, id string) (*executor.Report, error) {
	r, err := e.Start(context.Background(), executor.RunRequest{GraphKey: "lecture", Graph: l.g,
		Marks: []dirty.Mark{{ID: id, Reason: dirty.ReasonForced}}})
	require.NoError(t, err)
	time.Sleep(10 * time.Second)
	synctest.Wait()
	_, err = e.Edit(context.Background(), l.g, "lecture", id)
	require.NoError(t, err)
	return r.Wait()
}
