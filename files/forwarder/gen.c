// SPDX-License-Identifier: GPL-3.0-or-later
/* Copyright: (c) 2026, kbypass.xdp developers
 *
 * kbypass-gen: bounded UDP traffic generator with reply counting and RTT percentiles.
 *
 * Engines:
 *   socket  sendmmsg/recvmmsg on a connected UDP socket (default; what verify uses).
 *   afxdp   frames built here and sent from an AF_XDP socket on --iface (copy mode on
 *           veth reaches about twice the kernel sender's rate).  Replies are received
 *           through AF_XDP when --pin-dir names a steering program attachment on
 *           --iface whose steer_ports contains --sport; otherwise through a UDP socket
 *           bound to --sport (the kernel path then limits the reply rate it can see).
 *
 * Every datagram carries a 16-byte payload header: magic "KBG1", sequence number and
 * send timestamp (CLOCK_MONOTONIC ns), so echoed replies give an RTT and duplicates or
 * strangers are ignored.  Hard caps: 50 M packets and 300 s whatever is asked.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/udp.h>
#include <netinet/in.h>

#include <bpf/bpf.h>
#include <xdp/xsk.h>

#include "common.h"
#include "xsk_common.h"

#define MAX_COUNT 50000000ull
#define MAX_DURATION 300.0
#define MAX_SAMPLES (1u << 21)
#define MAGIC 0x4b424731u /* "KBG1" */
#define NFRAMES 4096u
#define FRAME_SIZE 2048u
#define MAX_FRAME 16384u /* --size: frames over FRAME_SIZE go as several descriptors (afxdp) */
#define MAX_SERIES 4096

struct payload {
	uint32_t magic;
	uint32_t seq;
	uint64_t ts_ns;
} __attribute__((packed));

static struct {
	const char *dst, *netns, *iface, *pin_dir, *dst_mac;
	unsigned int dport, sport, size, batch;
	unsigned long long count;
	double duration, rate;
	bool afxdp, replies, json;
	unsigned int reply_timeout_ms, series_ms;
	int cpu, cpu_of;
} cfg = {
	.dport = 4242, .sport = 40000, .size = 64, .batch = 32, .count = 1000,
	.duration = 10, .reply_timeout_ms = 1000, .cpu = -1,
};

static volatile sig_atomic_t stop_flag;

/* ------------------------------------------------------------------ results */
static struct {
	uint64_t sent, received, dup, stray;
	uint64_t tx_descs, rx_descs; /* afxdp: descriptors (more than packets over a frame) */
	uint8_t *seen; /* bitmap of sequence numbers already answered */
	uint32_t *rtt_ns;
	uint64_t nsamples;
	uint64_t t0, t_sent; /* sending started / stopped */
	double cpu_of0, cpu_of1; /* --cpu-of: its CPU seconds then, < 0 when unreadable */
	struct { double t; uint64_t tx, rx; } series[MAX_SERIES];
	unsigned int nseries;
	uint64_t next_series_ns;
} R;

