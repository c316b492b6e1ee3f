package redisstream

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
)

// The sweep counts, and after one warning logs at debug level, only the
// expiries that Redis refuses until its ACL or version changes; a reply
// that a failover or a busy server gives (READONLY, LOADING, BUSY,
// MASTERDOWN) is a failure that passes, warned of at each sweep. Every
// reply used to count as a refusal, so that a failover's READONLY read as
// an ACL problem and was hidden after the first warning (a review).
func TestRefusal(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{replyError("NOPERM User regen has no permissions to run the 'eval' command"), true},
		{replyError("ERR Unsupported option nx"), true},
		{fmt.Errorf("sweep: %w", replyError("ERR wrong number of arguments for 'pexpire' command")), true},
		{replyError("READONLY You can't write against a read only replica."), false},
		{replyError("LOADING Redis is loading the dataset in memory"), false},
		{replyError("BUSY Redis is busy running a script."), false},
		{replyError("MASTERDOWN Link with MASTER is down"), false},
		{errors.New("dial tcp 127.0.0.1:6379: connect: connection refused"), false},
	} {
		assert.Equal(t, tc.want, refusal(tc.err), "%v", tc.err)
	}
}
