/* harness.h: what the embedded C tests share with harness.c (the stand-in embedder). */
#ifndef MIRS_EMBEDDED_HARNESS_H
#define MIRS_EMBEDDED_HARNESS_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mirs.h"

/* How often mirs asked the alive hook. */
extern atomic_long harness_alive_calls;
/* The id mirs_hook_thread_id gives the calling thread. */
size_t harness_thread_id(void);
/* MIRS_TEST_THREAD_DONE=1: threads call mirs_thread_done() when they end. */
bool harness_thread_done_mode(void);
/* Install (true) or remove the alive hook. */
void harness_set_alive_hook(bool on);
/* Keep the `align`-aligned run of `size` bytes of the fresh mapping
   `raw..raw+span` (span >= size + align) and unmap the rest; its start. */
void *harness_trim_to_alignment(void *raw, size_t span, size_t size, size_t align);

#endif
