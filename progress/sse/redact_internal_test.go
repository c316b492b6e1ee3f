package sse

import (
	"net/url"
	"testing"
)

// FuzzRedact checks that redact never panics, leaves a URL without a
// password as it is, and leaves no password that url.Parse finds.
func FuzzRedact(f *testing.F) {
	for _, s := range []string{
		"", "http://sse.test/r1", "http://ann:s3cret@sse.test/r1", "http://ann@sse.test/r1",
		"http://ann:s3cret@[::1/r1", "//a:b@c", "a:b@c", "http://a:b@c:port/x?y=a:b@c#f", "x/y//a:b@c",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, u string) {
		got := redact(u)
		parsed, err := url.Parse(u)
		if err != nil {
			return
		}
		if _, ok := parsed.User.Password(); !ok {
			if got != u {
				t.Errorf("redact(%q) = %q; want it as it is, without a password", u, got)
			}
			return
		}
		again, err := url.Parse(got)
		if err != nil {
			t.Fatalf("redact(%q) = %q, which does not parse: %v", u, got, err)
		}
		if p, _ := again.User.Password(); p != "xxxxx" || again.Host != parsed.Host || again.Path != parsed.Path {
			t.Errorf("redact(%q) = %q; want the password masked, the rest as it was", u, got)
		}
	})
}
