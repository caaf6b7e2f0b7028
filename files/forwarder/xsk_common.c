// SPDX-License-Identifier: GPL-3.0-or-later
/* Copyright: (c) 2026, kbypass.xdp developers */
#define _GNU_SOURCE
#include "xsk_common.h"

#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef SOL_XDP
#define SOL_XDP 283
#endif

int kb_umem_create(struct kb_umem *u, unsigned int frames, unsigned int frame_size,
		   unsigned int fill_size, unsigned int comp_size, struct xsk_ring_prod *fill,
		   struct xsk_ring_cons *comp)
{
	struct xsk_umem_config uc = {
		.fill_size = fill_size,
		.comp_size = comp_size,
		.frame_size = frame_size,
		.frame_headroom = 0,
		.flags = 0,
	};
	int err;

	memset(u, 0, sizeof(*u));
	u->frames = frames;
	u->frame_size = frame_size;
	u->len = (size_t)frames * frame_size;
	u->area = mmap(NULL, u->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (u->area == MAP_FAILED) {
		err = -errno;
		u->area = NULL;
		return err;
	}
	err = xsk_umem__create(&u->umem, u->area, u->len, fill, comp, &uc);
	if (err) {
		munmap(u->area, u->len);
		u->area = NULL;
	}
	return err;
}

void kb_umem_destroy(struct kb_umem *u)
{
	if (u->umem)
		xsk_umem__delete(u->umem);
	if (u->area)
		munmap(u->area, u->len);
	u->umem = NULL;
	u->area = NULL;
}

int kb_xsk_create(struct xsk_socket **xsk, const char *ifname, unsigned int queue,
		  struct kb_umem *u, struct xsk_ring_cons *rx, struct xsk_ring_prod *tx,
		  struct xsk_ring_prod *fill, struct xsk_ring_cons *comp,
		  const struct xsk_socket_config *sc, volatile sig_atomic_t *stop)
{
	int err = -EBUSY;

	/* teardown of a closed socket is asynchronous: its queue may stay busy briefly */
	for (int attempt = 0; attempt < 50 && !(stop && *stop); attempt++) {
		if (fill)
			err = xsk_socket__create_shared(xsk, ifname, queue, u->umem, rx, tx, fill,
							comp, sc);
		else
			err = xsk_socket__create(xsk, ifname, queue, u->umem, rx, tx, sc);
		if (err != -EBUSY)
			break;
		usleep(100000);
	}
	return err;
}

int kb_xsk_kick_tx(int fd, struct xsk_ring_prod *tx, bool copy, unsigned int max_calls,
		   uint64_t *calls)
{
	unsigned int left = kb_tx_pending(tx), now;

	for (unsigned int i = 0; i < max_calls && left; i++) {
		(*calls)++;
		if (sendto(fd, NULL, 0, MSG_DONTWAIT, NULL, 0) < 0 && errno != EAGAIN) {
			if (errno == EBUSY || errno == ENOBUFS || errno == ENETDOWN || errno == EINTR)
				return 0;
			return -errno;
		}
		if (!copy)
			return 0;
		/* EAGAIN means either "budget used up, more to send" or "device busy": go on
		 * while the ring drains, stop when a call made no progress. */
		now = kb_tx_pending(tx);
		if (now >= left)
			return 0;
		left = now;
	}
	return 0;
}

int kb_xsk_stats_add(int fd, struct xdp_statistics *sum)
{
	struct xdp_statistics s;
	socklen_t sl = sizeof(s);

	memset(&s, 0, sizeof(s));
	if (getsockopt(fd, SOL_XDP, XDP_STATISTICS, &s, &sl))
		return -errno;
	sum->rx_dropped += s.rx_dropped;
	sum->rx_invalid_descs += s.rx_invalid_descs;
	sum->tx_invalid_descs += s.tx_invalid_descs;
	sum->rx_ring_full += s.rx_ring_full;
	sum->rx_fill_ring_empty_descs += s.rx_fill_ring_empty_descs;
	sum->tx_ring_empty_descs += s.tx_ring_empty_descs;
	return 0;
}

int kb_if_mtu(const char *ifname)
{
	struct ifreq ifr;
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), err = 0;

	if (s < 0)
		return -errno;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
	if (ioctl(s, SIOCGIFMTU, &ifr))
		err = -errno;
	close(s);
	return err ? err : ifr.ifr_mtu;
}

void kb_die_no_sg(const char *prog, const char *ifname, unsigned int queue, int err,
		  const char *advice)
{
	fprintf(stderr, "%s: AF_XDP bind with XDP_USE_SG refused on %s queue %u: %s. AF_XDP "
		"multi-buffer needs kernel >= 6.6 in copy mode or a driver with multi-buffer "
		"zero-copy; use %s\n", prog, ifname, queue, strerror(-err), advice);
	exit(KB_EXIT_NO_SG);
}
