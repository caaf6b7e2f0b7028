// SPDX-License-Identifier: GPL-2.0
/* kbypass.xdp in-kernel reflector: the benchmark's upper bound for reflection.
 *
 * UDP datagrams whose destination port is set in `steer_ports` are sent back out of
 * the interface they came in on (XDP_TX) with Ethernet addresses, IP addresses and
 * UDP ports swapped -- the same rewrite `kbypass-fwd --mode echo` does in user space,
 * without leaving the kernel. Everything else is passed, so ARP/ND keep working.
 *
 * It carries the steering program's maps (steer_maps.h, docs/contracts.md), so
 * kbypass.xdp.xdp_attach can attach it in place of xdp_steer on the same pins.
 * Counters: 0 seen, 1 matched, 2 reflected (in the "redirected" slot), 4 passed.
 * Swapping addresses and ports leaves the IP and UDP checksums valid.
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

/* the steering program's counter slots: a reflected packet counts as "redirected" */
enum reflect_counter {
	RC_SEEN = STEER_SEEN,
	RC_MATCHED = STEER_MATCHED,
	RC_REFLECTED = STEER_REDIRECTED,
	RC_PASSED = STEER_PASSED,
};

static __always_inline void swap_mac(struct ethhdr *eth)
{
	__u8 tmp[ETH_ALEN];

	__builtin_memcpy(tmp, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, tmp, ETH_ALEN);
}

static __always_inline int matches(struct udphdr *udp)
{
	__u32 key = bpf_ntohs(udp->dest);
	__u8 *want = bpf_map_lookup_elem(&steer_ports, &key);

	return want && *want;
}

SEC("xdp.frags")
int xdp_reflect(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 bytes = bpf_xdp_get_buff_len(ctx); /* with frags: the whole frame */
	struct ethhdr *eth = data;
	struct udphdr *udp;
	__u16 port;

	count(RC_SEEN, bytes);
	if ((void *)(eth + 1) > data_end)
		goto pass;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		__be32 addr;

		if ((void *)(ip + 1) > data_end || ip->ihl != 5 || ip->protocol != IPPROTO_UDP ||
		    (ip->frag_off & bpf_htons(0x3fff)))
			goto pass;
		udp = (void *)(ip + 1);
		if ((void *)(udp + 1) > data_end || !matches(udp))
			goto pass;
		addr = ip->saddr;
		ip->saddr = ip->daddr;
		ip->daddr = addr;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		struct in6_addr addr;

		if ((void *)(ip6 + 1) > data_end || ip6->nexthdr != IPPROTO_UDP)
			goto pass;
		udp = (void *)(ip6 + 1);
		if ((void *)(udp + 1) > data_end || !matches(udp))
			goto pass;
		addr = ip6->saddr;
		ip6->saddr = ip6->daddr;
		ip6->daddr = addr;
	} else {
		goto pass;
	}
	count(RC_MATCHED, bytes);
	port = udp->source;
	udp->source = udp->dest;
	udp->dest = port;
	swap_mac(eth);
	count(RC_REFLECTED, bytes);
	return XDP_TX;

pass:
	count(RC_PASSED, bytes);
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
