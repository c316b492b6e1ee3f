package executor_test

import (
	"context"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/dirty"
	"github.com/regengraph/regen/executor"
)

// A run whose plan commit (with an edited mark) went through, its reply
// lost, found on its reload that it had not when another commit of the
// node had landed meanwhile (stored compares whole states): it applied
// the edited mark again, and the node got two new revisions for one
// edit, as Edit did. The plan's edits now count as recorded when each
// edited node has at least the revision the lost commit gave it.
func TestRunWhoseLostPlanCommitWasFollowedByAnother(t *testing.T) {
	made, edited := madeByARun, editedAgain
	for _, tc := range []struct {
		name    string
		applied bool
		then    func(dirty.State) dirty.State
		rev     int64 // the script's, after the run
	}{
		{name: "applied, then the node made by another run", applied: true, then: made, rev: 1},
		{name: "applied, then edited", applied: true, then: edited, rev: 2},
		{name: "not applied, then edited", then: edited, rev: 1},
		{name: "not applied, then the node made by another run", then: made, rev: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				l := newLab(t, 30)
				s := &racedCommit{MemoryStates: executor.NewMemoryStates(), applied: tc.applied, then: tc.then}
				e, err := executor.New(executor.Options{Generators: l.registry(l), States: s, Assets: l.assets, Runs: l.runs})
				require.NoError(t, err)
				defer func() { require.NoError(t, e.Close(ctx)) }()
				req := executor.RunRequest{GraphKey: "lecture", Graph: l.g, TriggeredBy: "test"}
				_, err = e.Run(ctx, req)
				require.NoError(t, err)
				s.arm() // the plan commit of the run with the edit
				req.Marks = []dirty.Mark{{ID: "script", Reason: dirty.ReasonEdited}}
				_, err = e.Run(ctx, req)
				require.NoError(t, err)
				snap, err := s.MemoryStates.Load(ctx, "lecture")
				require.NoError(t, err)
				assert.Equal(t, tc.rev, snap.States["script"].Rev, "the script's revision")
				assert.Equal(t, dirty.StatusClean, snap.States["script"].Status)
			})
		})
	}
}
