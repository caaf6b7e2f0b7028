// SPDX-License-Identifier: GPL-2.0
/* Deliberately invalid XDP program for tests/integration/test_xdp_attach.py:
 * it reads packet data without a bounds check, which the verifier rejects
 * ("invalid access to packet"). It compiles fine; only the kernel refuses it.
 * Its program name is the steering program's, so a test can try to "upgrade"
 * an attached xdp_steer to it and check that the old program stays attached.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_steer(struct xdp_md *ctx)
{
	unsigned char *data = (unsigned char *)(long)ctx->data;

	if (data[12] == 0x08) /* no check against ctx->data_end */
		return XDP_DROP;
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
