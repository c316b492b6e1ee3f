package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// Two edits of a node are being recorded at once, and the store fails
// both: the node keeps the parameters it had before either, whichever
// failure comes first. Neither edit's parameters may stay, as no revision
// stands for them and both clients were told their edit failed.
func TestConcurrentFailedEditsRestoreTheParametersFromBeforeBoth(t *testing.T) {
	for _, tc := range []struct {
		name  string
		first int // the edit whose failure comes first: 0 or 1
	}{{"the older fails first", 0}, {"the newer fails first", 1}} {
		t.Run(tc.name, func(t *testing.T) {
			p := newParamStore()
			p.restore(p.swap("l", "script", []byte(`{"topic":"old"}`))) // a failed edit of another time
			p.keep(p.swap("l", "script", []byte(`{"topic":"kept"}`)))   // its edit was recorded
			a := p.swap("l", "script", []byte(`{"topic":"a"}`))
			b := p.swap("l", "script", []byte(`{"topic":"b"}`))
			fail := [2]func(){func() { p.restore(a) }, func() { p.restore(b) }}
			fail[tc.first]()
			fail[1-tc.first]()
			assert.JSONEq(t, `{"topic":"kept"}`, string(p.get("l", "script")))
		})
	}
}

// An edit that fails puts back neither its parameters nor those it
// replaced when another edit of the node, recorded or still being
// recorded, came after it or before it.
func TestFailedEditKeepsOtherEditsParameters(t *testing.T) {
	p := newParamStore()
	a := p.swap("l", "script", []byte(`{"topic":"a"}`))
	b := p.swap("l", "script", []byte(`{"topic":"b"}`))
	p.restore(a) // b, newer, is still being recorded
	assert.JSONEq(t, `{"topic":"b"}`, string(p.get("l", "script")))
	p.keep(b)
	assert.JSONEq(t, `{"topic":"b"}`, string(p.get("l", "script")))

	c := p.swap("l", "script", []byte(`{"topic":"c"}`))
	d := p.swap("l", "script", []byte(`{"topic":"d"}`))
	p.keep(c)
	p.restore(d) // c, older, was recorded
	assert.JSONEq(t, `{"topic":"c"}`, string(p.get("l", "script")))
	assert.Empty(t, p.pending, "nothing is left once every edit is settled")

	p.restore(p.swap("l", "new", []byte(`{"topic":"x"}`)))
	assert.JSONEq(t, `{}`, string(p.get("l", "new")), "a node that had no parameters has none again")
}
