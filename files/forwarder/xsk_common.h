/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Copyright: (c) 2026, kbypass.xdp developers
 *
 * The AF_XDP plumbing kbypass-fwd and kbypass-gen share: UMEM set-up, socket creation
 * with the EBUSY retry (a socket that just closed may still hold the queue), the TX kick
 * loop of copy mode, and the socket's own drop statistics.  One place, so the two
 * programs cannot drift apart again.
 */
#ifndef KBYPASS_XSK_COMMON_H
#define KBYPASS_XSK_COMMON_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

#include <linux/if_xdp.h>
#include <xdp/xsk.h>

struct kb_umem {
	void *area;
	size_t len;
	unsigned int frame_size, frames;
	struct xsk_umem *umem;
};

/* mmap frames * frame_size bytes and register them; returns 0 or -errno. */
int kb_umem_create(struct kb_umem *u, unsigned int frames, unsigned int frame_size,
		   unsigned int fill_size, unsigned int comp_size, struct xsk_ring_prod *fill,
		   struct xsk_ring_cons *comp);
void kb_umem_destroy(struct kb_umem *u);

/* Create a socket on ifname/queue over u.  fill/comp NULL: the UMEM's own rings (the first
 * socket); otherwise a shared-UMEM socket with rings of its own.  Retries EBUSY for up to
 * 5 s unless *stop becomes set.  Returns 0 or -errno. */
int kb_xsk_create(struct xsk_socket **xsk, const char *ifname, unsigned int queue,
		  struct kb_umem *u, struct xsk_ring_cons *rx, struct xsk_ring_prod *tx,
		  struct xsk_ring_prod *fill, struct xsk_ring_cons *comp,
		  const struct xsk_socket_config *sc, volatile sig_atomic_t *stop);

/* Frames in the TX ring the kernel has not taken yet. */
static inline unsigned int kb_tx_pending(struct xsk_ring_prod *tx)
{
	return tx->size - xsk_prod_nb_free(tx, tx->size);
}

/* Hand the TX ring to the kernel.  Copy mode transmits only inside sendto(), at most 32
 * frames per call (the generic xmit budget), and then answers EAGAIN although it made
 * progress: stopping there leaves frames queued in the TX ring (latency, and frames
 * missing from the fill ring).  So it repeats while the ring drains, up to max_calls.
 * A call without progress (device busy), EBUSY, ENOBUFS and ENETDOWN (link bouncing, e.g.
 * while XDP is attached) end the loop quietly: the frames stay for the next kick.
 * Adds the calls made to *calls; returns 0 or -errno for any other error. */
int kb_xsk_kick_tx(int fd, struct xsk_ring_prod *tx, bool copy, unsigned int max_calls,
		   uint64_t *calls);

/* Add the socket's XDP_STATISTICS to *sum; 0 or -errno. */
int kb_xsk_stats_add(int fd, struct xdp_statistics *sum);

/* Frames the kernel dropped on the way into the socket: no fill-ring frame (rx_dropped,
 * which also counts frames too long for a chunk) or a full RX ring (rx_ring_full).
 * rx_fill_ring_empty_descs counts the same fill-ring events as rx_dropped: not added. */
static inline uint64_t kb_xsk_rx_lost(const struct xdp_statistics *s)
{
	return s->rx_dropped + s->rx_ring_full;
}

/* ---- multi-buffer (XDP_USE_SG, kernel >= 6.6 in copy mode) ----------------------------
 * A packet larger than one UMEM frame comes (and goes) as several descriptors, with
 * XDP_PKT_CONTD set on all but the last.  Debian 12's 6.1 headers lack both flags. */
#ifndef XDP_USE_SG
#define XDP_USE_SG (1 << 4)
#endif
#ifndef XDP_PKT_CONTD
#define XDP_PKT_CONTD (1 << 0)
#endif
/* The most descriptors one packet takes: MAX_SKB_FRAGS (17) fragments + the head. */
#define KB_SG_MAX_DESCS 18
/* kbypass-fwd/-gen exit code when the kernel refuses a bind with XDP_USE_SG. */
#define KB_EXIT_NO_SG 3
/* A frame's bytes before the packet in copy mode (the kernel's XDP_PACKET_HEADROOM). */
#define KB_XDP_HEADROOM 256u
/* Room for the Ethernet header and two VLAN tags on top of the MTU. */
#define KB_L2_OVERHEAD 22u

/* Largest MTU whose frames fit in one UMEM frame of frame_size (copy mode, no UMEM
 * headroom): bigger packets need --multi-buffer or the kernel drops them (rx_dropped). */
static inline unsigned int kb_single_frame_mtu(unsigned int frame_size)
{
	return frame_size - KB_XDP_HEADROOM - KB_L2_OVERHEAD;
}

/* Of the n descriptors at idx in an RX ring, how many make whole packets (up to and
 * including the last one without XDP_PKT_CONTD); the rest waits for the next pass. */
static inline unsigned int kb_sg_whole(struct xsk_ring_cons *rx, __u32 idx, unsigned int n)
{
	unsigned int whole = 0;

	for (unsigned int i = 0; i < n; i++)
		if (!(xsk_ring_cons__rx_desc(rx, idx + i)->options & XDP_PKT_CONTD))
			whole = i + 1;
	return whole;
}

/* Descriptors of the packet that starts at idx (at most max). */
static inline unsigned int kb_sg_descs(struct xsk_ring_cons *rx, __u32 idx, unsigned int max)
{
	unsigned int k = 1;

	while (k < max && (xsk_ring_cons__rx_desc(rx, idx + k - 1)->options & XDP_PKT_CONTD))
		k++;
	return k;
}

/* MTU of ifname in the current network namespace, or -errno. */
int kb_if_mtu(const char *ifname);

/* The kernel refused XDP_USE_SG on ifname/queue (err = -errno): one line saying why and,
 * after "use ", the advice; exit KB_EXIT_NO_SG. */
void kb_die_no_sg(const char *prog, const char *ifname, unsigned int queue, int err,
		  const char *advice) __attribute__((noreturn));

#endif
