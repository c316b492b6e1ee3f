// Package loopback checks the listen addresses of the examples, which
// serve this machine only.
package loopback

import (
	"fmt"
	"net"
	"strconv"
)

// AddrError is Check's refusal of an address: what it was given, and
// what it wants instead.
type AddrError struct {
	Addr string // the address refused
	Want string // what is allowed, with an example
}

func (e *AddrError) Error() string { return fmt.Sprintf("-addr %q: want %s", e.Addr, e.Want) }

// Check refuses an address that is not HOST:PORT with a loopback HOST
// (127.0.0.0/8 or ::1, as an IP address) and a PORT of decimal digits from
// 0 to 65535, as the listener would, so that a command can refuse it
// with its other flags before it touches anything. Port 0 lets the system
// pick one. Names are refused: "localhost" may resolve to another
// interface, and a service name such as "http" to a port the user did
// not mean. A refusal is an *AddrError.
func Check(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return &AddrError{Addr: addr, Want: "HOST:PORT, such as 127.0.0.1:8080"}
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return &AddrError{Addr: addr, Want: "a loopback address, such as 127.0.0.1:8080; the example serves this machine only"}
	}
	if !digits(port) {
		return &AddrError{Addr: addr, Want: "a port from 0 to 65535 in digits, such as 127.0.0.1:8080"}
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n > 65535 {
		return &AddrError{Addr: addr, Want: "a port from 0 to 65535, such as 127.0.0.1:8080"}
	}
	return nil
}

// digits reports whether s is one or more ASCII digits.
func digits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
