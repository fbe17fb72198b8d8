/* A growable list of owned strings, used as a set once sorted.
 * The ELF reader collects names with it; nothing here knows about ELF. */
#ifndef CANCELCTL_CHECK_STRLIST_H
#define CANCELCTL_CHECK_STRLIST_H

#include <stdbool.h>
#include <stddef.h>

struct strlist {
	char **v;
	size_t n, cap;
};

/* Append a copy of s (at most maxlen bytes of it). Returns false on ENOMEM. */
bool strlist_add(struct strlist *l, const char *s, size_t maxlen);
/* Append a copy unless an equal string is already there (linear: small lists). */
bool strlist_add_unique(struct strlist *l, const char *s);
bool strlist_contains(const struct strlist *l, const char *s);
/* Sort and drop duplicates, after which strlist_has() works in O(log n). */
void strlist_sort_unique(struct strlist *l);
bool strlist_has(const struct strlist *sorted, const char *s);
void strlist_free(struct strlist *l);

#endif
