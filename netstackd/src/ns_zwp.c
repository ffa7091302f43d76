/*
 * Zero-window probes and the sequence number of our ACKs.
 *
 * When the peer's window is zero, lwIP 2.1.3's persist timer sends one
 * byte of the next segment as a probe and moves snd_nxt past that byte
 * ("it may be acknowledged without the window being opened").  Every empty
 * ACK lwIP sends afterwards carries SEG.SEQ = snd_nxt, one beyond the
 * peer's RCV.NXT.  A receiver with a zero window that applies RFC 9293's
 * acceptability table to the letter (gVisor's netstack, which Tailscale's
 * Go nodes run: a zero window accepts only SEG.SEQ = RCV.NXT with no data)
 * drops those ACKs without reading their acknowledgment number.  The
 * connection then deadlocks: the peer never learns that we received its
 * data, its send buffer stays full, its application stops reading, and its
 * window stays zero.  Seen in the interop suite after a wgd restart lost
 * some of a Go node's echoed data: the Go node's retransmission reached us,
 * our ACK for it did not count.
 *
 * So while a probe byte is outstanding and unacknowledged, an empty ACK
 * goes out with SEG.SEQ = SND.UNA (what Linux sends: its probes never move
 * snd_nxt).  lwIP's own state is not touched: if the peer takes the probe
 * byte, its ACK moves lastack past it and the rewrite stops.  The rewrite
 * happens in LWIP_HOOK_TCP_OUT_ADD_TCPOPTS, before lwIP computes the
 * checksum.
 */
#include <stdint.h>

#include "ns_lwip_hooks.h"
#include "lwip/prot/tcp.h"
#include "lwip/tcp.h"

static unsigned long long zwp_acks_fixed;

u32_t *
ns_tcp_opts_hook(struct pbuf *p, struct tcp_hdr *h, const struct tcp_pcb *pcb,
    u32_t *opts)
{
	u32_t seq;

	/* the segment first: only an empty, pure ACK.  pcb may be a listening
	 * pcb (tcp_rst from tcp_listen_input passes one: a smaller struct of
	 * which only the common part may be read; found by fuzz_ns_input), so
	 * its state is checked before any other field. */
	if (p == NULL || h == NULL || TCPH_FLAGS(h) != TCP_ACK ||
	    p->tot_len != TCPH_HDRLEN_BYTES(h) || pcb == NULL ||
	    pcb->state < ESTABLISHED || pcb->state == TIME_WAIT)
		return opts;
	if (pcb->snd_wnd != 0 || pcb->persist_backoff == 0)
		return opts;
	seq = lwip_ntohl(h->seqno);
	if (seq == pcb->lastack + 1 && pcb->snd_nxt == pcb->lastack + 1) {
		h->seqno = lwip_htonl(pcb->lastack);
		zwp_acks_fixed++;
	}
	return opts;
}

unsigned long long
nsi_zwp_acks_fixed(void)
{
	return zwp_acks_fixed;
}
