//go:build linux || darwin || freebsd || netbsd || dragonfly

package main

import (
	"os"
	"syscall"
	"unsafe"
)

// terminalWidth returns the width in columns of the terminal f is, or
// false when f is not a terminal or does not say.
func terminalWidth(f *os.File) (int, bool) {
	conn, err := f.SyscallConn()
	if err != nil {
		return 0, false
	}
	var ws struct{ row, col, xpixel, ypixel uint16 }
	var errno syscall.Errno
	if err := conn.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, uintptr(syscall.TIOCGWINSZ), uintptr(unsafe.Pointer(&ws)))
	}); err != nil || errno != 0 || ws.col == 0 {
		return 0, false
	}
	return int(ws.col), true
}
