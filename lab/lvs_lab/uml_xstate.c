/*
 * uml_xstate.so: LD_PRELOAD for linux.uml (Debian's user-mode-linux 6.1) on hosts
 * whose XSAVE area is larger than UML's FPU buffer.
 *
 * Why: UML keeps each guest task's FPU/vector state in a fixed buffer (HOST_FP_SIZE,
 * 2,696 bytes in the 6.1 series) and saves/restores it around every trap with
 * PTRACE_GETREGSET/SETREGSET NT_X86_XSTATE. The host kernel clamps a longer GET to its
 * own XSAVE size, but refuses any SET whose length is not exactly that size (EFAULT).
 * On a CPU whose XSAVE area is larger than UML's buffer (AMX: 11,008 bytes), the first
 * guest process dies ("userspace - ptrace set fp regs failed, errno = 14").
 *
 * What: every NT_X86_XSTATE request shorter than the host's XSAVE size is done with a
 * full-size buffer. One full buffer is kept per caller buffer address: UML passes the
 * address of the guest task's own FPU buffer, so each guest task keeps the part of its
 * state that does not fit UML's buffer (AVX-512 upper halves, AMX tiles ...) across
 * context switches. GET fills the full buffer and copies UML's share to UML; SET lays
 * UML's share over the task's full buffer and writes the whole. A buffer address seen
 * first in a SET (a new task, UML's start-up registers) starts from the tracee's state
 * of the moment. Requests as long as the host's size or longer pass through untouched.
 *
 * Environment (tests only):
 *   LVS_LAB_XSTATE_CLAMP=N  treat the caller's requests as N bytes long (simulates a
 *                           host whose XSAVE area is larger than UML's buffer)
 *   LVS_LAB_XSTATE_STATS=F  write "widened_get N\nwidened_set N\nfull_size N\n" to F
 *
 * Built by lvs_lab/xstate.py (cc -shared) at lab start; never committed as a binary.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef NT_X86_XSTATE
#define NT_X86_XSTATE 0x202
#endif

#define PROBE_SIZE (1024 * 1024) /* larger than any XSAVE area the kernel can report */

typedef long (*ptrace_fn)(enum __ptrace_request, ...);

