/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Copyright: (c) 2026, kbypass.xdp developers
 *
 * Small helpers shared by kbypass-fwd, kbypass-gen and kbypass-udpecho:
 * namespaces, memlock, CPU pinning, list parsing, time, atomic file writes.
 */
#ifndef KBYPASS_COMMON_H
#define KBYPASS_COMMON_H

#include <stdint.h>
#include <stddef.h>
#include <stdio.h>

#define KB_PIN_ROOT "/sys/fs/bpf/kbypass"
#define KB_MAX_LIST 64

/* Newer AF_XDP / socket constants that Debian 12's 6.1 headers may lack. */
#ifndef SO_BUSY_POLL
#define SO_BUSY_POLL 46
#endif
#ifndef SO_PREFER_BUSY_POLL
#define SO_PREFER_BUSY_POLL 69
#endif
#ifndef SO_BUSY_POLL_BUDGET
#define SO_BUSY_POLL_BUDGET 70
#endif

#define KB_UNUSED __attribute__((unused))

void kb_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void kb_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Parse "0,1,4-6" into out[]; returns the count or -1 on error. */
int kb_parse_list(const char *s, int *out, int max);
/* Parse an unsigned integer within [min, max]; dies with the option name on error. */
unsigned long long kb_parse_u64(const char *opt, const char *s, unsigned long long min,
				unsigned long long max);
double kb_parse_double(const char *opt, const char *s, double min, double max);

/* Enter the network namespace /run/netns/NAME (this thread and threads created later). */
int kb_enter_netns(const char *name);
/* Raise RLIMIT_MEMLOCK; warn (never fail) when the kernel refuses. */
void kb_raise_memlock(void);
int kb_pin_cpu(int cpu);

uint64_t kb_now_ns(void);
double kb_now_s(void);
/* Realtime clock in seconds (for timestamps in reports). */
double kb_wall_s(void);

/* Process CPU time (user + system) in seconds, from getrusage(RUSAGE_SELF). */
void kb_cpu_times(double *user_s, double *sys_s);

/* Write buf to path atomically (tmp file + rename). Returns 0 or -errno. */
int kb_write_atomic(const char *path, const char *buf, size_t len);

/* A growable string buffer for JSON output. */
struct kb_buf {
	char *s;
	size_t len, cap;
};
void kb_buf_printf(struct kb_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void kb_buf_json_str(struct kb_buf *b, const char *s);
void kb_buf_free(struct kb_buf *b);

/* Internet checksum helpers (network byte order data). */
uint32_t kb_csum_add(uint32_t sum, const void *data, size_t len);
uint16_t kb_csum_fold(uint32_t sum);

#endif
