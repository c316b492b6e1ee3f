package loopback_test

import (
	"fmt"
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/regengraph/regen/internal/loopback"
)

func TestCheck(t *testing.T) {
	for _, tt := range []struct {
		addr string
		says string // "" when taken
	}{
		{"127.0.0.1:8080", ""},
		{"127.0.0.1:0", ""},
		{"127.1.2.3:65535", ""},
		{"[::1]:8080", ""},
		{"127.0.0.1", "want HOST:PORT"},
		{"", "want HOST:PORT"},
		{"0.0.0.0:8080", "want a loopback address"},
		{"[::]:8080", "want a loopback address"},
		{"localhost:8080", "want a loopback address"},
		{"192.168.1.2:8080", "want a loopback address"},
		{":8080", "want a loopback address"},
		{"127.0.0.1:99999", "want a port from 0 to 65535"},
		{"127.0.0.1:http", "want a port from 0 to 65535 in digits"},
		{"127.0.0.1:+80", "want a port from 0 to 65535 in digits"},
		{"127.0.0.1:-1", "want a port from 0 to 65535 in digits"},
		{"127.0.0.1:", "want a port from 0 to 65535 in digits"},
		{"127.0.0.1:0x50", "want a port from 0 to 65535 in digits"},
		{"127.0.0.1:00000000000000000000080", ""},
	} {
		t.Run(tt.addr, func(t *testing.T) {
			err := loopback.Check(tt.addr)
			if tt.says == "" {
				require.NoError(t, err)
				return
			}
			var ae *loopback.AddrError
			require.ErrorAs(t, err, &ae)
			assert.Equal(t, tt.addr, ae.Addr)
			assert.Contains(t, err.Error(), tt.says)
			assert.Contains(t, err.Error(), fmt.Sprintf("-addr %q", tt.addr))
		})
	}
}

// FuzzCheck: whatever Check takes, the listener's parser takes too, with
// a loopback host and a port in range; nothing panics.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{"127.0.0.1:8080", "[::1]:0", "0.0.0.0:1", "127.0.0.1:http", "[::1%lo]:80", "127.0.0.1:65536"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, addr string) {
		if loopback.Check(addr) != nil {
			return
		}
		a, err := net.ResolveTCPAddr("tcp", addr)
		require.NoError(t, err, "%q", addr)
		assert.True(t, a.IP.IsLoopback(), "%q", addr)
		assert.LessOrEqual(t, a.Port, 65535)
	})
}

func ExampleCheck() {
	fmt.Println(loopback.Check("127.0.0.1:8080"))
	fmt.Println(loopback.Check("0.0.0.0:8080"))
	// Output:
	// <nil>
	// -addr "0.0.0.0:8080": want a loopback address, such as 127.0.0.1:8080; the example serves this machine only
}
