//go:build !(linux || darwin || freebsd || netbsd || dragonfly)

package main

import "os"

// terminalWidth reports false: on this system the display does not ask
// the terminal its width, and assumes defaultWidth.
func terminalWidth(*os.File) (int, bool) { return 0, false }
