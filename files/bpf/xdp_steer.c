// SPDX-License-Identifier: GPL-2.0
/* kbypass.xdp steering program.
 *
 * UDP datagrams whose destination port is set in `steer_ports` go to the AF_XDP
 * socket bound to this rx queue (`xsks_map[rx_queue_index]`). When no socket is
 * bound there the packet is passed to the kernel stack, so nothing is lost while
 * the forwarder is down. Everything else (ARP, ND, ICMP, TCP, other ports,
 * fragments, unknown ethertypes) is passed, and so is every malformed datagram: an IP
 * version that is not the ethertype's, an IPv4 total length (IPv6 payload length)
 * beyond the frame, a UDP length below 8 or beyond the IP packet.  A forwarder never
 * sees those; the kernel drops them and counts them in its own statistics.
 *
 * Layout (names, sizes and counter indices) is fixed in docs/contracts.md.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "steer_maps.h"

#define STEER_MAX_VLANS 2 /* 802.1ad outer + 802.1Q inner */

#ifndef ETH_P_8021AD
#define ETH_P_8021AD 0x88A8
#endif

struct vlan_hdr {
	__be16 tci;
	__be16 encap_proto;
};

/* Return the UDP destination port (host order) of a steerable packet, or -1.  Headers
 * are read from the linear part (data..data_end); lengths are checked against the whole
 * frame, frame_len bytes, which with frags (a jumbo frame) goes beyond data_end. */
static __always_inline int udp_dport(void *data, void *data_end, __u64 frame_len)
{
	struct ethhdr *eth = data;
	void *cur = data;
	__u32 hlen, l3_len;
	void *l3;
	__u16 proto;
	__u8 l4;
	int i;

	if ((void *)(eth + 1) > data_end)
		return -1;
	proto = eth->h_proto;
	cur = eth + 1;

#pragma unroll
	for (i = 0; i < STEER_MAX_VLANS; i++) {
		struct vlan_hdr *vh = cur;

		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		if ((void *)(vh + 1) > data_end)
			return -1;
		proto = vh->encap_proto;
		cur = vh + 1;
	}
	l3 = cur;

	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = cur;

		if ((void *)(ip + 1) > data_end || ip->version != 4 || ip->ihl < 5)
			return -1;
		/* only the first fragment carries the UDP header; skip all fragments */
		if (ip->frag_off & bpf_htons(0x3fff))
			return -1;
		l4 = ip->protocol;
		hlen = ip->ihl * 4;
		l3_len = bpf_ntohs(ip->tot_len);
		cur = (void *)ip + hlen;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = cur;

		if ((void *)(ip6 + 1) > data_end || ip6->version != 6)
			return -1;
		/* extension headers are not walked: such packets are passed */
		l4 = ip6->nexthdr;
		hlen = sizeof(*ip6);
		l3_len = hlen + bpf_ntohs(ip6->payload_len);
		cur = ip6 + 1;
	} else {
		return -1; /* ARP, VLAN stacks deeper than 2, anything else */
	}

	if (l4 != IPPROTO_UDP)
		return -1;
	/* the IP packet within the frame, the UDP datagram within the IP packet */
	if (l3_len < hlen + sizeof(struct udphdr) || (__u64)(l3 - data) + l3_len > frame_len)
		return -1;
	{
		struct udphdr *udp = cur;
		__u32 ulen;

		if ((void *)(udp + 1) > data_end)
			return -1;
		ulen = bpf_ntohs(udp->len);
		if (ulen < sizeof(*udp) || hlen + ulen > l3_len)
			return -1;
		return bpf_ntohs(udp->dest);
	}
}

SEC("xdp.frags")
int xdp_steer(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 bytes = bpf_xdp_get_buff_len(ctx); /* with frags: the whole frame */
	__u32 qid = ctx->rx_queue_index;
	int port = udp_dport(data, data_end, bytes);
	__u32 key;
	__u8 *want;
	long action;

	count(STEER_SEEN, bytes);
	if (port < 0)
		goto pass;
	key = port;
	want = bpf_map_lookup_elem(&steer_ports, &key);
	if (!want || !*want)
		goto pass;

	count(STEER_MATCHED, bytes);
	/* No socket at xsks_map[qid]: the fallback action (XDP_PASS) comes back instead of
	 * XDP_REDIRECT, so one call both redirects and tells which way it went. */
	action = bpf_redirect_map(&xsks_map, qid, XDP_PASS);
	count(action == XDP_REDIRECT ? STEER_REDIRECTED : STEER_REDIRECT_MISSED, bytes);
	return action;

pass:
	count(STEER_PASSED, bytes);
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
