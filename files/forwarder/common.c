// SPDX-License-Identifier: GPL-3.0-or-later
/* Copyright: (c) 2026, kbypass.xdp developers */
#define _GNU_SOURCE
#include "common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static void vmessage(const char *prefix, const char *fmt, va_list ap)
{
	fputs(prefix, stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void kb_die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmessage("error: ", fmt, ap);
	va_end(ap);
	exit(2);
}

void kb_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmessage("warning: ", fmt, ap);
	va_end(ap);
}

int kb_parse_list(const char *s, int *out, int max)
{
	int n = 0;
	const char *p = s;

	if (!s || !*s)
		return -1;
	while (*p) {
		char *end;
		long a, b;

		errno = 0;
		a = strtol(p, &end, 10);
		if (end == p || errno || a < 0 || a > 4095)
			return -1;
		b = a;
		if (*end == '-') {
			p = end + 1;
			b = strtol(p, &end, 10);
			if (end == p || errno || b < a || b > 4095)
				return -1;
		}
		for (long v = a; v <= b; v++) {
			if (n >= max)
				return -1;
			for (int i = 0; i < n; i++)
				if (out[i] == v)
					return -1; /* duplicates are a mistake */
			out[n++] = (int)v;
		}
		if (*end == ',')
			end++;
		else if (*end)
			return -1;
		p = end;
	}
	return n;
}

unsigned long long kb_parse_u64(const char *opt, const char *s, unsigned long long min,
				unsigned long long max)
{
	char *end;
	unsigned long long v;

	errno = 0;
	if (!s || *s == '-')
		kb_die("%s: expected a number between %llu and %llu, got '%s'", opt, min, max,
		       s ? s : "");
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		kb_die("%s: expected a number between %llu and %llu, got '%s'", opt, min, max, s);
	return v;
}

double kb_parse_double(const char *opt, const char *s, double min, double max)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= min && v <= max))
		kb_die("%s: expected a number between %g and %g, got '%s'", opt, min, max, s);
	return v;
}

int kb_enter_netns(const char *name)
{
	char path[PATH_MAX];
	int fd, err;

	if (strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, ".."))
		return -EINVAL;
	snprintf(path, sizeof(path), "/run/netns/%s", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	err = setns(fd, CLONE_NEWNET) ? -errno : 0;
	close(fd);
	return err;
}

void kb_raise_memlock(void)
{
	struct rlimit r = { RLIM_INFINITY, RLIM_INFINITY };

	if (setrlimit(RLIMIT_MEMLOCK, &r)) {
		/* Root without CAP_SYS_RESOURCE: CAP_IPC_LOCK still lets UMEM register. */
		struct rlimit cur;

		getrlimit(RLIMIT_MEMLOCK, &cur);
		kb_warn("cannot raise RLIMIT_MEMLOCK to infinity (%s); continuing with %llu bytes",
			strerror(errno), (unsigned long long)cur.rlim_cur);
	}
}

int kb_pin_cpu(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

uint64_t kb_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

double kb_now_s(void)
{
	return (double)kb_now_ns() / 1e9;
}

double kb_wall_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void kb_cpu_times(double *user_s, double *sys_s)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	*user_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6;
	*sys_s = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

int kb_write_atomic(const char *path, const char *buf, size_t len)
{
	char tmp[PATH_MAX];
	int fd, err = 0;
	size_t off = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	while (off < len) {
		ssize_t w = write(fd, buf + off, len - off);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			break;
		}
		off += (size_t)w;
	}
	if (close(fd) && !err)
		err = -errno;
	if (!err && rename(tmp, path))
		err = -errno;
	if (err)
		unlink(tmp);
	return err;
}

void kb_buf_printf(struct kb_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		size_t avail = b->cap - b->len;

		va_start(ap, fmt);
		n = vsnprintf(b->s ? b->s + b->len : NULL, avail, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if ((size_t)n < avail) {
			b->len += (size_t)n;
			return;
		}
		b->cap = (b->cap + (size_t)n + 256) * 2;
		b->s = realloc(b->s, b->cap);
		if (!b->s)
			kb_die("out of memory");
	}
}

void kb_buf_json_str(struct kb_buf *b, const char *s)
{
	if (!s) {
		kb_buf_printf(b, "null");
		return;
	}
	kb_buf_printf(b, "\"");
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			kb_buf_printf(b, "\\%c", c);
		else if (c < 0x20)
			kb_buf_printf(b, "\\u%04x", c);
		else
			kb_buf_printf(b, "%c", c);
	}
	kb_buf_printf(b, "\"");
}

void kb_buf_free(struct kb_buf *b)
{
	free(b->s);
	b->s = NULL;
	b->len = b->cap = 0;
}

/* One's complement sum, eight bytes at a time in the host's byte order with end-around
 * carry, folded to 16 bits and swapped to network word order at the end (the sum does
 * not depend on the byte order it is computed in: RFC 1071).  Same result as adding the
 * big-endian 16-bit words one by one. */
static inline uint64_t add_carry(uint64_t acc, uint64_t v)
{
	acc += v;
	return acc + (acc < v);
}

uint32_t kb_csum_add(uint32_t sum, const void *data, size_t len)
{
	const uint8_t *p = data;
	uint64_t acc = 0;
	uint16_t r;

	for (; len >= 8; p += 8, len -= 8) {
		uint64_t w;

		memcpy(&w, p, 8);
		acc = add_carry(acc, w);
	}
	if (len) { /* the tail, zero-padded in memory order (an odd byte stays a high half) */
		uint64_t w = 0;

		memcpy(&w, p, len);
		acc = add_carry(acc, w);
	}
	acc = (acc & 0xffffffffu) + (acc >> 32);
	acc = (acc & 0xffffffffu) + (acc >> 32);
	acc = (acc & 0xffffu) + (acc >> 16);
	acc = (acc & 0xffffu) + (acc >> 16);
	r = (uint16_t)acc;
	return sum + ntohs(r);
}

uint16_t kb_csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}
