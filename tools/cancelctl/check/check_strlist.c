/* See check_strlist.h. */
#include "check_strlist.h"

#include <stdlib.h>
#include <string.h>

bool strlist_add(struct strlist *l, const char *s, size_t maxlen)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		char **v = realloc(l->v, cap * sizeof *v);
		if (!v)
			return false;
		l->v = v;
		l->cap = cap;
	}
	char *copy = strndup(s, maxlen);
	if (!copy)
		return false;
	l->v[l->n++] = copy;
	return true;
}

bool strlist_contains(const struct strlist *l, const char *s)
{
	for (size_t i = 0; i < l->n; i++)
		if (!strcmp(l->v[i], s))
			return true;
	return false;
}

bool strlist_add_unique(struct strlist *l, const char *s)
{
	return strlist_contains(l, s) || strlist_add(l, s, strlen(s));
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void strlist_sort_unique(struct strlist *l)
{
	if (l->n < 2)
		return;
	qsort(l->v, l->n, sizeof *l->v, cmp_str);
	size_t out = 1;
	for (size_t i = 1; i < l->n; i++) {
		if (!strcmp(l->v[i], l->v[out - 1]))
			free(l->v[i]);
		else
			l->v[out++] = l->v[i];
	}
	l->n = out;
}

bool strlist_has(const struct strlist *sorted, const char *s)
{
	if (!sorted->n)
		return false;
	return bsearch(&s, sorted->v, sorted->n, sizeof *sorted->v, cmp_str) != NULL;
}

void strlist_free(struct strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	*l = (struct strlist){ 0 };
}
