// Command derpclient is a Go DERP client built from Tailscale's own derphttp
// package: it connects two clients to a DERP server, sends packets each way
// between them and prints one JSON line with what arrived.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"tailscale.com/derp"
	"tailscale.com/derp/derphttp"
	"tailscale.com/net/netmon"
	"tailscale.com/types/key"
	"tailscale.com/types/logger"
)

func main() {
	url := flag.String("url", "", "DERP URL, e.g. http://127.0.0.1:3340/derp")
	n := flag.Int("n", 10, "packets each way")
	timeout := flag.Duration("timeout", 15*time.Second, "overall deadline")
	flag.Parse()
	res := run(*url, *n, *timeout)
	b, _ := json.Marshal(res)
	fmt.Println(string(b))
	if res["ok"] != true {
		os.Exit(1)
	}
}

// Self-signed test certificates: point SSL_CERT_FILE at them (Go's system
// root pool honours it); tailscale's tlsdial refuses InsecureSkipVerify.
func client(url string) (*derphttp.Client, key.NodePublic, error) {
	k := key.NewNode()
	c, err := derphttp.NewClient(k, url, logger.Discard, netmon.NewStatic())
	if err != nil {
		return nil, key.NodePublic{}, err
	}
	return c, k.Public(), nil
}

func run(url string, n int, timeout time.Duration) map[string]any {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	a, akey, err := client(url)
	if err != nil {
		return map[string]any{"ok": false, "error": err.Error()}
	}
	defer a.Close()
	b, bkey, err := client(url)
	if err != nil {
		return map[string]any{"ok": false, "error": err.Error()}
	}
	defer b.Close()
	for _, c := range []*derphttp.Client{a, b} {
		if err := c.Connect(ctx); err != nil {
			return map[string]any{"ok": false, "error": "connect: " + err.Error()}
		}
	}
	type result struct {
		name string
		n    int
		err  string
	}
	got := map[string]int{}
	done := make(chan result, 2)
	recv := func(name string, c *derphttp.Client, from key.NodePublic, prefix string) {
		count := 0
		for count < n {
			m, err := c.Recv()
			if err != nil {
				done <- result{name, count, name + ": " + err.Error()}
				return
			}
			if p, ok := m.(derp.ReceivedPacket); ok && p.Source == from &&
				bytes.HasPrefix(p.Data, []byte(prefix)) {
				count++
			}
		}
		done <- result{name, count, ""}
	}
	go recv("b", b, akey, "a->b")
	go recv("a", a, bkey, "b->a")
	// Resend until received: the peer may not be registered yet.
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var errs []string
	for waiting := 2; waiting > 0; {
		select {
		case r := <-done:
			waiting--
			got[r.name] = r.n
			if r.err != "" {
				errs = append(errs, r.err)
			}
		case <-tick.C:
			for i := 0; i < n; i++ {
				a.Send(bkey, []byte(fmt.Sprintf("a->b %d", i)))
				b.Send(akey, []byte(fmt.Sprintf("b->a %d", i)))
			}
		case <-ctx.Done():
			return map[string]any{"ok": false, "error": "timeout", "received": got}
		}
	}
	res := map[string]any{"ok": len(errs) == 0, "received": got,
		"server_key": a.ServerPublicKey().String()}
	if len(errs) > 0 {
		res["error"] = errs
	}
	return res
}
