/* Text of the drop-in cancelctl enable writes (see systemd_dropin.h). */
#include "systemd_dropin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shim_name.h"

/* The next space-separated word of *p, quotes removed and backslash escapes
 * resolved (systemctl quotes or escapes a value with a space); NULL at the
 * end. malloc'd. */
static char *next_word(const char **p)
{
	const char *s = *p;
	while (*s == ' ' || *s == '\t' || *s == '\n')
		s++;
	if (!*s)
		return NULL;
	char *out = malloc(strlen(s) + 1);
	if (!out)
		return NULL;
	size_t n = 0;
	char quote = 0;
	for (; *s; s++) {
		if (quote) {
			if (*s == quote)
				quote = 0;
			else if (*s == '\\' && s[1])
				out[n++] = *++s;
			else
				out[n++] = *s;
		} else if (*s == '"' || *s == '\'') {
			quote = *s;
		} else if (*s == '\\' && s[1]) {	/* an escaped space or quote */
			out[n++] = *++s;
		} else if (*s == ' ' || *s == '\t' || *s == '\n') {
			break;
		} else {
			out[n++] = *s;
		}
	}
	out[n] = '\0';
	*p = s;
	return out;
}

char *dropin_env_lookup(const char *environment, const char *name)
{
	size_t nl = strlen(name);
	char *w, *found = NULL;
	const char *p = environment ? environment : "";
	/* The last assignment wins, as in systemd. */
	while ((w = next_word(&p))) {
		if (!strncmp(w, name, nl) && w[nl] == '=') {
			free(found);
			found = strdup(w + nl + 1);
		}
		free(w);
	}
	return found;
}

char *dropin_preload_merge(const char *old, const char *lib)
{
	size_t cap = (old ? strlen(old) : 0) + strlen(lib) + 2;
	char *out = malloc(cap);
	if (!out)
		return NULL;
	size_t n = 0;
	for (const char *p = old ? old : ""; *p;) {
		size_t len = strcspn(p, ": ");
		/* Ours, or another copy of it: two copies would wrap every call twice. */
		if (len && !shim_name_matches(p, len) && !(len == strlen(lib) && !memcmp(p, lib, len))) {
			if (n)
				out[n++] = ':';
			memcpy(out + n, p, len);
			n += len;
		}
		p += len;
		p += strspn(p, ": ");
	}
	if (n)
		out[n++] = ':';
	strcpy(out + n, lib);
	return out;
}

/* Appends s to *buf (growing it); quoted for a unit file when quoted. */
static int append(char **buf, size_t *len, size_t *cap, const char *s, bool quoted)
{
	size_t need = *len + 2 * strlen(s) + 4;
	if (need > *cap) {
		size_t ncap = need * 2;
		char *nb = realloc(*buf, ncap);
		if (!nb)
			return -1;
		*buf = nb;
		*cap = ncap;
	}
	for (; *s; s++) {
		if (quoted && (*s == '"' || *s == '\\'))
			(*buf)[(*len)++] = '\\';
		else if (quoted && *s == '%')
			(*buf)[(*len)++] = '%';
		(*buf)[(*len)++] = *s;
	}
	(*buf)[*len] = '\0';
	return 0;
}

static int assignment(char **buf, size_t *len, size_t *cap, const char *var, const char *value)
{
	return append(buf, len, cap, "Environment=\"", false) | append(buf, len, cap, var, true) |
	       append(buf, len, cap, "=", false) | append(buf, len, cap, value, true) |
	       append(buf, len, cap, "\"\n", false);
}

char *dropin_render(const struct dropin *d)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int bad = append(&buf, &len, &cap, DROPIN_MARKER "\n", false);
	if (d->dir_created)
		bad |= append(&buf, &len, &cap, DROPIN_DIR_CREATED "\n", false);
	bad |= append(&buf, &len, &cap,
		      "# The unit's own LD_PRELOAD (when enabled) is kept, the shim appended.\n"
		      "# Takes effect when the unit is restarted.\n", false);
	if (d->comment) {
		bad |= append(&buf, &len, &cap, "# ", false) | append(&buf, &len, &cap, d->comment, false);
		bad |= append(&buf, &len, &cap, "\n", false);
	}
	bad |= append(&buf, &len, &cap, "[Service]\n", false);
	bad |= assignment(&buf, &len, &cap, "LD_PRELOAD", d->preload);
	for (size_t i = 0; i < d->n_env; i++)
		bad |= assignment(&buf, &len, &cap, d->env[i][0], d->env[i][1]);
	if (bad) {
		free(buf);
		return NULL;
	}
	return buf;
}

bool dropin_is_ours(const char *text)
{
	size_t n = strlen(DROPIN_MARKER);
	return text && !strncmp(text, DROPIN_MARKER, n) && (text[n] == '\n' || !text[n]);
}

bool dropin_created_dir(const char *text)
{
	if (!dropin_is_ours(text))
		return false;
	const char *second = strchr(text, '\n');
	return second && !strncmp(second + 1, DROPIN_DIR_CREATED "\n", strlen(DROPIN_DIR_CREATED) + 1);
}

char *dropin_unit_name(const char *arg, char *err, size_t errlen)
{
	if (!arg || !*arg || strchr(arg, '/') || !strcmp(arg, ".") || !strcmp(arg, "..") ||
	    strlen(arg) > 240 || strpbrk(arg, " \t\n\"'\\")) {
		snprintf(err, errlen, "'%s' is not a unit name (expected NAME or NAME.service, "
			 "no '/', quotes or spaces)", arg ? arg : "");
		return NULL;
	}
	const char *dot = strrchr(arg, '.');
	if (dot && strcmp(dot, ".service")) {
		snprintf(err, errlen, "'%s' is not a service; the shim is enabled on .service units",
			 arg);
		return NULL;
	}
	char *name = malloc(strlen(arg) + sizeof ".service");
	if (!name) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	strcpy(name, arg);
	if (!dot)
		strcat(name, ".service");
	return name;
}
