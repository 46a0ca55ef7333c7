package main

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat
// (100 on Linux, whatever the kernel's own HZ).
const clockTicks = 100

// cpuUse is the CPU time (user + system) of every process on the machine,
// by group: the processes a benchmark named (by pid) under their names,
// the others under their command name.
type cpuUse map[string]time.Duration

// cpuNames are the pids a benchmark names in the CPU table ("api",
// "worker 1", ...); other processes are grouped by command name.
type cpuNames map[int]string

// readCPU reads /proc. Processes that end between two readings drop out
// of the difference, so it suits phases where the measured processes live
// throughout (the service replicas, their sidecars, PostgreSQL's backends
// for the pooled connections).
func readCPU(names cpuNames) cpuUse {
	use := cpuUse{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // ended meanwhile
		}
		// pid (comm) state ppid ... utime stime: fields 14 and 15, counted
		// after the command name, which may hold spaces and parentheses.
		open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
		if open < 0 || end < open {
			continue
		}
		fields := strings.Fields(string(b[end+1:]))
		if len(fields) < 13 {
			continue
		}
		utime, _ := strconv.ParseInt(fields[11], 10, 64)
		stime, _ := strconv.ParseInt(fields[12], 10, 64)
		group := names[pid]
		if group == "" {
			group = string(b[open+1 : end])
			switch {
			case pid == os.Getpid():
				group = "bench (clients)"
			case isKernelThread(filepath.Join("/proc", e.Name())):
				group = "kernel threads"
			}
		}
		use[group] += time.Duration(utime+stime) * time.Second / clockTicks
	}
	return use
}

// isKernelThread reports whether the process at dir is a kernel thread
// (kworker, ksoftirqd, ...), which has no command line.
func isKernelThread(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "cmdline"))
	return err == nil && len(b) == 0
}

// cpuTable prints where the CPU went between two readings over a phase
// of length elapsed that did n tasks: each group's CPU seconds, its share
// of the machine's cores, and its CPU time per task. Groups under 1% of
// the total are summed into "other".
func cpuTable(before, after cpuUse, elapsed time.Duration, n int64) {
	type row struct {
		name string
		cpu  time.Duration
	}
	var rows []row
	var total time.Duration
	for name, a := range after {
		if d := a - before[name]; d > 0 {
			rows = append(rows, row{name, d})
			total += d
		}
	}
	slices.SortFunc(rows, func(a, b row) int { return cmp.Compare(b.cpu, a.cpu) })
	var other time.Duration
	cores := float64(elapsed) * float64(runtime.NumCPU())
	fmt.Printf("  %-34s %8s %8s %10s\n", "cpu: process", "seconds", "machine", "µs/task")
	for _, r := range rows {
		if float64(r.cpu) < 0.01*float64(total) {
			other += r.cpu
			continue
		}
		fmt.Printf("  %-34s %8.1f %7.0f%% %10.0f\n", r.name, r.cpu.Seconds(), 100*float64(r.cpu)/cores, perTask(r.cpu, n))
	}
	if other > 0 {
		fmt.Printf("  %-34s %8.1f %7.0f%% %10.0f\n", "other", other.Seconds(), 100*float64(other)/cores, perTask(other, n))
	}
	fmt.Printf("  %-34s %8.1f %7.0f%% %10.0f\n", "total", total.Seconds(), 100*float64(total)/cores, perTask(total, n))
}

func perTask(d time.Duration, n int64) float64 {
	if n == 0 {
		return 0
	}
	return float64(d.Microseconds()) / float64(n)
}

// profileService starts, when -profile-dir is set, the CPU profile over d
// of the service whose debug server listens on port, into the directory's
// file name; wait waits for it.
func profileService(port int, d time.Duration, name string) (wait func() error) {
	if *profileDir == "" {
		return func() error { return nil }
	}
	done := make(chan error, 1)
	go func() { done <- cpuProfile(port, d, filepath.Join(*profileDir, name)) }()
	return func() error { return <-done }
}

// cpuProfile fetches a CPU profile of d from the pprof listener on port
// (COMMONOPS_DEBUG_ADDR) into file.
func cpuProfile(port int, d time.Duration, file string) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile?seconds=%d", port, max(int(d.Seconds()), 1)))
	if err != nil {
		return fmt.Errorf("cpu profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("cpu profile: %s", resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