/* utime + stime of a process in seconds, or -1 (gone, or not readable). */
static double proc_cpu_s(int pid)
{
	char path[64], buf[1024], *p;
	unsigned long long ut, st;
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	/* after "pid (comm) ": state, ppid, pgrp, session, tty_nr, tpgid, flags, minflt,
	 * cminflt, majflt, cmajflt, utime, stime (proc(5)); comm may hold spaces and ')' */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
			 &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Sending starts: the clock of --duration and the CPU window of --cpu-of start together,
 * after the set-up (UMEM, socket, ARP: tens of ms), so that a short trial sends for its
 * whole duration and a busy device under test is not charged for our set-up. */
static void sending_starts(void)
{
	R.cpu_of0 = cfg.cpu_of ? proc_cpu_s(cfg.cpu_of) : -1;
	R.t0 = kb_now_ns();
	R.next_series_ns = R.t0;
}

/* Sending stops (once): the end of the --cpu-of window, before the wait for late replies. */
static void sending_stops(void)
{
	if (R.t_sent)
		return;
	R.t_sent = kb_now_ns();
	R.cpu_of1 = cfg.cpu_of ? proc_cpu_s(cfg.cpu_of) : -1;
}

static void note_reply(const unsigned char *pl, size_t len, uint64_t now)
{
	struct payload p;

	if (len < sizeof(p)) {
		R.stray++;
		return;
	}
	memcpy(&p, pl, sizeof(p));
	if (ntohl(p.magic) != MAGIC || p.seq >= R.sent) {
		R.stray++;
		return;
	}
	if (R.seen[p.seq >> 3] & (1u << (p.seq & 7))) {
		R.dup++;
		return;
	}
	R.seen[p.seq >> 3] |= (uint8_t)(1u << (p.seq & 7));
	R.received++;
	if (now >= p.ts_ns) {
		uint64_t d = now - p.ts_ns;

		if (d > UINT32_MAX)
			d = UINT32_MAX;
		/* keep the first MAX_SAMPLES, then every other one is enough for percentiles */
		if (R.nsamples < MAX_SAMPLES)
			R.rtt_ns[R.nsamples++] = (uint32_t)d;
		else
			R.rtt_ns[R.received % MAX_SAMPLES] = (uint32_t)d;
	}
}

static void series_tick(uint64_t now)
{
	if (!cfg.series_ms || now < R.next_series_ns || R.nseries >= MAX_SERIES)
		return;
	R.series[R.nseries].t = (double)(now - R.t0) / 1e9;
	R.series[R.nseries].tx = R.sent;
	R.series[R.nseries].rx = R.received;
	R.nseries++;
	R.next_series_ns += (uint64_t)cfg.series_ms * 1000000ull;
}

/* ------------------------------------------------------------------ rate */
static uint64_t allowed(uint64_t now)
{
	double el;
	uint64_t a;

	if (cfg.rate <= 0)
		return cfg.batch;
	el = (double)(now - R.t0) / 1e9;
	a = (uint64_t)(el * cfg.rate) + 1;
	return a > R.sent ? a - R.sent : 0;
}

static void pace_wait(uint64_t now)
{
	/* ahead of schedule: sleep until the next packet is due (at most 1 ms) */
	double due = (double)(R.sent) / cfg.rate;
	double el = (double)(now - R.t0) / 1e9;
	double s = due - el;
	struct timespec ts;

	if (s <= 0)
		return;
	if (s > 0.001)
		s = 0.001;
	if (s < 20e-6)
		return; /* spin */
	ts.tv_sec = 0;
	ts.tv_nsec = (long)(s * 1e9);
	nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------------ addresses */
static int family;
static struct sockaddr_storage dst_sa, src_sa;
static socklen_t sa_len;

static void resolve(void)
{
	struct sockaddr_in *a4 = (struct sockaddr_in *)&dst_sa;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&dst_sa;

	memset(&dst_sa, 0, sizeof(dst_sa));
	if (inet_pton(AF_INET, cfg.dst, &a4->sin_addr) == 1) {
		family = AF_INET;
		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)cfg.dport);
		sa_len = sizeof(*a4);
	} else if (inet_pton(AF_INET6, cfg.dst, &a6->sin6_addr) == 1) {
		family = AF_INET6;
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)cfg.dport);
		sa_len = sizeof(*a6);
	} else {
		kb_die("--dst: '%s' is not an IPv4 or IPv6 address", cfg.dst);
	}
}

static unsigned int hdr_len(void)
{
	return ETH_HLEN + (family == AF_INET ? 20u : 40u) + 8u;
}

static unsigned int payload_len(void)
{
	unsigned int h = hdr_len();

	return cfg.size > h + sizeof(struct payload) ? cfg.size - h : (unsigned int)sizeof(struct payload);
}

