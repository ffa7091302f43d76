/*
 * Mesh links to the other servers of the region (cmd/derper mesh.go).
 * Not implemented yet: --mesh-with is refused; a mesh-key holder that
 * connects to us is still served in full (WatchConns, ClosePeer,
 * ForwardPacket), so a Go derper may mesh *to* derpd.
 */
#include "server_int.h"
#include "tk/err.h"

#include <stdio.h>

int
derpdi_mesh_start(derpd_server *s, char *err, size_t errlen)
{
	(void)s;
	if (err && errlen)
		snprintf(err, errlen, "--mesh-with is not implemented yet; "
		    "peers can still mesh to this server with --mesh-psk-file");
	return TK_ENOTSUP;
}

void
derpdi_mesh_stop(derpd_server *s)
{
	(void)s;
}

int
derpdi_mesh_forward(derpdi_mesh *m, const uint8_t *src, const uint8_t *dst,
    const uint8_t *pkt, size_t n)
{
	(void)m;
	(void)src;
	(void)dst;
	(void)pkt;
	(void)n;
	return TK_ENOTSUP;
}
