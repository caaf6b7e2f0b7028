/* SPDX-License-Identifier: GPL-2.0 */
/* The steering program's maps and counters (layout in docs/contracts.md), shared with the
 * XDP_TX reflector, which carries the same maps so that xdp_attach can swap it in on the
 * same pins and back.  _bpf.STEER_COUNTERS follows enum steer_counter (a unit test
 * compares them).
 */
#ifndef KBYPASS_STEER_MAPS_H
#define KBYPASS_STEER_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define STEER_MAX_QUEUES 64

enum steer_counter {
	STEER_SEEN = 0,
	STEER_MATCHED = 1,
	STEER_REDIRECTED = 2,
	STEER_REDIRECT_MISSED = 3,
	STEER_PASSED = 4,
	STEER_NR_COUNTERS
};

struct steer_counter_val {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, STEER_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks_map SEC(".maps");

/* key: UDP destination port in host byte order, value 1: steer it */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u8);
} steer_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STEER_NR_COUNTERS);
	__type(key, __u32);
	__type(value, struct steer_counter_val);
} steer_stats SEC(".maps");

static __always_inline void count(__u32 idx, __u64 bytes)
{
	struct steer_counter_val *v = bpf_map_lookup_elem(&steer_stats, &idx);

	if (v) { /* per-CPU: no atomics needed */
		v->packets++;
		v->bytes += bytes;
	}
}

#endif
