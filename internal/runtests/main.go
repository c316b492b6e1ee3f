// Command runtests runs the project's tests, the README's test command:
//
//	go run ./internal/runtests [go test flags] [packages]
//
// It runs go test -race -count=1 with the flags and packages given, as
// go test takes them, or ./... when none is given. The race detector needs cgo, and so a C compiler
// such as gcc; Go turns cgo off on a machine without one, where go test
// -race cannot run at all. There runtests runs the tests without -race
// and says so on stderr, so that the command works with nothing but Go
// installed. Under CI=true it fails instead: CI never runs the tests
// without the race detector. Its exit status is go test's, or 2 when it
// cannot run go test.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// run runs go test with args and returns the exit status.
func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	gobin, err := exec.LookPath("go")
	if err != nil {
		fmt.Fprintf(stderr, "runtests: %v\n", err)
		return 2
	}
	cgo, cc, err := goEnv(gobin)
	if err != nil {
		fmt.Fprintf(stderr, "runtests: go env: %v\n", err)
		return 2
	}
	_, ccErr := exec.LookPath(cc)
	argv, note, err := command(args, cgo == "1" && ccErr == nil, getenv("CI") == "true")
	if err != nil {
		fmt.Fprintf(stderr, "runtests: %v\n", err)
		return 2
	}
	if note != "" {
		fmt.Fprintf(stderr, "runtests: %s\n", note)
	}
	fmt.Fprintf(stderr, "runtests: go %s\n", strings.Join(argv, " "))
	// Ctrl-C reaches go test too, which ends its tests and reports:
	// wait for it rather than die first.
	signal.Ignore(os.Interrupt)
	cmd := exec.Command(gobin, argv...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, stdout, stderr
	err = cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit) && exit.ExitCode() > 0:
		return exit.ExitCode()
	default:
		fmt.Fprintf(stderr, "runtests: %v\n", err)
		return 2
	}
}

// goEnv returns go env's CGO_ENABLED and the first word of its CC, the C
// compiler that cgo would run.
func goEnv(gobin string) (cgo, cc string, err error) {
	out, err := exec.Command(gobin, "env", "CGO_ENABLED", "CC").Output()
	if err != nil {
		return "", "", err
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 {
		return "", "", fmt.Errorf("want 2 lines, got %q", out)
	}
	cc = strings.TrimSpace(lines[1])
	if f := strings.Fields(cc); len(f) > 0 {
		cc = f[0]
	}
	return strings.TrimSpace(lines[0]), cc, nil
}

// command returns go test's arguments for the arguments given: -race
// -count=1 (-race only if race says the race detector can run), then
// args, and ./... after them if they name no package (none, or flags
// only, such as -v: go test would otherwise test the module root, which
// has no Go files). A note says why -race is missing; under ci that is an
// error instead.
func command(args []string, race, ci bool) (argv []string, note string, err error) {
	if !race {
		if ci {
			return nil, "", errors.New("CI=true and the race detector cannot run here: it needs cgo and a C compiler " +
				"(go env CGO_ENABLED must be 1, and go env CC must be installed, such as gcc)")
		}
		note = "running without -race: the race detector needs cgo and a C compiler, such as gcc; install one to run with it"
	}
	argv = []string{"test"}
	if race {
		argv = append(argv, "-race")
	}
	argv = append(argv, "-count=1")
	argv = append(argv, args...)
	if !namesPackages(args) {
		argv = append(argv, "./...")
	}
	return argv, note, nil
}

// boolFlags are the flags of go test and go build that take no value of
// their own (a value may still follow "="): every other flag written
// without "=" takes the next argument as its value.
var boolFlags = map[string]bool{
	"v": true, "short": true, "failfast": true, "benchmem": true, "json": true, "cover": true,
	"race": true, "msan": true, "asan": true, "a": true, "n": true, "x": true, "work": true,
	"trimpath": true, "linkshared": true, "modcacherw": true, "fullpath": true, "i": true,
}

// namesPackages reports whether args, go test's arguments, name a
// package: an argument that is neither a flag nor a flag's value. After
// "--" or the first package, the rest goes to the tests.
func namesPackages(args []string) bool {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" || !strings.HasPrefix(a, "-") || a == "-" {
			return a != "--"
		}
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") || boolFlags[name] {
			continue
		}
		i++ // the flag's value
	}
	return false
}
