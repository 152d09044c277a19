// Command pstat measures a process tree while a benchmark runs: the CPU time
// (utime+stime, and that of reaped children) it spends between start and
// stop, and its peak memory. It runs until its standard input is closed or it
// gets SIGTERM/SIGINT, then prints one JSON object.
//
// The tree is the process and every descendant (nginx's workers, HAProxy's
// threads are in the one process). Peak RSS and PSS are the maxima of the
// tree's sums sampled every -interval during the run; hwm_kb sums each
// process's VmHWM, its peak over its whole life (startup included), which
// counts pages shared between processes once per process.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

type result struct {
	PID        int     `json:"pid"`
	Processes  int     `json:"processes"`
	CPUSeconds float64 `json:"cpu_s"`
	WallSecond float64 `json:"wall_s"`
	PeakRSSKB  int64   `json:"peak_rss_kb"`
	PeakPSSKB  int64   `json:"peak_pss_kb"`
	HWMKB      int64   `json:"hwm_kb"`
	Samples    int     `json:"samples"`
}

func main() {
	pid := flag.Int("pid", 0, "root of the process tree")
	interval := flag.Duration("interval", 100*time.Millisecond, "memory sampling interval")
	flag.Parse()
	if *pid <= 0 {
		flag.Usage()
		os.Exit(2)
	}
	stop := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); close(stop) }()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)

	start := time.Now()
	cpu0 := treeTicks(*pid)
	r := result{PID: *pid}
	sample := func() {
		pids := tree(*pid)
		var rss, pss int64
		for _, p := range pids {
			rss += statusKB(p, "VmRSS:")
			pss += pssKB(p)
		}
		r.PeakRSSKB = max(r.PeakRSSKB, rss)
		r.PeakPSSKB = max(r.PeakPSSKB, pss)
		r.Samples++
	}
	sample()
	t := time.NewTicker(*interval)
	defer t.Stop()
loop:
	for {
		select {
		case <-t.C:
			sample()
		case <-stop:
			break loop
		case <-sig:
			break loop
		}
	}
	sample()
	pids := tree(*pid)
	for _, p := range pids {
		r.HWMKB += statusKB(p, "VmHWM:")
	}
	r.Processes = len(pids)
	r.CPUSeconds = float64(treeTicks(*pid)-cpu0) / clockTicks
	r.WallSecond = time.Since(start).Seconds()
	if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
		fmt.Fprintln(os.Stderr, "pstat:", err)
		os.Exit(1)
	}
}

// stat returns the fields of /proc/pid/stat after the command name.
func stat(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // the name may hold spaces and parentheses
	if i < 0 {
		return nil
	}
	return strings.Fields(s[i+1:])
}

// tree lists pid and its descendants.
func tree(root int) []int {
	children := map[int][]int{}
	ents, _ := filepath.Glob("/proc/[0-9]*")
	for _, e := range ents {
		p, err := strconv.Atoi(filepath.Base(e))
		if err != nil {
			continue
		}
		f := stat(p)
		if len(f) < 2 {
			continue
		}
		pp, _ := strconv.Atoi(f[1]) // field 4: ppid
		children[pp] = append(children[pp], p)
	}
	out := []int{root}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// treeTicks sums utime, stime, cutime and cstime (fields 14-17) over the
// tree, so work done by children that exited and were reaped still counts.
func treeTicks(root int) int64 {
	var sum int64
	for _, p := range tree(root) {
		f := stat(p)
		if len(f) < 15 {
			continue
		}
		for _, s := range f[11:15] { // fields 14..17 (1-based, counting pid and comm)
			v, _ := strconv.ParseInt(s, 10, 64)
			sum += v
		}
	}
	return sum
}

func statusKB(pid int, key string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), key); ok {
			v, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return v
		}
	}
	return 0
}

func pssKB(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "Pss:"); ok {
			v, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return v
		}
	}
	return 0
}
