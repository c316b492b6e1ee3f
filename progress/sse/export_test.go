package sse

// SetRand makes c draw the jitter of its waits from r, which returns
// values in [0, 1), in place of math/rand: a test then knows each wait
// exactly. Call it before Stream.
func SetRand(c *Client, r func() float64) { c.rand = r }
