package redisstream

import (
	"context"
	"errors"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"

	"github.com/regengraph/regen/progress"
)

// replyError is an error reply of Redis, as go-redis returns it (a
// redis.Error), with the words of a given Redis version.
type replyError string

func (e replyError) Error() string { return string(e) }
func (replyError) RedisError()     {}

// Each Redis version words an ACL's refusal of its own, and Publish takes
// each for a *PermissionError, which a progress.Buffered does not retry:
// a direct command's NOPERM, and a script's refusal of a command or a key
// inside it, which Redis 6.2 and 7.0 word as "The user executing the
// script can't ..." and Redis 7.2 and later as "ACL failure in script:",
// both with an ERR prefix. Before, the 7.2 words (those of every Redis
// released since mid-2023) were taken for a failure that may pass: a
// user without @keyspace had the EVAL of each Publish fail, and a
// Buffered retried the batch for good, holding every newer event behind
// it. Other errors are left as they are.
func TestPermissionKnowsEachRedisVersionsWords(t *testing.T) {
	for _, tc := range []struct {
		name  string
		reply string
		perm  bool
	}{
		{"NOPERM of a command, 6.2 and 7.0", "NOPERM this user has no permissions to run the 'eval' command or its subcommand", true},
		{"NOPERM of a command, 7.2", "NOPERM User regen has no permissions to run the 'eval' command", true},
		{"NOPERM of a key, 7.0", "NOPERM this user has no permissions to access one of the keys used as arguments", true},
		{"a script's command, 6.2", "ERR Error running script (call to f_5afb84be81de8a6b369cec37597ef66bc9f128e1): @user_script:1: @user_script: 1: The user executing the script can't run this command or subcommand", true},
		{"a script's command, 7.0", "ERR The user executing the script can't run this command or subcommand script: 5afb84be81de8a6b369cec37597ef66bc9f128e1, on @user_script:1.", true},
		{"a script's command, 7.2", "ERR ACL failure in script: User regen has no permissions to run the 'pexpire' command script: 5afb84be81de8a6b369cec37597ef66bc9f128e1, on @user_script:1.", true},
		{"a script's key, 7.0", "ERR The user executing the script can't access at least one of the keys mentioned in the command arguments script: 2c75b41c2efbf9b1e0bd7743921624d145b06a4e, on @user_script:1.", true},
		{"a script's key, 7.2", "ERR ACL failure in script: User regen has no permissions to access the 'lecture:r1' key script: 2c75b41c2efbf9b1e0bd7743921624d145b06a4e, on @user_script:1.", true},
		{"a wrong type in a script", "WRONGTYPE Operation against a key holding the wrong kind of value script: 5afb84be81de8a6b369cec37597ef66bc9f128e1, on @user_script:1.", false},
		{"out of memory", "OOM command not allowed when used memory > 'maxmemory'.", false},
		{"busy", "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := redis.NewCmd(context.Background(), "eval", "return 1", 1, "lecture:r1")
			err := permission(cmd, "lecture:r1", replyError(tc.reply))
			var perm *PermissionError
			if !tc.perm {
				assert.False(t, errors.As(err, &perm), "%v", err)
				assert.NotErrorIs(t, err, progress.ErrInvalidEvent)
				return
			}
			if assert.True(t, errors.As(err, &perm), "%v is not a *PermissionError", err) {
				assert.Equal(t, "EVAL", perm.Command)
				assert.Equal(t, "lecture:r1", perm.Key)
			}
			assert.ErrorIs(t, err, progress.ErrInvalidEvent)
			assert.ErrorContains(t, err, tc.reply)
		})
	}
}
