// SPDX-License-Identifier: GPL-2.0
/* kbypass.xdp steering program with packet capture (xdp_steer_capture.o).
 *
 * The very same xdp_steer.c (included below, untouched, so xdp_steer.o stays byte for
 * byte what it was) with its entry point wrapped: after the steering verdict, the first
 * KB_CAPTURE_SNAPLEN bytes of the packet and the action taken go into the ring buffer
 * `kb_capture_ring`. A full ring never blocks or delays the packet: the sample is
 * dropped and counted in `kb_capture_drops`. kbypass.xdp.xdp_capture swaps this object
 * in on the steering program's pins only while capturing (same maps, so AF_XDP sockets
 * stay registered) and drains the ring. Record layout: docs/contracts.md.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* Turn xdp_steer.c's entry point into an inlined function of ours. Its SEC("xdp.frags")
 * remains, so libbpf also sees it as a program; nothing attaches that one. */
struct xdp_md;
__attribute__((always_inline)) int kb_steer_verdict(struct xdp_md *ctx);
#define xdp_steer(c) kb_steer_verdict(c)
#include "xdp_steer.c"
#undef xdp_steer

#define KB_CAPTURE_SNAPLEN 256 /* a power of two */
#define KB_CAPTURE_RING_BYTES (1 << 20)

enum kb_capture_action {
	KB_CAPTURE_PASSED = 0,
	KB_CAPTURE_REDIRECTED = 1,
	KB_CAPTURE_REDIRECT_MISSED = 2, /* steered port, no socket on the queue: passed */
	KB_CAPTURE_OTHER = 3,
};

struct kb_capture_sample {
	__u64 ts_ns;    /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u32 pkt_len;  /* length on the wire */
	__u32 cap_len;  /* bytes in data[] */
	__u32 action;   /* enum kb_capture_action */
	__u32 rx_queue;
	__u8 data[KB_CAPTURE_SNAPLEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, KB_CAPTURE_RING_BYTES);
} kb_capture_ring SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} kb_capture_drops SEC(".maps");

static __always_inline __u64 missed_packets(void)
{
	__u32 idx = STEER_REDIRECT_MISSED;
	struct steer_counter_val *v = bpf_map_lookup_elem(&steer_stats, &idx);

	return v ? v->packets : 0;
}

static __always_inline void sample(struct xdp_md *ctx, __u32 action)
{
	__u32 pkt_len = bpf_xdp_get_buff_len(ctx); /* with the frags of a jumbo frame */
	__u32 cap = pkt_len < KB_CAPTURE_SNAPLEN ? pkt_len : KB_CAPTURE_SNAPLEN;
	struct kb_capture_sample *s;
	__u32 zero = 0;
	__u64 *drops;

	s = bpf_ringbuf_reserve(&kb_capture_ring, sizeof(*s), 0);
	if (!s) {
		drops = bpf_map_lookup_elem(&kb_capture_drops, &zero);
		if (drops) /* per-CPU */
			(*drops)++;
		return;
	}
	s->ts_ns = bpf_ktime_get_ns();
	s->pkt_len = pkt_len;
	s->action = action;
	s->rx_queue = ctx->rx_queue_index;
	/* the same value for 1..SNAPLEN, written so that the verifier sees the bound */
	cap = ((cap - 1) & (KB_CAPTURE_SNAPLEN - 1)) + 1;
	if (!pkt_len || bpf_xdp_load_bytes(ctx, 0, s->data, cap))
		cap = 0;
	s->cap_len = cap;
	bpf_ringbuf_submit(s, BPF_RB_NO_WAKEUP); /* the reader polls: no wakeup per packet */
}

SEC("xdp.frags") /* like xdp_steer: swapped in on a jumbo MTU, it must keep it */
int (xdp_steer)(struct xdp_md *ctx)
{
	/* per-CPU counter, no preemption inside XDP: a change tells "matched, no socket" */
	__u64 missed = missed_packets();
	int verdict = kb_steer_verdict(ctx);
	__u32 action = KB_CAPTURE_OTHER;

	if (verdict == XDP_REDIRECT)
		action = KB_CAPTURE_REDIRECTED;
	else if (verdict == XDP_PASS)
		action = missed_packets() != missed ? KB_CAPTURE_REDIRECT_MISSED : KB_CAPTURE_PASSED;
	sample(ctx, action);
	return verdict;
}