static int udp_socket(bool connect_it)
{
	int s = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0), one = 1, buf = 4 << 20;
	struct sockaddr_storage b;
	socklen_t bl = sa_len;

	if (s < 0)
		kb_die("socket: %s", strerror(errno));
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(s, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
	setsockopt(s, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	memset(&b, 0, sizeof(b));
	b.ss_family = (sa_family_t)family;
	if (family == AF_INET)
		((struct sockaddr_in *)&b)->sin_port = htons((uint16_t)cfg.sport);
	else
		((struct sockaddr_in6 *)&b)->sin6_port = htons((uint16_t)cfg.sport);
	if (bind(s, (struct sockaddr *)&b, sa_len))
		kb_die("cannot bind UDP port %u: %s", cfg.sport, strerror(errno));
	/* --size beyond the MTU: EMSGSIZE, not IP fragments (the steering program passes those) */
	if (family == AF_INET)
		setsockopt(s, IPPROTO_IP, IP_MTU_DISCOVER, &(int){ IP_PMTUDISC_DO }, sizeof(int));
	else
		setsockopt(s, IPPROTO_IPV6, IPV6_DONTFRAG, &one, sizeof(one));
	if (connect_it && connect(s, (struct sockaddr *)&dst_sa, sa_len))
		kb_die("cannot reach %s: %s (no route in this namespace?)", cfg.dst, strerror(errno));
	if (connect_it && getsockname(s, (struct sockaddr *)&src_sa, &bl))
		kb_die("getsockname: %s", strerror(errno));
	return s;
}

static void fill_payload(unsigned char *p, uint32_t seq, uint64_t now)
{
	struct payload pl = { htonl(MAGIC), seq, now };

	memcpy(p, &pl, sizeof(pl));
}

/* ------------------------------------------------------------------ socket engine */
static void drain_socket(int s, uint64_t now)
{
	struct mmsghdr m[64];
	struct iovec iov[64];
	static unsigned char buf[64][MAX_FRAME];

	for (;;) {
		int n;

		for (int i = 0; i < 64; i++) {
			iov[i].iov_base = buf[i];
			iov[i].iov_len = sizeof(buf[i]);
			memset(&m[i].msg_hdr, 0, sizeof(m[i].msg_hdr));
			m[i].msg_hdr.msg_iov = &iov[i];
			m[i].msg_hdr.msg_iovlen = 1;
		}
		n = recvmmsg(s, m, 64, MSG_DONTWAIT, NULL);
		if (n <= 0)
			return;
		now = kb_now_ns();
		R.rx_descs += (uint64_t)n; /* a datagram is one "descriptor" */
		for (int i = 0; i < n; i++)
			note_reply(buf[i], m[i].msg_len, now);
	}
}

static void run_socket(uint64_t duration_ns)
{
	int s = udp_socket(true);
	unsigned int plen = payload_len();
	struct mmsghdr m[256];
	struct iovec iov[256];
	static unsigned char buf[256][MAX_FRAME];
	uint64_t deadline;

	if (cfg.batch > 256)
		cfg.batch = 256;
	sending_starts();
	deadline = R.t0 + duration_ns;
	while (!stop_flag && R.sent < cfg.count) {
		uint64_t now = kb_now_ns(), want;
		int n;

		if (now >= deadline)
			break;
		series_tick(now);
		want = allowed(now);
		if (want > cfg.batch)
			want = cfg.batch;
		if (want > cfg.count - R.sent)
			want = cfg.count - R.sent;
		if (!want) {
			if (cfg.replies)
				drain_socket(s, now);
			pace_wait(now);
			continue;
		}
		for (unsigned int i = 0; i < want; i++) {
			fill_payload(buf[i], (uint32_t)(R.sent + i), now);
			iov[i].iov_base = buf[i];
			iov[i].iov_len = plen;
			memset(&m[i].msg_hdr, 0, sizeof(m[i].msg_hdr));
			m[i].msg_hdr.msg_iov = &iov[i];
			m[i].msg_hdr.msg_iovlen = 1;
		}
		n = sendmmsg(s, m, (unsigned int)want, 0);
		if (n < 0 && errno == EMSGSIZE)
			kb_die("--size %u is larger than the MTU towards %s allows (+14 bytes of "
			       "Ethernet header)", hdr_len() + plen, cfg.dst);
		if (n > 0)
			R.sent += (uint64_t)n;
		else if (n < 0 && errno != EAGAIN && errno != ENOBUFS && errno != ECONNREFUSED &&
			 errno != EINTR)
			kb_die("sendmmsg: %s", strerror(errno));
		if (cfg.replies)
			drain_socket(s, now);
	}
	sending_stops();
	if (cfg.replies) {
		uint64_t end = kb_now_ns() + (uint64_t)cfg.reply_timeout_ms * 1000000ull;
		struct pollfd p = { .fd = s, .events = POLLIN };

		while (!stop_flag && R.received < R.sent && kb_now_ns() < end) {
			poll(&p, 1, 10);
			drain_socket(s, 0);
			series_tick(kb_now_ns());
		}
	}
	close(s);
}

/* ------------------------------------------------------------------ afxdp engine */
static int get_hwaddr(const char *ifname, unsigned char mac[ETH_ALEN])
{
	struct ifreq ifr;
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), err;

	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
	err = ioctl(s, SIOCGIFHWADDR, &ifr);
	close(s);
	if (err)
		return -1;
	memcpy(mac, ifr.ifr_hwaddr.sa_data, ETH_ALEN);
	return 0;
}

/* Look the destination up in the neighbour table (RTM_GETNEIGH dump). */
static int neigh_lookup(int ifindex, unsigned char mac[ETH_ALEN])
{
	struct { struct nlmsghdr nh; struct ndmsg nd; } req = {
		.nh = { .nlmsg_len = sizeof(req), .nlmsg_type = RTM_GETNEIGH,
			.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP, .nlmsg_seq = 1 },
		.nd = { .ndm_family = (uint8_t)family },
	};
	static char buf[65536];
	const void *want = family == AF_INET ? (void *)&((struct sockaddr_in *)&dst_sa)->sin_addr
					     : (void *)&((struct sockaddr_in6 *)&dst_sa)->sin6_addr;
	size_t alen = family == AF_INET ? 4 : 16;
	int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE), found = -1;

	if (s < 0 || send(s, &req, sizeof(req), 0) < 0) {
		if (s >= 0)
			close(s);
		return -1;
	}
	for (bool done = false; !done;) {
		ssize_t n = recv(s, buf, sizeof(buf), 0);
		struct nlmsghdr *nh;

		if (n <= 0)
			break;
		for (nh = (struct nlmsghdr *)buf; NLMSG_OK(nh, (size_t)n); nh = NLMSG_NEXT(nh, n)) {
			struct ndmsg *nd = NLMSG_DATA(nh);
			struct rtattr *a;
			int alen_rt;
			const void *dst = NULL, *ll = NULL;

			if (nh->nlmsg_type == NLMSG_DONE || nh->nlmsg_type == NLMSG_ERROR) {
				done = true;
				break;
			}
			if (nd->ndm_ifindex != ifindex ||
			    !(nd->ndm_state & (NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE |
					       NUD_PERMANENT | NUD_NOARP)))
				continue;
			alen_rt = (int)RTM_PAYLOAD(nh);
			for (a = RTM_RTA(nd); RTA_OK(a, alen_rt); a = RTA_NEXT(a, alen_rt)) {
				if (a->rta_type == NDA_DST && RTA_PAYLOAD(a) == alen)
					dst = RTA_DATA(a);
				else if (a->rta_type == NDA_LLADDR && RTA_PAYLOAD(a) == ETH_ALEN)
					ll = RTA_DATA(a);
			}
			if (dst && ll && !memcmp(dst, want, alen)) {
				memcpy(mac, ll, ETH_ALEN);
				found = 0;
			}
		}
	}
	close(s);
	return found;
}

