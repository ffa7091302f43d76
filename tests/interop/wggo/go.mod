// Pins the wireguard-go that tailscale.com v1.102.3 ships: Tailscale's fork
// (TUN and UDP offloads), at the version tailscale.com v1.102.3's go.mod requires,
// with golang.org/x/{crypto,net,sys} at that go.mod's versions too (x/crypto is
// the ChaCha20-Poly1305 it runs).
// tools/setup_interop.sh builds its root package (package main, the standalone
// wireguard-go daemon) into $CACHE/interop/bin/wireguard-go-ts.
module tailkit.dev/interop/wggo

go 1.26.6

require (
	github.com/tailscale/wireguard-go v0.0.0-20260715223240-2e01ba5b00f0 // indirect
	golang.org/x/crypto v0.54.0 // indirect
	golang.org/x/net v0.56.0 // indirect
	golang.org/x/sys v0.47.0 // indirect
	golang.zx2c4.com/wintun v0.0.0-20230126152724-0fa3db229ce2 // indirect
)

tool github.com/tailscale/wireguard-go
