package main

import (
	"bufio"
	"debug/elf"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
)

// TestDockerfileBuild replays the image's build stage without a container
// engine: the build context is the repository as .dockerignore filters it,
// copied to a temporary directory, and the builder's go build line runs
// there as written (its build argument set). The binary must be static (no
// interpreter, no shared library, as distroless static has no C library)
// and run. The final stage must be distroless, non-root and without a
// shell. It skips under -short only: the build takes a while.
func TestDockerfileBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("replays the Dockerfile's go build; run without -short")
	}
	t.Parallel()
	root := filepath.Join("..", "..")
	df, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	stages := dockerStages(string(df))
	if len(stages) != 2 {
		t.Fatalf("got %d stages, want 2 (build, run)", len(stages))
	}
	final := stages[1]
	if from := final.from; !strings.HasPrefix(from, "gcr.io/distroless/static") || !strings.HasSuffix(from, ":nonroot") {
		t.Errorf("final stage FROM %s, want gcr.io/distroless/static...:nonroot", from)
	}
	if got := final.last("USER"); got != "65532:65532" {
		t.Errorf("final stage USER %q, want 65532:65532", got)
	}
	if got := final.last("RUN"); got != "" {
		t.Errorf("final stage RUN %q: the run image has no shell", got)
	}
	if got := final.last("ENTRYPOINT"); !strings.HasPrefix(got, "[") {
		t.Errorf("ENTRYPOINT %s, want the exec (JSON) form: there is no shell", got)
	}

	var build string
	for _, r := range stages[0].all("RUN") {
		if strings.Contains(r, "go build") {
			build = r
		}
	}
	if build == "" || !strings.Contains(build, "CGO_ENABLED=0") {
		t.Fatalf("build stage: got go build line %q, want one with CGO_ENABLED=0", build)
	}
	build = strings.ReplaceAll(build, "${VERSION}", "docker-test")
	out := t.TempDir()
	build = strings.ReplaceAll(build, "/out/commonops", filepath.Join(out, "commonops"))

	ctxDir := t.TempDir()
	copyContext(t, root, ctxDir)
	cmd := exec.Command("sh", "-c", build)
	cmd.Dir = ctxDir
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", build, err, b)
	}
	bin := filepath.Join(out, "commonops")
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("the binary asks for an interpreter: it is not static")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the binary links %v: it is not static", libs)
	}
	v, err := exec.Command(bin, "version").Output()
	if err != nil || strings.TrimSpace(string(v)) != "commonops docker-test" {
		t.Errorf("commonops version: got %q %v, want commonops docker-test", v, err)
	}
}

// stage is one FROM section of a Dockerfile: its image and instructions.
type stage struct {
	from string
	ins  [][2]string // instruction, arguments
}

func (s stage) all(name string) []string {
	var out []string
	for _, in := range s.ins {
		if in[0] == name {
			out = append(out, in[1])
		}
	}
	return out
}

func (s stage) last(name string) string {
	all := s.all(name)
	if len(all) == 0 {
		return ""
	}
	return all[len(all)-1]
}

// dockerStages parses the Dockerfile's instructions (comments dropped,
// continued lines joined) into stages.
func dockerStages(df string) []stage {
	var stages []stage
	sc := bufio.NewScanner(strings.NewReader(df))
	var line string
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(l, "#") || (l == "" && line == "") {
			continue
		}
		if c, ok := strings.CutSuffix(l, "\\"); ok {
			line += c + " "
			continue
		}
		line += l
		name, args, _ := strings.Cut(line, " ")
		line = ""
		name = strings.ToUpper(name)
		if name == "FROM" {
			image, _, _ := strings.Cut(strings.TrimSpace(args), " ")
			stages = append(stages, stage{from: image})
			continue
		}
		if len(stages) > 0 {
			stages[len(stages)-1].ins = append(stages[len(stages)-1].ins, [2]string{name, strings.TrimSpace(args)})
		}
	}
	return stages
}

// copyContext copies the files of root that .dockerignore lets into the
// build context to dst.
func copyContext(t *testing.T, root, dst string) {
	t.Helper()
	ignore := dockerIgnore(t, filepath.Join(root, ".dockerignore"))
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		if ignore(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatalf("copy the build context: %v", err)
	}
}

// dockerIgnore reads a .dockerignore into a matcher of slash paths relative
// to the context: the last matching pattern decides, "!" lets a path in
// again, a leading "**/" matches at any depth, and a pattern matching a
// directory covers what it holds.
func dockerIgnore(t *testing.T, file string) func(string) bool {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	type rule struct {
		pattern string
		allow   bool
	}
	var rules []rule
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		r := rule{}
		if p, ok := strings.CutPrefix(l, "!"); ok {
			r.allow, l = true, p
		}
		r.pattern = strings.TrimSuffix(strings.TrimPrefix(path.Clean("/"+l), "/"), "/")
		rules = append(rules, r)
	}
	match := func(pattern, p string) bool {
		if rest, ok := strings.CutPrefix(pattern, "**/"); ok {
			parts := strings.Split(p, "/")
			for i := range parts {
				if ok, _ := path.Match(rest, strings.Join(parts[i:], "/")); ok {
					return true
				}
			}
			return false
		}
		ok, _ := path.Match(pattern, p)
		return ok
	}
	return func(p string) bool {
		ignored := false
		for _, r := range rules {
			// The path or one of its parent directories matches.
			for q := p; q != "."; q = path.Dir(q) {
				if match(r.pattern, q) {
					ignored = !r.allow
					break
				}
			}
		}
		return ignored
	}
}