static void resolve_mac(int ifindex, unsigned char mac[ETH_ALEN])
{
	int s;

	if (cfg.dst_mac) {
		unsigned int b[6];

		if (sscanf(cfg.dst_mac, "%x:%x:%x:%x:%x:%x", &b[0], &b[1], &b[2], &b[3], &b[4],
			   &b[5]) != 6)
			kb_die("--dst-mac: '%s' is not a MAC address", cfg.dst_mac);
		for (int i = 0; i < 6; i++)
			mac[i] = (unsigned char)b[i];
		return;
	}
	if (!neigh_lookup(ifindex, mac))
		return;
	/* Make the kernel resolve it: one datagram to the discard port (not steered). */
	s = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	for (int i = 0; i < 20; i++) {
		struct sockaddr_storage d = dst_sa;

		if (family == AF_INET)
			((struct sockaddr_in *)&d)->sin_port = htons(9);
		else
			((struct sockaddr_in6 *)&d)->sin6_port = htons(9);
		if (i % 5 == 0)
			sendto(s, "", 0, 0, (struct sockaddr *)&d, sa_len);
		usleep(50000);
		if (!neigh_lookup(ifindex, mac)) {
			close(s);
			return;
		}
	}
	close(s);
	kb_die("cannot resolve the MAC address of %s on %s; pass --dst-mac", cfg.dst, cfg.iface);
}

static unsigned char tmpl[MAX_FRAME];
static unsigned int frame_len;

static void build_template(const unsigned char smac[ETH_ALEN], const unsigned char dmac[ETH_ALEN])
{
	struct ethhdr *eth = (struct ethhdr *)tmpl;
	unsigned int plen = payload_len();
	struct udphdr *udp;

	memcpy(eth->h_dest, dmac, ETH_ALEN);
	memcpy(eth->h_source, smac, ETH_ALEN);
	if (family == AF_INET) {
		struct iphdr *ip = (struct iphdr *)(eth + 1);

		eth->h_proto = htons(ETH_P_IP);
		ip->version = 4;
		ip->ihl = 5;
		ip->ttl = 64;
		ip->protocol = IPPROTO_UDP;
		ip->tot_len = htons((uint16_t)(20 + 8 + plen));
		ip->saddr = ((struct sockaddr_in *)&src_sa)->sin_addr.s_addr;
		ip->daddr = ((struct sockaddr_in *)&dst_sa)->sin_addr.s_addr;
		ip->frag_off = htons(0x4000); /* DF */
		ip->check = htons(kb_csum_fold(kb_csum_add(0, ip, 20)));
		udp = (struct udphdr *)(ip + 1);
	} else {
		struct ipv6hdr *ip6 = (struct ipv6hdr *)(eth + 1);

		eth->h_proto = htons(ETH_P_IPV6);
		ip6->version = 6;
		ip6->payload_len = htons((uint16_t)(8 + plen));
		ip6->nexthdr = IPPROTO_UDP;
		ip6->hop_limit = 64;
		memcpy(&ip6->saddr, &((struct sockaddr_in6 *)&src_sa)->sin6_addr, 16);
		memcpy(&ip6->daddr, &((struct sockaddr_in6 *)&dst_sa)->sin6_addr, 16);
		udp = (struct udphdr *)(ip6 + 1);
	}
	udp->source = htons((uint16_t)cfg.sport);
	udp->dest = htons((uint16_t)cfg.dport);
	udp->len = htons((uint16_t)(8 + plen));
	frame_len = hdr_len() + plen;
}

/* UDP checksum over the pseudo header + UDP header + payload of a built frame. */
static void udp_csum(unsigned char *f)
{
	struct udphdr *udp = (struct udphdr *)(f + hdr_len() - 8);
	unsigned int ulen = ntohs(udp->len);
	uint32_t sum;

	if (family == AF_INET)
		sum = kb_csum_add(0, f + ETH_HLEN + 12, 8);
	else
		sum = kb_csum_add(0, f + ETH_HLEN + 8, 32);
	sum += IPPROTO_UDP + ulen;
	udp->check = 0;
	udp->check = htons(kb_csum_fold(kb_csum_add(sum, udp, ulen)));
	if (!udp->check)
		udp->check = 0xffff;
}

