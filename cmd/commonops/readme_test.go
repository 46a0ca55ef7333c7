package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The shell blocks of README.md's walk-through and of
// examples/product/README.md work when pasted: each README's blocks run, as
// written, with bash -e against a real server started the way the README
// says (its working directory holds examples/, so relative paths resolve),
// with localhost:8080 rewritten to the test's port and /tmp/ to the test's
// directory. The run must succeed and print what the comments promise.
func TestReadmeBlocks(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the README blocks need %s: %v", tool, err)
		}
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, readme string
		// from and to bound the section whose blocks run ("" for the file).
		from, to string
		args     []string
		want     []string
	}{
		{
			name: "walk-through", readme: "README.md", from: "## A 60-second walk-through", to: "## Import and export",
			want: []string{
				`"status": "completed"`,                         // the export, after the wait
				"id,taskType,entityType,status",                 // the head of its CSV
				`"uploadStatus": "uploaded"`,                    // the noop task's upload
				`{"status":"cancelled","cancelRequested":true}`, // cancel
				"\n204\n",                            // delete
				`"detail":"entityType: is required"`, // the problem document
			},
		},
		{
			name: "product", readme: "examples/product/README.md",
			args: []string{"--config", "examples/product/commonops.yaml"},
			want: []string{
				`"totalItems": 21`, `"successItems": 15`, `"failedItems": 6`, // step 3
				"abc",                           // errors.csv: row 9's price
				"FRU-0001,Apple,fruit",          // the fruit export
				"sku,name,category",             // its CSV
				"id,taskType,entityType,status", // the task history
				`[{"field":"params.format","message":"unknown format \"pdf\" (want csv, jsonl or xlsx)"}]`,
			},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(root, tt.readme))
			if err != nil {
				t.Fatal(err)
			}
			script := shellBlocks(t, string(b), tt.from, tt.to)
			dir := t.TempDir()
			if err := os.Symlink(filepath.Join(root, "examples"), filepath.Join(dir, "examples")); err != nil {
				t.Fatal(err)
			}
			scratch := t.TempDir()
			t.Chdir(dir)
			in := start(t, map[string]string{"COMMONOPS_DATA_DIR": filepath.Join(dir, "data")}, tt.args...)
			script = strings.ReplaceAll(script, "http://localhost:8080", in.base)
			script = strings.ReplaceAll(script, "/tmp/", scratch+"/")

			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, "bash", "-e", "-c", script)
			cmd.Dir = dir
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("the blocks of %s failed: %v\nscript:\n%s\noutput:\n%s", tt.readme, err, script, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("got no %q in the output, want it\noutput:\n%s", w, out)
				}
			}
		})
	}
}

// shellBlocks joins the ```sh blocks of the section of md from the heading
// from up to the heading to, leaving out those that start the service or
// the test suite (the test does both itself).
func shellBlocks(t *testing.T, md, from, to string) string {
	t.Helper()
	if from != "" {
		i := strings.Index(md, from)
		if i < 0 {
			t.Fatalf("no section %q", from)
		}
		md = md[i:]
		if j := strings.Index(md, to); to != "" && j >= 0 {
			md = md[:j]
		}
	}
	var blocks []string
	for {
		i := strings.Index(md, "```sh\n")
		if i < 0 {
			break
		}
		md = md[i+len("```sh\n"):]
		j := strings.Index(md, "```")
		if j < 0 {
			t.Fatal("an unclosed ```sh block")
		}
		block := md[:j]
		md = md[j+3:]
		first := strings.TrimSpace(block)
		if strings.HasPrefix(first, "go run ") || strings.HasPrefix(first, "scripts/") {
			continue
		}
		blocks = append(blocks, block)
	}
	if len(blocks) == 0 {
		t.Fatal("no shell block to run")
	}
	return strings.Join(blocks, "\n")
}
