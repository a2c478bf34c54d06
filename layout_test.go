package main

// The project's layout rules, asserted so they cannot rot (docs/ARCHITECTURE.md):
//
//   - internal/... imports no other package of the project;
//   - signaling, client, turn and web do not import each other;
//   - no non-test Go file over 500 lines, no function over 60 lines
//     outside tests, no JavaScript file under web/ over 600 lines.
//
// Run just these with: go test -run TestLayout .

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const (
	module        = "cloakroom"
	maxGoFileLine = 500
	maxFuncLines  = 60
	maxJSFileLine = 600
)

// layers are the packages that must not import one another.
var layers = []string{"signaling", "client", "turn", "web"}

type listedPackage struct {
	ImportPath string
	Deps       []string
}

func projectDeps(t *testing.T) []listedPackage {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps=false", "-json=ImportPath,Deps", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []listedPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p listedPackage
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 5 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	return pkgs
}

func inProject(path string) bool {
	return path == module || strings.HasPrefix(path, module+"/")
}

func under(path, dir string) bool {
	p := module + "/" + dir
	return path == p || strings.HasPrefix(path, p+"/")
}

// TestLayoutImports checks the import rules on the transitive dependencies
// (go list's Deps), so an indirect import breaks the rule as well.
func TestLayoutImports(t *testing.T) {
	for _, p := range projectDeps(t) {
		for _, d := range p.Deps {
			if !inProject(d) {
				continue
			}
			if under(p.ImportPath, "internal") {
				t.Errorf("%s imports %s: internal/... must not import other project packages", p.ImportPath, d)
			}
			for _, a := range layers {
				for _, b := range layers {
					if a != b && under(p.ImportPath, a) && under(d, b) {
						t.Errorf("%s imports %s: %s and %s must not import each other", p.ImportPath, d, a, b)
					}
				}
			}
		}
	}
}

// sourceFiles walks the module for files ending in ext, skipping
// node_modules, vendored browser libraries and test output.
func sourceFiles(t *testing.T, ext string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case "node_modules", "vendor", "test-output", ".git", "testdata":
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(path, ext) {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk: %v", err)
	}
	return files
}

func countLines(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		n++
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return n
}

// TestLayoutSizes measures file lengths in lines and function lengths from
// the line of "func" to the line of the closing brace (go/ast positions).
func TestLayoutSizes(t *testing.T) {
	goFiles := sourceFiles(t, ".go")
	if len(goFiles) < 20 {
		t.Fatalf("found only %d Go files", len(goFiles))
	}
	fset := token.NewFileSet()
	for _, path := range goFiles {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		if n := countLines(t, path); n > maxGoFileLine {
			t.Errorf("%s: %d lines, limit %d", path, n, maxGoFileLine)
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			t.Fatalf("parse %s: %v", path, err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			var name string
			switch fn := n.(type) {
			case *ast.FuncDecl:
				name = fn.Name.Name
			case *ast.FuncLit:
				name = "func literal"
			default:
				return true
			}
			lines := fset.Position(n.End()).Line - fset.Position(n.Pos()).Line + 1
			if lines > maxFuncLines {
				t.Errorf("%s: %s at line %d is %d lines, limit %d",
					path, name, fset.Position(n.Pos()).Line, lines, maxFuncLines)
			}
			return true
		})
	}
	js := append(sourceFiles(t, ".js"), sourceFiles(t, ".mjs")...)
	for _, path := range js {
		if n := countLines(t, path); n > maxJSFileLine {
			t.Errorf("%s: %d lines, limit %d", path, n, maxJSFileLine)
		}
	}
	if testing.Verbose() {
		fmt.Printf("layout: %d Go files, %d JavaScript files checked\n", len(goFiles), len(js))
	}
}