static void parse_reply(const unsigned char *f, uint32_t len, uint64_t now)
{
	const struct ethhdr *eth = (const struct ethhdr *)f;
	unsigned int off;

	if (len < hdr_len() + sizeof(struct payload)) {
		R.stray++;
		return;
	}
	if (eth->h_proto == htons(ETH_P_IP) && family == AF_INET)
		off = ETH_HLEN + (unsigned int)(((const struct iphdr *)(eth + 1))->ihl * 4) + 8;
	else if (eth->h_proto == htons(ETH_P_IPV6) && family == AF_INET6)
		off = ETH_HLEN + 40 + 8;
	else {
		R.stray++;
		return;
	}
	if (off + sizeof(struct payload) > len) {
		R.stray++;
		return;
	}
	note_reply(f + off, len - off, now);
}

/* The k descriptors of the frame at a (k adjacent UMEM frames), XDP_PKT_CONTD on all but
 * the last. */
static void tx_descs_sg(struct xsk_ring_prod *tx, __u32 idx, uint64_t a, unsigned int k)
{
	for (unsigned int j = 0; j < k; j++) {
		struct xdp_desc *d = xsk_ring_prod__tx_desc(tx, idx + j);

		d->addr = a + (uint64_t)j * FRAME_SIZE;
		d->len = j + 1 < k ? FRAME_SIZE : frame_len - j * FRAME_SIZE;
		d->options = j + 1 < k ? XDP_PKT_CONTD : 0;
	}
}

