// tsnetbench: the Go side of tools/bench/embed.py (issue 14's benchmark).
// One tsnet node in this process, doing what tools/bench/embed_bench.c does
// on libtailscale's API, step for step, so the two can be compared in the
// same run:
//
//  1. Up(), then dial PEER:7 (the harness's TCP echo) until one byte comes
//     back: "up MS" when Up() returned, "connected MS" when that reply came
//     (both from the call to Up());
//  2. that connection closed, SETTLE seconds idle, then "idle RSS_KIB
//     ANON_KIB THREADS" from /proc/self/status;
//  3. ROUNDS round trips of 64 bytes (write, read them all back) on one
//     connection: "echo ROUNDS MS";
//  4. "done", Close().
//
// The DERP server is plain HTTP (derper on a non-443 port) with -derp-http,
// and the node never uses direct paths with -derp-only, as interop-peer's
// flags of the same names.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"strings"
	"time"

	"tailscale.com/envknob"
	"tailscale.com/ipn/store/mem"
	"tailscale.com/net/netns"
	"tailscale.com/tsnet"
	"tailscale.com/types/logger"
)

func main() {
	ctl := flag.String("control", "", "control server URL")
	authKey := flag.String("authkey", "", "pre-auth key")
	dir := flag.String("dir", "", "state directory")
	host := flag.String("hostname", "gobench", "host name")
	peer := flag.String("peer", "", "tailnet IP of a node serving TCP echo on port 7")
	rounds := flag.Int("rounds", 2000, "echo round trips")
	settle := flag.Duration("settle", 5*time.Second, "idle time before the RSS sample")
	derpOnly := flag.Bool("derp-only", false, "never use direct paths (TS_DEBUG_ALWAYS_USE_DERP)")
	derpHTTP := flag.Bool("derp-http", false, "the DERP server speaks plain HTTP")
	flag.Parse()
	if *ctl == "" || *peer == "" || *dir == "" {
		log.Fatal("usage: tsnetbench -control URL -authkey KEY -dir DIR -peer IP [-rounds N]")
	}
	// as interop-peer: loopback only, no log upload, no port mapping
	netns.SetEnabled(false)
	os.Setenv("TS_NO_LOGS_NO_SUPPORT", "true")
	os.Setenv("TS_DISABLE_PORTMAPPER", "1")
	if *derpOnly {
		envknob.Setenv("TS_DEBUG_ALWAYS_USE_DERP", "true")
	}
	if *derpHTTP {
		envknob.Setenv("TS_DEBUG_USE_DERP_HTTP", "true")
	}
	s := &tsnet.Server{Dir: *dir, ControlURL: *ctl, Hostname: *host, Store: new(mem.Store),
		Ephemeral: true, AuthKey: *authKey, Logf: logger.Discard, UserLogf: logger.Discard}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	addr := net.JoinHostPort(*peer, "7")

	t0 := time.Now()
	if _, err := s.Up(ctx); err != nil {
		log.Fatalf("up: %v", err)
	}
	fmt.Printf("up %.1f\n", float64(time.Since(t0).Microseconds())/1000)
	for {
		if ctx.Err() != nil {
			log.Fatal("no echo reply within 90 s")
		}
		if firstEcho(ctx, s, addr) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	fmt.Printf("connected %.1f\n", float64(time.Since(t0).Microseconds())/1000)

	time.Sleep(*settle)
	fmt.Printf("idle %s\n", procStatus())

	c, err := s.Dial(ctx, "tcp", addr)
	if err != nil {
		log.Fatalf("dial: %v", err)
	}
	msg := []byte(strings.Repeat("e", 64))
	buf := make([]byte, len(msg))
	t1 := time.Now()
	for i := 0; i < *rounds; i++ {
		if _, err := c.Write(msg); err != nil {
			log.Fatalf("write: %v", err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			log.Fatalf("read: %v", err)
		}
	}
	fmt.Printf("echo %d %.1f\n", *rounds, float64(time.Since(t1).Microseconds())/1000)
	c.Close()
	fmt.Println("done")
}

// firstEcho: one dial, one byte out, the same byte back within 2 s.
func firstEcho(ctx context.Context, s *tsnet.Server, addr string) bool {
	dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := s.Dial(dctx, "tcp", addr)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	b := []byte{'x'}
	if _, err := c.Write(b); err != nil {
		return false
	}
	_, err = io.ReadFull(c, b)
	return err == nil && b[0] == 'x'
}

// procStatus: "VmRSS RssAnon Threads" (KiB, KiB, count) from /proc/self/status.
func procStatus() string {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return "0 0 0"
	}
	defer f.Close()
	v := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, rest, ok := strings.Cut(sc.Text(), ":")
		if ok {
			v[k] = strings.Fields(rest + " 0")[0]
		}
	}
	return v["VmRSS"] + " " + v["RssAnon"] + " " + v["Threads"]
}
