// SPDX-License-Identifier: GPL-3.0-or-later
/* Copyright: (c) 2026, kbypass.xdp developers
 *
 * kbypass-udpecho: the kernel baseline.  A plain UDP socket (IPv4 and IPv6 on one
 * dual-stack socket) with recvmmsg/sendmmsg, pinned to one CPU, that echoes or drops
 * what it receives.  Prints one JSON object at exit (duration, SIGINT or SIGTERM):
 * packets, bytes, echoed, cpu_user_s, cpu_sys_s, duration_s.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "common.h"

#define BATCH 64

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: kbypass-udpecho [--port 4242] [--mode echo|drop] [--netns NS]\n"
		   "         [--cpu N] [--duration SEC] [--json]\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "mode", required_argument, NULL, 'm' },
		{ "netns", required_argument, NULL, 'n' },
		{ "cpu", required_argument, NULL, 'c' },
		{ "duration", required_argument, NULL, 'd' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0, 0, 0, 0 },
	};
	struct sigaction sa = { .sa_handler = on_signal };
	unsigned int port = 4242;
	bool echo = true;
	const char *netns = NULL;
	int cpu = -1, s, zero = 0, buf = 4 << 20, c;
	double duration = 60, start, u0, s0, u1, s1;
	uint64_t packets = 0, bytes = 0, echoed = 0, send_errors = 0;
	struct sockaddr_in6 addr = { .sin6_family = AF_INET6 };
	struct timeval tv = { 0, 100000 };
	static unsigned char data[BATCH][16384]; /* jumbo datagrams (MTU 9000) whole */
	struct sockaddr_in6 peers[BATCH];
	struct mmsghdr m[BATCH];
	struct iovec iov[BATCH];

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'p': port = (unsigned int)kb_parse_u64("--port", optarg, 1, 65535); break;
		case 'm':
			if (!strcmp(optarg, "drop"))
				echo = false;
			else if (strcmp(optarg, "echo"))
				kb_die("--mode: expected echo or drop, got '%s'", optarg);
			break;
		case 'n': netns = optarg; break;
		case 'c': cpu = (int)kb_parse_u64("--cpu", optarg, 0, 4095); break;
		case 'd': duration = kb_parse_double("--duration", optarg, 0.01, 3600); break;
		case 'j': break; /* output is always JSON */
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc)
		kb_die("unexpected argument '%s'", argv[optind]);
	if (netns) {
		int err = kb_enter_netns(netns);

		if (err)
			kb_die("cannot enter network namespace %s: %s", netns, strerror(-err));
	}
	if (cpu >= 0 && kb_pin_cpu(cpu))
		kb_warn("cannot pin to CPU %d", cpu);
	s = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		kb_die("socket: %s", strerror(errno));
	setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	setsockopt(s, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
	setsockopt(s, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	addr.sin6_port = htons((uint16_t)port);
	addr.sin6_addr = in6addr_any;
	if (bind(s, (struct sockaddr *)&addr, sizeof(addr)))
		kb_die("cannot bind UDP port %u: %s", port, strerror(errno));
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	fprintf(stderr, "kbypass-udpecho: %s on UDP port %u\n", echo ? "echo" : "drop", port);

	kb_cpu_times(&u0, &s0);
	start = kb_now_s();
	while (!stop_flag && kb_now_s() - start < duration) {
		int n;

		for (int i = 0; i < BATCH; i++) {
			iov[i].iov_base = data[i];
			iov[i].iov_len = sizeof(data[i]);
			memset(&m[i].msg_hdr, 0, sizeof(m[i].msg_hdr));
			m[i].msg_hdr.msg_name = &peers[i];
			m[i].msg_hdr.msg_namelen = sizeof(peers[i]);
			m[i].msg_hdr.msg_iov = &iov[i];
			m[i].msg_hdr.msg_iovlen = 1;
		}
		n = recvmmsg(s, m, BATCH, MSG_WAITFORONE, NULL);
		if (n <= 0)
			continue;
		packets += (uint64_t)n;
		for (int i = 0; i < n; i++) {
			bytes += m[i].msg_len;
			iov[i].iov_len = m[i].msg_len;
		}
		if (echo) {
			int sent = sendmmsg(s, m, (unsigned int)n, MSG_DONTWAIT);

			if (sent > 0)
				echoed += (uint64_t)sent;
			if (sent < n)
				send_errors += (uint64_t)(n - (sent > 0 ? sent : 0));
		}
	}
	kb_cpu_times(&u1, &s1);
	printf("{\"mode\": \"%s\", \"port\": %u, \"packets\": %llu, \"bytes\": %llu, "
	       "\"echoed\": %llu, \"send_errors\": %llu, \"duration_s\": %.3f, "
	       "\"cpu_user_s\": %.3f, \"cpu_sys_s\": %.3f, \"cpu\": %d}\n",
	       echo ? "echo" : "drop", port, (unsigned long long)packets,
	       (unsigned long long)bytes, (unsigned long long)echoed,
	       (unsigned long long)send_errors, kb_now_s() - start, u1 - u0, s1 - s0, cpu);
	close(s);
	return 0;
}