static void run_afxdp(uint64_t duration_ns, int map_fd)
{
	struct kb_umem umem;
	struct xsk_socket *xsk;
	struct xsk_ring_prod fill, tx;
	struct xsk_ring_cons comp, rx;
	struct xsk_socket_config sc = { .rx_size = 2048, .tx_size = 2048,
					.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD,
					.bind_flags = XDP_USE_NEED_WAKEUP | XDP_COPY };
	unsigned char *area, smac[ETH_ALEN], dmac[ETH_ALEN];
	uint64_t free_tx[NFRAMES / 2], kicks = 0;
	unsigned int nfree = 0, outstanding = 0, k, slot;
	int ifindex, err, fd, rsock = -1, mtu;
	bool rx_contd = false; /* the last RX descriptor seen continues in the next one */
	__u32 idx;

	if (!cfg.iface)
		kb_die("--engine afxdp needs --iface (the interface to send from)");
	ifindex = (int)if_nametoindex(cfg.iface);
	if (!ifindex)
		kb_die("interface %s not found", cfg.iface);
	close(udp_socket(true)); /* source address for the route to --dst */
	if (get_hwaddr(cfg.iface, smac))
		kb_die("cannot read the MAC address of %s", cfg.iface);
	resolve_mac(ifindex, dmac);
	build_template(smac, dmac);
	mtu = kb_if_mtu(cfg.iface);
	if (mtu > 0 && frame_len > (unsigned int)mtu + ETH_HLEN)
		kb_die("--size %u is larger than the MTU %d of %s allows (+14 bytes of Ethernet "
		       "header)", frame_len, mtu, cfg.iface);
	/* A frame over FRAME_SIZE goes out as k descriptors over k adjacent frames (a slot,
	 * so the checksum runs over contiguous memory); a reply over what one RX frame holds
	 * comes back as several: both need XDP_USE_SG. */
	k = (frame_len + FRAME_SIZE - 1) / FRAME_SIZE;
	slot = k * FRAME_SIZE;
	if (frame_len > FRAME_SIZE - KB_XDP_HEADROOM)
		sc.bind_flags |= XDP_USE_SG;
	if (cfg.replies && map_fd < 0)
		rsock = udp_socket(false);

	err = kb_umem_create(&umem, NFRAMES, FRAME_SIZE, NFRAMES / 2, NFRAMES / 2, &fill, &comp);
	if (err)
		kb_die("cannot register UMEM: %s", strerror(-err));
	area = umem.area;
	err = kb_xsk_create(&xsk, cfg.iface, 0, &umem, &rx, &tx, NULL, NULL, &sc, &stop_flag);
	if (err && (sc.bind_flags & XDP_USE_SG) && (err == -EINVAL || err == -EOPNOTSUPP))
		kb_die_no_sg("kbypass-gen", cfg.iface, 0, err, "--size 1792 or less (one frame)");
	if (err)
		kb_die("cannot create AF_XDP socket on %s queue 0: %s", cfg.iface, strerror(-err));
	fd = xsk_socket__fd(xsk);
	/* TX frames: first half, pre-built from the template.  RX frames: second half. */
	for (unsigned int i = 0; i < NFRAMES / 2 / k; i++) {
		memcpy(area + (size_t)i * slot, tmpl, frame_len);
		free_tx[nfree++] = (uint64_t)i * slot;
	}
	if (xsk_ring_prod__reserve(&fill, NFRAMES / 2, &idx) != NFRAMES / 2)
		kb_die("fill ring reservation failed");
	for (unsigned int i = 0; i < NFRAMES / 2; i++)
		*xsk_ring_prod__fill_addr(&fill, idx + i) = (uint64_t)(NFRAMES / 2 + i) * FRAME_SIZE;
	xsk_ring_prod__submit(&fill, NFRAMES / 2);
	if (map_fd >= 0) {
		err = xsk_socket__update_xskmap(xsk, map_fd);
		if (err)
			kb_die("cannot register in xsks_map: %s", strerror(-err));
	}

	sending_starts();
	uint64_t deadline = R.t0 + duration_ns, end_replies = 0;

	for (;;) {
		uint64_t now = kb_now_ns(), want;
		unsigned int n;

		if (stop_flag)
			break;
		series_tick(now);
		/* completions */
		n = xsk_ring_cons__peek(&comp, NFRAMES / 2, &idx);
		for (unsigned int i = 0; i < n; i++) {
			uint64_t a = *xsk_ring_cons__comp_addr(&comp, idx + i);

			if (!(a % slot)) /* a packet's descriptors complete together */
				free_tx[nfree++] = a;
		}
		if (n) {
			xsk_ring_cons__release(&comp, n);
			outstanding -= n;
		}
		/* replies */
		if (map_fd >= 0) {
			__u32 ridx, fidx;

			n = xsk_ring_cons__peek(&rx, 256, &ridx);
			if (n) {
				for (unsigned int i = 0; i < n; i++) {
					const struct xdp_desc *d = xsk_ring_cons__rx_desc(&rx, ridx + i);

					/* headers and the sequence number are in a packet's first part */
					if (!rx_contd)
						parse_reply(area + xsk_umem__add_offset_to_addr(d->addr),
							    d->len, now);
					rx_contd = d->options & XDP_PKT_CONTD;
				}
				R.rx_descs += n;
				/* give the same frames straight back to the fill ring */
				while (xsk_ring_prod__reserve(&fill, n, &fidx) != n)
					;
				for (unsigned int i = 0; i < n; i++)
					*xsk_ring_prod__fill_addr(&fill, fidx + i) =
						xsk_ring_cons__rx_desc(&rx, ridx + i)->addr &
						~((uint64_t)FRAME_SIZE - 1);
				xsk_ring_prod__submit(&fill, n);
				xsk_ring_cons__release(&rx, n);
			}
		} else if (rsock >= 0) {
			drain_socket(rsock, now);
		}
		if (end_replies) {
			if (now >= end_replies || R.received >= R.sent)
				break;
			if (kb_tx_pending(&tx))
				kb_xsk_kick_tx(fd, &tx, true, 1, &kicks);
			else
				usleep(200);
			continue;
		}
		if (now >= deadline || R.sent >= cfg.count) {
			sending_stops();
			if (!cfg.replies && !outstanding)
				break;
			if (!end_replies)
				end_replies = now + (uint64_t)cfg.reply_timeout_ms * 1000000ull;
			if (!cfg.replies)
				end_replies = now + 100000000ull; /* just flush TX */
			continue;
		}
		want = allowed(now);
		if (want > cfg.batch)
			want = cfg.batch;
		if (want > cfg.count - R.sent)
			want = cfg.count - R.sent;
		if (want > nfree)
			want = nfree;
		if (want && xsk_ring_prod__reserve(&tx, (uint32_t)(want * k), &idx) == want * k) {
			for (unsigned int i = 0; i < want; i++) {
				uint64_t a = free_tx[--nfree];
				unsigned char *f = area + a;

				fill_payload(f + hdr_len(), (uint32_t)(R.sent + i), now);
				udp_csum(f);
				tx_descs_sg(&tx, idx + i * k, a, k);
			}
			xsk_ring_prod__submit(&tx, (uint32_t)(want * k));
			R.sent += want;
			R.tx_descs += want * k;
			outstanding += (unsigned int)(want * k);
		}
		if (kb_tx_pending(&tx)) {
			err = kb_xsk_kick_tx(fd, &tx, true, 16, &kicks);
			if (err)
				kb_die("sendto on AF_XDP socket: %s", strerror(-err));
		}
		if (!want && cfg.rate > 0)
			pace_wait(now);
	}
	if (map_fd >= 0) {
		__u32 key = 0;

		bpf_map_delete_elem(map_fd, &key);
	}
	xsk_socket__delete(xsk);
	kb_umem_destroy(&umem);
	if (rsock >= 0)
		close(rsock);
}

/* ------------------------------------------------------------------ output */
static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static double pct(double p)
{
	uint64_t i;

	if (!R.nsamples)
		return 0;
	i = (uint64_t)ceil(p / 100.0 * (double)R.nsamples);
	if (i)
		i--;
	if (i >= R.nsamples)
		i = R.nsamples - 1;
	return (double)R.rtt_ns[i] / 1000.0;
}

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static void usage(FILE *f)
{
	fprintf(f,
"usage: kbypass-gen --dst ADDR [--netns NS] [--iface IF] [--dport 4242] [--sport 40000]\n"
"         [--size 64] [--count N] [--duration SEC] [--rate PPS] [--engine socket|afxdp]\n"
"         [--replies] [--reply-timeout MS] [--json] [--series-interval MS]\n"
"         [--batch 32] [--cpu N] [--pin-dir DIR] [--dst-mac MAC] [--cpu-of PID]\n"
"--cpu-of PID reports that process's CPU seconds (utime + stime) while sending, as\n"
"\"cpu_of\" in --json: the device under test's cost without our set-up or reply wait.\n"
"--size is the Ethernet frame length without FCS (the payload never goes below the\n"
"16-byte sequence/timestamp header), up to the interface MTU + 14; the afxdp engine\n"
"sends a frame over 2048 bytes as several descriptors (XDP_USE_SG; exit 3 if refused).\n"
"--rate 0 = as fast as possible.\n"
"Hard caps: %llu packets, %.0f s.\n", MAX_COUNT, MAX_DURATION);
}

