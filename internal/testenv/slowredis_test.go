package testenv_test

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/internal/testenv"
)

// A Redis that took longer than NewRedis's 3 s to answer one ping (a
// loaded machine) was taken as unreachable for the rest of the test
// binary: every later test skipped without asking it again, or failed
// under CI=true, though it answered by then. A ping that timed out is
// now not remembered: the next test asks again. (A refused or dropped
// connection still is, as TestUnreachableRedisIsDialledOnce checks.)
func TestSlowRedisIsAskedAgain(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var (
		dials atomic.Int32
		mu    sync.Mutex
		held  []net.Conn
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if dials.Add(1) == 1 {
				mu.Lock()
				held = append(held, c) // a slow server: no answer
				mu.Unlock()
				continue
			}
			c.Close()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	})
	t.Setenv("REGEN_REDIS_URL", "redis://"+ln.Addr().String()+"/0")
	t.Setenv("CI", "")

	first := &fakeTB{TB: t}
	run(first, func() { testenv.NewRedis(first) })
	require.NotEmpty(t, first.skipped, "a ping that timed out skips")
	before := dials.Load()
	second := &fakeTB{TB: t}
	run(second, func() { testenv.NewRedis(second) })
	assert.NotEmpty(t, second.skipped)
	assert.Greater(t, dials.Load(), before, "the next test asks the server again")
}
