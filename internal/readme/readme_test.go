package readme_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// goBlocks returns the ```go blocks of a Markdown text, without their
// fences.
func goBlocks(md string) []string {
	var blocks []string
	var cur []string
	in := false
	for line := range strings.Lines(md) {
		line = strings.TrimRight(line, "\r\n")
		switch {
		case !in && line == "```go":
			in, cur = true, nil
		case in && line == "```":
			in = false
			blocks = append(blocks, strings.Join(cur, "\n"))
		case in:
			cur = append(cur, line)
		}
	}
	return blocks
}

// exampleBodies returns the statements of every Example function of the
// file, as its source says them, one tab of indentation removed.
func exampleBodies(t *testing.T, file string) map[string]string {
	t.Helper()
	src, err := os.ReadFile(file)
	require.NoError(t, err)
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, file, src, parser.ParseComments)
	require.NoError(t, err)
	bodies := map[string]string{}
	for _, d := range f.Decls {
		fn, ok := d.(*ast.FuncDecl)
		if !ok || !strings.HasPrefix(fn.Name.Name, "Example") {
			continue
		}
		body := string(src[fset.Position(fn.Body.Lbrace).Offset+1 : fset.Position(fn.Body.Rbrace).Offset])
		var lines []string
		for line := range strings.Lines(strings.Trim(body, "\n")) {
			lines = append(lines, strings.TrimPrefix(strings.TrimRight(line, "\n"), "\t"))
		}
		bodies[fn.Name.Name] = strings.Join(lines, "\n")
	}
	return bodies
}

// TestSnippetsCompile checks that every Go snippet of README.md is, line
// for line, in an Example of example_test.go, which compiles it, runs it
// and checks what it prints: a snippet copied from the README then
// compiles in a function body with the Example's imports. The README's
// tour used a states variable that it never defined.
func TestSnippetsCompile(t *testing.T) {
	md, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	blocks := goBlocks(string(md))
	require.NotEmpty(t, blocks, "README.md has no ```go block: has the fence changed?")
	bodies := exampleBodies(t, "example_test.go")
	require.NotEmpty(t, bodies)
	for i, block := range blocks {
		found := false
		for _, body := range bodies {
			found = found || strings.Contains("\n"+body+"\n", "\n"+block+"\n")
		}
		assert.True(t, found, "README.md's Go snippet %d is in no Example of internal/readme/example_test.go, "+
			"which compiles and runs it: make the Example hold it, line for line:\n%s", i+1, block)
	}
}

func TestGoBlocks(t *testing.T) {
	md := "text\n```go\na := 1\n\nfmt.Print(a)\n```\n```sh\ngo run .\n```\n```go\nb\n```\n"
	assert.Equal(t, []string{"a := 1\n\nfmt.Print(a)", "b"}, goBlocks(md))
}

// mdLink matches a Markdown link's target: [text](target).
var mdLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// anchor returns GitHub's anchor of a heading's text: lower case, spaces
// as hyphens, and punctuation other than hyphens and underscores dropped.
func anchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// TestLinksResolve checks that every relative link of README.md names a
// file or directory of the module, and every #anchor one of its
// headings, so that a newcomer who follows one lands somewhere.
func TestLinksResolve(t *testing.T) {
	md, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	anchors := map[string]bool{}
	for line := range strings.Lines(string(md)) {
		if h, ok := strings.CutPrefix(line, "#"); ok {
			anchors[anchor(strings.TrimSpace(strings.TrimLeft(h, "#")))] = true
		}
	}
	links := mdLink.FindAllStringSubmatch(string(md), -1)
	require.NotEmpty(t, links, "README.md has no link: has the syntax changed?")
	for _, m := range links {
		target := m[1]
		switch {
		case strings.Contains(target, "://"):
		case strings.HasPrefix(target, "#"):
			assert.True(t, anchors[target[1:]], "README.md links to %s, which no heading makes", target)
		default:
			path, _, _ := strings.Cut(target, "#")
			_, err := os.Stat(filepath.Join("../..", filepath.FromSlash(path)))
			assert.NoError(t, err, "README.md links to %s, which is not in the module", target)
		}
	}
}

func TestAnchor(t *testing.T) {
	assert.Equal(t, "executorpgstore", anchor("executor/pgstore"))
	assert.Equal(t, "a-30-second-tour", anchor("A 30-second tour"))
	assert.Equal(t, "the-plan-cli", anchor("The plan CLI"))
}