int main(int argc, char **argv)
{
	enum { O_NETNS = 256, O_IFACE, O_DPORT, O_SPORT, O_SIZE, O_COUNT, O_DUR, O_RATE, O_ENG,
	       O_REPL, O_RTO, O_JSON, O_SER, O_BATCH, O_CPU, O_PIN, O_DMAC, O_DST, O_CPUOF };
	static const struct option opts[] = {
		{ "dst", required_argument, NULL, O_DST },
		{ "netns", required_argument, NULL, O_NETNS },
		{ "iface", required_argument, NULL, O_IFACE },
		{ "dport", required_argument, NULL, O_DPORT },
		{ "sport", required_argument, NULL, O_SPORT },
		{ "size", required_argument, NULL, O_SIZE },
		{ "count", required_argument, NULL, O_COUNT },
		{ "duration", required_argument, NULL, O_DUR },
		{ "rate", required_argument, NULL, O_RATE },
		{ "engine", required_argument, NULL, O_ENG },
		{ "replies", no_argument, NULL, O_REPL },
		{ "reply-timeout", required_argument, NULL, O_RTO },
		{ "json", no_argument, NULL, O_JSON },
		{ "series-interval", required_argument, NULL, O_SER },
		{ "batch", required_argument, NULL, O_BATCH },
		{ "cpu", required_argument, NULL, O_CPU },
		{ "cpu-of", required_argument, NULL, O_CPUOF },
		{ "pin-dir", required_argument, NULL, O_PIN },
		{ "dst-mac", required_argument, NULL, O_DMAC },
		{ "help", no_argument, NULL, 'h' },
		{ 0, 0, 0, 0 },
	};
	struct sigaction sa = { .sa_handler = on_signal };
	struct kb_buf b = { 0 };
	int c, map_fd = -1;
	uint64_t t_end;
	double dur;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case O_DST: cfg.dst = optarg; break;
		case O_NETNS: cfg.netns = optarg; break;
		case O_IFACE: cfg.iface = optarg; break;
		case O_DPORT: cfg.dport = (unsigned int)kb_parse_u64("--dport", optarg, 1, 65535); break;
		case O_SPORT: cfg.sport = (unsigned int)kb_parse_u64("--sport", optarg, 1, 65535); break;
		case O_SIZE: cfg.size = (unsigned int)kb_parse_u64("--size", optarg, 60, MAX_FRAME); break;
		case O_COUNT: cfg.count = kb_parse_u64("--count", optarg, 1, ULLONG_MAX); break;
		case O_DUR: cfg.duration = kb_parse_double("--duration", optarg, 0.001, 1e9); break;
		case O_RATE: cfg.rate = kb_parse_double("--rate", optarg, 0, 1e9); break;
		case O_ENG:
			if (!strcmp(optarg, "afxdp"))
				cfg.afxdp = true;
			else if (strcmp(optarg, "socket"))
				kb_die("--engine: expected socket or afxdp, got '%s'", optarg);
			break;
		case O_REPL: cfg.replies = true; break;
		case O_RTO: cfg.reply_timeout_ms = (unsigned int)kb_parse_u64("--reply-timeout", optarg, 0, 10000); break;
		case O_JSON: cfg.json = true; break;
		case O_SER: cfg.series_ms = (unsigned int)kb_parse_u64("--series-interval", optarg, 10, 60000); break;
		case O_BATCH: cfg.batch = (unsigned int)kb_parse_u64("--batch", optarg, 1, 256); break;
		case O_CPU: cfg.cpu = (int)kb_parse_u64("--cpu", optarg, 0, 4095); break;
		case O_CPUOF: cfg.cpu_of = (int)kb_parse_u64("--cpu-of", optarg, 1, INT_MAX); break;
		case O_PIN: cfg.pin_dir = optarg; break;
		case O_DMAC: cfg.dst_mac = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc)
		kb_die("unexpected argument '%s' (see --help)", argv[optind]);
	if (!cfg.dst)
		kb_die("--dst is required (see --help)");
	if (cfg.pin_dir && !cfg.afxdp)
		kb_die("--pin-dir is only used with --engine afxdp");
	resolve();
	/* hard caps: a generator must never run away */
	if (cfg.count > MAX_COUNT) {
		kb_warn("--count capped at %llu", MAX_COUNT);
		cfg.count = MAX_COUNT;
	}
	if (cfg.duration > MAX_DURATION) {
		kb_warn("--duration capped at %.0f s", MAX_DURATION);
		cfg.duration = MAX_DURATION;
	}
	if (cfg.pin_dir) {
		char path[PATH_MAX];

		snprintf(path, sizeof(path), "%s/xsks_map", cfg.pin_dir);
		map_fd = bpf_obj_get(path);
		if (map_fd < 0)
			kb_die("cannot open %s: %s", path, strerror(errno));
	}
	if (cfg.netns) {
		int err = kb_enter_netns(cfg.netns);

		if (err)
			kb_die("cannot enter network namespace %s: %s", cfg.netns, strerror(-err));
	}
	if (cfg.cpu >= 0 && kb_pin_cpu(cfg.cpu))
		kb_warn("cannot pin to CPU %d", cfg.cpu);
	if (cfg.afxdp)
		kb_raise_memlock();
	if (cfg.replies) {
		R.seen = calloc((size_t)(cfg.count / 8 + 1), 1);
		R.rtt_ns = calloc(MAX_SAMPLES, sizeof(uint32_t));
		if (!R.seen || !R.rtt_ns)
			kb_die("out of memory");
	}
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	if (cfg.afxdp)
		run_afxdp((uint64_t)(cfg.duration * 1e9), map_fd);
	else
		run_socket((uint64_t)(cfg.duration * 1e9));
	sending_stops(); /* interrupted before the end */
	t_end = kb_now_ns();
	dur = (double)(t_end - R.t0) / 1e9;
	if (cfg.series_ms && R.nseries < MAX_SERIES) {
		R.series[R.nseries].t = dur;
		R.series[R.nseries].tx = R.sent;
		R.series[R.nseries].rx = R.received;
		R.nseries++;
	}
	if (R.nsamples)
		qsort(R.rtt_ns, R.nsamples, sizeof(uint32_t), cmp_u32);

	kb_buf_printf(&b, "{\"engine\": \"%s\", \"dst\": ", cfg.afxdp ? "afxdp" : "socket");
	kb_buf_json_str(&b, cfg.dst);
	kb_buf_printf(&b, ", \"dport\": %u, \"sport\": %u, \"size\": %u, \"rate\": %.1f, "
		      "\"sent\": %llu, \"tx_descs\": %llu, \"rx_descs\": %llu, ", cfg.dport,
		      cfg.sport, hdr_len() + payload_len(), cfg.rate, (unsigned long long)R.sent,
		      (unsigned long long)(cfg.afxdp ? R.tx_descs : R.sent),
		      (unsigned long long)R.rx_descs);
	if (cfg.replies)
		kb_buf_printf(&b, "\"received\": %llu, \"lost\": %llu, \"duplicates\": %llu, "
			      "\"stray\": %llu, ", (unsigned long long)R.received,
			      (unsigned long long)(R.sent - R.received), (unsigned long long)R.dup,
			      (unsigned long long)R.stray);
	else
		kb_buf_printf(&b, "\"received\": null, \"lost\": null, ");
	kb_buf_printf(&b, "\"duration_s\": %.6f, \"tx_pps\": %.1f, \"rx_pps\": %.1f, ", dur,
		      dur > 0 ? (double)R.sent / dur : 0, dur > 0 ? (double)R.received / dur : 0);
	if (R.nsamples)
		kb_buf_printf(&b, "\"rtt_us\": {\"p50\": %.1f, \"p90\": %.1f, \"p99\": %.1f, "
			      "\"p99.9\": %.1f, \"max\": %.1f, \"samples\": %llu}, ", pct(50), pct(90),
			      pct(99), pct(99.9),
			      (double)R.rtt_ns[R.nsamples - 1] / 1000.0,
			      (unsigned long long)R.nsamples);
	else
		kb_buf_printf(&b, "\"rtt_us\": null, ");
	if (R.cpu_of0 >= 0 && R.cpu_of1 >= 0)
		kb_buf_printf(&b, "\"cpu_of\": {\"pid\": %d, \"cpu_s\": %.3f, \"window_s\": %.6f}, ",
			      cfg.cpu_of, R.cpu_of1 - R.cpu_of0, (double)(R.t_sent - R.t0) / 1e9);
	else
		kb_buf_printf(&b, "\"cpu_of\": null, ");
	kb_buf_printf(&b, "\"series\": [");
	for (unsigned int i = 0; i < R.nseries; i++)
		kb_buf_printf(&b, "%s{\"t\": %.3f, \"tx\": %llu, \"rx\": %llu}", i ? ", " : "",
			      R.series[i].t, (unsigned long long)R.series[i].tx,
			      (unsigned long long)R.series[i].rx);
	kb_buf_printf(&b, "], \"interrupted\": %s}\n", stop_flag ? "true" : "false");
	fputs(b.s, stdout);
	if (!cfg.json)
		fprintf(stderr, "sent %llu in %.3f s (%.0f pps), received %llu\n",
			(unsigned long long)R.sent, dur, dur > 0 ? (double)R.sent / dur : 0,
			(unsigned long long)R.received);
	kb_buf_free(&b);
	return 0;
}
