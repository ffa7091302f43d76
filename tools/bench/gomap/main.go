// gomap: the Go side of tools/bench/ctrld_map.sh.  Decodes the MapResponse
// JSON files tk_bench_ctrld_map wrote into tailcfg.MapResponse with
// encoding/json, as control/controlclient/direct.go decodeMsg does, and
// prints the medians in the same "name value" form as the C side.
//
//	go run . DIR RUNS
//	go run . DIR rss    (peak RSS decoding full_100000.json once, alone)
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"time"

	"tailscale.com/tailcfg"
)

func median(v []float64) float64 {
	sort.Float64s(v)
	return v[len(v)/2]
}

func decode(b []byte) {
	var resp tailcfg.MapResponse
	if err := json.Unmarshal(b, &resp); err != nil {
		fmt.Fprintln(os.Stderr, "gomap:", err)
		os.Exit(1)
	}
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: gomap DIR RUNS")
		os.Exit(2)
	}
	dir := os.Args[1]
	if os.Args[2] == "rss" {
		// in a process of its own: the file is read first (base), then
		// decoded once; ru_maxrss is the peak
		b, err := os.ReadFile(filepath.Join(dir, "full_100000.json"))
		if err != nil {
			fmt.Fprintln(os.Stderr, "gomap:", err)
			os.Exit(1)
		}
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		fmt.Printf("go_rss_100000_base_kb %d\n", ru.Maxrss)
		t := time.Now()
		var c0, c1 syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &c0)
		var resp tailcfg.MapResponse
		if err := json.Unmarshal(b, &resp); err != nil || len(resp.Peers) != 100000 {
			fmt.Fprintln(os.Stderr, "gomap: the 100,000-peer map:", err)
			os.Exit(1)
		}
		syscall.Getrusage(syscall.RUSAGE_SELF, &c1)
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		cpu := func(r syscall.Rusage) float64 {
			return float64(r.Utime.Nano()+r.Stime.Nano()) / 1e6
		}
		fmt.Printf("go_rss_100000_peak_kb %d\ngo_once_100000_ms %.2f\n"+
			"go_once_100000_cpu_ms %.2f\n", ru.Maxrss,
			float64(time.Since(t).Microseconds())/1000, cpu(c1)-cpu(c0))
		return
	}
	runs, err := strconv.Atoi(os.Args[2])
	if err != nil || runs < 1 {
		fmt.Fprintln(os.Stderr, "gomap: RUNS must be a positive integer")
		os.Exit(2)
	}
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			fmt.Fprintln(os.Stderr, "gomap:", err)
			os.Exit(1)
		}
		return b
	}
	for _, n := range []int{1000, 10000, 100000} {
		b := read(fmt.Sprintf("full_%d.json", n))
		decode(b) // warm up
		var ms []float64
		for i := 0; i < runs; i++ {
			t := time.Now()
			decode(b)
			ms = append(ms, float64(time.Since(t).Microseconds())/1000)
		}
		fmt.Printf("go_full_%d_ms %.2f\n", n, median(ms))
	}
	for _, kind := range []string{"patch", "changed"} {
		b := read(kind + "_10000.json")
		const per = 20000
		var us []float64
		for i := 0; i < runs; i++ {
			t := time.Now()
			for j := 0; j < per; j++ {
				decode(b)
			}
			us = append(us, float64(time.Since(t).Nanoseconds())/1000/per)
		}
		fmt.Printf("go_%s_10000_us %.2f\n", kind, median(us))
	}
}
