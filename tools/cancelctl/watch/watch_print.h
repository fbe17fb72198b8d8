/* How `cancelctl watch` shows one disconnect: a table row or a JSON line.
 * Pure formatting of struct disconnect_event (ebpf/disconnect.h). */
#ifndef CANCELCTL_WATCH_PRINT_H
#define CANCELCTL_WATCH_PRINT_H

#include <stdint.h>
#include <stdio.h>
#include <linux/types.h>

#include "disconnect.h"

/* Turns the kernel's CLOCK_MONOTONIC stamps into wall-clock time. */
struct watch_clock {
	int64_t realtime_minus_mono_ns;
};

void watch_clock_init(struct watch_clock *c);

void watch_print_header(FILE *out);
void watch_print_text(FILE *out, const struct watch_clock *c, const struct disconnect_event *e);
void watch_print_json(FILE *out, const struct watch_clock *c, const struct disconnect_event *e);

/* "FIN", "RST", "ERR" or "?". */
const char *watch_kind_name(unsigned kind);

#endif