struct entry {
    uintptr_t key; /* the caller's buffer address; 0 = free slot */
    unsigned char *full;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static ptrace_fn real_ptrace;
static size_t full_size;  /* the host kernel's NT_X86_XSTATE size; 0 = not known yet */
static size_t clamp;      /* LVS_LAB_XSTATE_CLAMP, 0 = off */
static const char *stats_path;
static unsigned long widened_get, widened_set;
static struct entry *table;
static size_t table_cap, table_used;

static void init_once(void)
{
    const char *value;

    real_ptrace = (ptrace_fn)dlsym(RTLD_NEXT, "ptrace");
    value = getenv("LVS_LAB_XSTATE_CLAMP");
    if (value && *value)
        clamp = strtoul(value, NULL, 10);
    stats_path = getenv("LVS_LAB_XSTATE_STATS");
}

static pthread_once_t once = PTHREAD_ONCE_INIT;

static long raw_regset(int request, pid_t pid, void *base, size_t len, size_t *done)
{
    struct iovec iov = {.iov_base = base, .iov_len = len};
    long ret = real_ptrace(request, pid, (void *)(uintptr_t)NT_X86_XSTATE, &iov);

    if (done)
        *done = iov.iov_len;
    return ret;
}

/* The host's XSAVE size, as the kernel itself reports it for this tracee. */
static int learn_full_size(pid_t pid)
{
    unsigned char *probe;
    size_t done = 0;
    long ret;

    if (full_size)
        return 0;
    probe = malloc(PROBE_SIZE);
    if (!probe)
        return -ENOMEM;
    ret = raw_regset(PTRACE_GETREGSET, pid, probe, PROBE_SIZE, &done);
    free(probe);
    if (ret < 0)
        return -errno;
    full_size = done;
    return 0;
}

static size_t slot_of(uintptr_t key, size_t cap)
{
    return (size_t)((key >> 4) * 0x9E3779B97F4A7C15ULL) & (cap - 1);
}

static int grow(void)
{
    size_t cap = table_cap ? table_cap * 2 : 256;
    struct entry *fresh = calloc(cap, sizeof(*fresh));

    if (!fresh)
        return -ENOMEM;
    for (size_t i = 0; i < table_cap; i++) {
        if (!table[i].key)
            continue;
        size_t slot = slot_of(table[i].key, cap);
        while (fresh[slot].key)
            slot = (slot + 1) & (cap - 1);
        fresh[slot] = table[i];
    }
    free(table);
    table = fresh;
    table_cap = cap;
    return 0;
}

/* The full buffer kept for the caller's buffer at ``key``; *created says it is new. */
static unsigned char *full_buffer(uintptr_t key, int *created)
{
    size_t slot;

    *created = 0;
    if (table_cap) {
        for (slot = slot_of(key, table_cap); table[slot].key; slot = (slot + 1) & (table_cap - 1))
            if (table[slot].key == key)
                return table[slot].full;
    }
    if ((table_used + 1) * 2 > table_cap && grow() != 0)
        return NULL;
    slot = slot_of(key, table_cap);
    while (table[slot].key)
        slot = (slot + 1) & (table_cap - 1);
    table[slot].full = calloc(1, full_size);
    if (!table[slot].full)
        return NULL;
    table[slot].key = key;
    table_used++;
    *created = 1;
    return table[slot].full;
}

static void write_stats(void)
{
    char text[128];
    int len, fd;

    if (!stats_path)
        return;
    len = snprintf(text, sizeof(text), "widened_get %lu\nwidened_set %lu\nfull_size %zu\n",
                   widened_get, widened_set, full_size);
    fd = open(stats_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    if (write(fd, text, (size_t)len) < 0) {
        /* nothing to do: statistics are best effort */
    }
    close(fd);
}

static void count(unsigned long *counter)
{
    (*counter)++;
    if (*counter == 1 || (*counter & 1023) == 0)
        write_stats();
}

/* A GET or SET of ``want`` bytes at ``user`` done with the full-size buffer. */
static long widened(int request, pid_t pid, struct iovec *iov, size_t want)
{
    unsigned char *full;
    int created;
    long ret;

    full = full_buffer((uintptr_t)iov->iov_base, &created);
    if (!full) {
        errno = ENOMEM;
        return -1;
    }
    if (request == PTRACE_GETREGSET) {
        ret = raw_regset(PTRACE_GETREGSET, pid, full, full_size, NULL);
        if (ret < 0)
            return ret;
        memcpy(iov->iov_base, full, want);
        iov->iov_len = want;
        count(&widened_get);
        return ret;
    }
    if (created && raw_regset(PTRACE_GETREGSET, pid, full, full_size, NULL) < 0)
        return -1;
    memcpy(full, iov->iov_base, want);
    ret = raw_regset(PTRACE_SETREGSET, pid, full, full_size, NULL);
    if (ret == 0) {
        iov->iov_len = want;
        count(&widened_set);
    }
    return ret;
}

long ptrace(enum __ptrace_request request, ...)
{
    va_list args;
    pid_t pid;
    void *addr, *data;
    struct iovec *iov;
    size_t want;
    long ret;
    int err;

    va_start(args, request);
    pid = va_arg(args, pid_t);
    addr = va_arg(args, void *);
    data = va_arg(args, void *);
    va_end(args);
    pthread_once(&once, init_once);
    if (!real_ptrace) {
        errno = ENOSYS;
        return -1;
    }
    if ((request != PTRACE_GETREGSET && request != PTRACE_SETREGSET) ||
        (uintptr_t)addr != NT_X86_XSTATE || data == NULL)
        return real_ptrace(request, pid, addr, data);

    iov = data;
    pthread_mutex_lock(&lock);
    err = learn_full_size(pid);
    want = iov->iov_len;
    if (clamp && clamp < want)
        want = clamp;
    if (err != 0 || want >= full_size) {
        pthread_mutex_unlock(&lock);
        return real_ptrace(request, pid, addr, data);
    }
    ret = widened(request, pid, iov, want);
    err = errno;
    pthread_mutex_unlock(&lock);
    errno = err;
    return ret;
}
