// Package readme keeps the Go snippets of the module's README.md true:
// its tests hold each snippet in an Example that compiles, runs and
// checks its output, and fail when a snippet of the README is not, line
// for line, in one of them.
package readme
