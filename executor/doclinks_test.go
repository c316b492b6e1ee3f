package executor_test

import (
	"go/ast"
	"go/doc"
	"go/doc/comment"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const modulePath = "github.com/regengraph/regen"

// pkgSymbols is what a doc link may name in one package: its top-level
// names, and Type.Method and Type.Field; aliases holds its type aliases,
// whose methods and fields are another package's.
type pkgSymbols struct {
	names, aliases map[string]bool
}

// parsePkg parses the Go files of dir, tests left out.
func parsePkg(t *testing.T, fset *token.FileSet, dir string) []*ast.File {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var files []*ast.File
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, e.Name()), nil, parser.ParseComments)
		require.NoError(t, err)
		files = append(files, f)
	}
	return files
}

func symbolsOf(files []*ast.File) pkgSymbols {
	s := pkgSymbols{names: map[string]bool{}, aliases: map[string]bool{}}
	for _, f := range files {
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if d.Recv == nil {
					s.names[d.Name.Name] = true
					continue
				}
				typ := d.Recv.List[0].Type
				if st, ok := typ.(*ast.StarExpr); ok {
					typ = st.X
				}
				if ix, ok := typ.(*ast.IndexExpr); ok {
					typ = ix.X
				}
				if ix, ok := typ.(*ast.IndexListExpr); ok {
					typ = ix.X
				}
				if id, ok := typ.(*ast.Ident); ok {
					s.names[id.Name+"."+d.Name.Name] = true
				}
			case *ast.GenDecl:
				for _, spec := range d.Specs {
					switch sp := spec.(type) {
					case *ast.TypeSpec:
						s.names[sp.Name.Name] = true
						if sp.Assign.IsValid() {
							s.aliases[sp.Name.Name] = true
						}
						var fields *ast.FieldList
						switch tt := sp.Type.(type) {
						case *ast.StructType:
							fields = tt.Fields
						case *ast.InterfaceType:
							fields = tt.Methods
						}
						if fields != nil {
							for _, fl := range fields.List {
								for _, n := range fl.Names {
									s.names[sp.Name.Name+"."+n.Name] = true
								}
							}
						}
					case *ast.ValueSpec:
						for _, n := range sp.Names {
							s.names[n.Name] = true
						}
					}
				}
			}
		}
	}
	return s
}

// docLinks returns the doc links of text, parsed by p.
func docLinks(p *comment.Parser, text string) []*comment.DocLink {
	var links []*comment.DocLink
	var walk func(ts []comment.Text)
	walk = func(ts []comment.Text) {
		for _, x := range ts {
			switch x := x.(type) {
			case *comment.DocLink:
				links = append(links, x)
			case *comment.Link:
				walk(x.Text)
			}
		}
	}
	var blocks func(bs []comment.Block)
	blocks = func(bs []comment.Block) {
		for _, b := range bs {
			switch b := b.(type) {
			case *comment.Paragraph:
				walk(b.Text)
			case *comment.Heading:
				walk(b.Text)
			case *comment.List:
				for _, it := range b.Items {
					blocks(it.Content)
				}
			}
		}
	}
	blocks(p.Parse(text).Content)
	return links
}

// Every doc link of the module's doc comments ([Name], [Type.Method],
// [pkg.Name]) names something that exists: graphof.go linked to
// graph.BuildWith, which does not (graph.Options.Build does).
func TestDocLinksResolve(t *testing.T) {
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	out, err := exec.Command("go", "env", "GOROOT").Output()
	require.NoError(t, err)
	goroot := strings.TrimSpace(string(out))
	fset := token.NewFileSet()
	syms := map[string]pkgSymbols{} // by import path
	lookup := func(path string) pkgSymbols {
		if s, ok := syms[path]; ok {
			return s
		}
		dir := filepath.Join(goroot, "src", path)
		if path == modulePath || strings.HasPrefix(path, modulePath+"/") {
			dir = filepath.Join(root, strings.TrimPrefix(path, modulePath))
		}
		s := symbolsOf(parsePkg(t, fset, dir))
		syms[path] = s
		return s
	}
	exported := func(name string) bool { return name != "" && ast.IsExported(name) }
	err = filepath.WalkDir(root, func(dir string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		if name := d.Name(); name == "testdata" || strings.HasPrefix(name, ".") && dir != root {
			return filepath.SkipDir
		}
		files := parsePkg(t, fset, dir)
		if len(files) == 0 {
			return nil
		}
		rel, _ := filepath.Rel(root, dir)
		path := modulePath
		if rel != "." {
			path += "/" + filepath.ToSlash(rel)
		}
		dp, err := doc.NewFromFiles(fset, files, path, doc.AllDecls|doc.PreserveAST)
		require.NoError(t, err)
		p := dp.Parser()
		// Every exported name in brackets is taken as a link, so that one
		// to a name that does not exist is found, not left as text.
		p.LookupSym = func(recv, name string) bool { return exported(recv) || recv == "" && exported(name) }
		local := lookup(path)
		for _, f := range files {
			ast.Inspect(f, func(n ast.Node) bool {
				var cg *ast.CommentGroup
				switch n := n.(type) {
				case *ast.File:
					cg = n.Doc
				case *ast.FuncDecl:
					cg = n.Doc
				case *ast.GenDecl:
					cg = n.Doc
				case *ast.TypeSpec:
					cg = n.Doc
				case *ast.ValueSpec:
					cg = n.Doc
				case *ast.Field:
					cg = n.Doc
				}
				if cg == nil {
					return true
				}
				for _, l := range docLinks(p, cg.Text()) {
					s, target, in := local, l.Name, path
					if l.ImportPath != "" {
						s, in = lookup(l.ImportPath), l.ImportPath
					}
					if l.Recv != "" {
						target = l.Recv + "." + l.Name
					}
					if l.Name == "" || l.Recv != "" && s.aliases[l.Recv] {
						continue // a package, or a member of an alias's type
					}
					assert.True(t, s.names[target], "%s: [%s] names nothing in %s", fset.Position(cg.Pos()), strings.TrimPrefix(l.ImportPath+"."+target, "."), in)
				}
				return true
			})
		}
		return nil
	})
	require.NoError(t, err)
}
