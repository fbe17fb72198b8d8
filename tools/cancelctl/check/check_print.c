/* See check_print.h. */
#include "check_print.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* ---- escaping ------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (1..4) and its code point, or 0. */
static size_t utf8_seq(const unsigned char *s, uint32_t *cp)
{
	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	size_t n = s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 ? 2 : 0;
	if (n == 0 || (n == 3 && s[0] >= 0xf0))
		return 0;
	uint32_t c = s[0] & (0x7f >> n);
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;	/* also stops at the NUL */
		c = (c << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && c < 0x800) || (n == 4 && (c < 0x10000 || c > 0x10ffff)) ||
	    (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return n;
}

/* For a terminal: control characters (C0, DEL, C1) and bad UTF-8 as \xNN. */
void check_put_text(FILE *out, const char *str)
{
	const unsigned char *s = (const unsigned char *)(str ? str : "(null)");
	while (*s) {
		uint32_t cp;
		size_t n = utf8_seq(s, &cp);
		if (n == 0 || cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0) || *s == '\\') {
			if (*s == '\\')
				fputs("\\\\", out);
			else
				fprintf(out, "\\x%02x", *s);
			s++;
			continue;
		}
		fwrite(s, 1, n, out);
		s += n;
	}
}

static void put_json_str(FILE *out, const char *str)
{
	if (!str) {
		fputs("null", out);
		return;
	}
	const unsigned char *s = (const unsigned char *)str;
	fputc('"', out);
	while (*s) {
		uint32_t cp;
		size_t n = utf8_seq(s, &cp);
		if (n == 0) {
			fputs("\\ufffd", out);	/* JSON must be UTF-8: bad bytes become U+FFFD */
			s++;
		} else if (cp == '"' || cp == '\\') {
			fprintf(out, "\\%c", (char)cp);
			s++;
		} else if (cp < 0x20 || cp == 0x7f) {
			fprintf(out, "\\u%04x", cp);
			s++;
		} else {
			fwrite(s, 1, n, out);
			s += n;
		}
	}
	fputc('"', out);
}

/* ---- text ----------------------------------------------------------------- */

void check_print_text(FILE *out, const char *asked, const struct check_report *r)
{
	check_put_text(out, asked);
	fprintf(out, ": %s\n", check_verdict_name(r->verdict));
	fputs("  file:      ", out);
	check_put_text(out, r->path);
	fprintf(out, " (%s", r->kind);
	if (r->interp) {
		fputs(", loader ", out);
		check_put_text(out, r->interp);
	}
	fputs(")\n", out);
	for (size_t i = 0; i < r->scripts.n; i++) {
		fputs("  via:       ", out);
		check_put_text(out, r->scripts.v[i]);
		fputc('\n', out);
	}
	fputs("  shim:      ", out);
	if (r->shim_error) {
		check_put_text(out, r->shim_error);
		fputc('\n', out);
	} else {
		check_put_text(out, r->shim_path);
		fprintf(out, " (%zu interposed calls)\n", r->interposed);
	}
	if (r->n_libs) {
		fprintf(out, "  libraries: %zu:", r->n_libs);
		for (size_t i = 0; i < r->n_libs; i++) {
			fputc(' ', out);
			check_put_text(out, r->libs[i].name);
			if (!r->libs[i].path)
				fputs(" (NOT FOUND)", out);
		}
		fputc('\n', out);
	}
	if (r->n_imports) {
		fprintf(out, "  imports %zu of the %zu interposed calls:\n", r->n_imports, r->interposed);
		for (size_t i = 0; i < r->n_imports; i++) {
			fputs("    ", out);
			check_put_text(out, r->imports[i].name);
			fputs(" (", out);
			for (size_t k = 0; k < r->imports[i].from.n; k++) {
				if (k)
					fputs(", ", out);
				check_put_text(out, r->imports[i].from.v[k]);
			}
			fputs(")\n", out);
		}
	}
	for (size_t i = 0; i < r->n_reasons; i++) {
		fprintf(out, "  %s: ", check_level_name(r->reasons[i].level));
		check_put_text(out, r->reasons[i].text);
		fputc('\n', out);
	}
}

/* ---- JSON ----------------------------------------------------------------- */

static void json_key(FILE *out, const char *key, bool *first)
{
	fputs(*first ? "{" : ", ", out);
	*first = false;
	fprintf(out, "\"%s\": ", key);
}

static void json_strlist(FILE *out, const struct strlist *l)
{
	fputc('[', out);
	for (size_t i = 0; i < l->n; i++) {
		if (i)
			fputs(", ", out);
		put_json_str(out, l->v[i]);
	}
	fputc(']', out);
}

void check_print_json(FILE *out, const char *asked, const struct check_report *r)
{
	bool first = true;
	json_key(out, "path", &first);
	put_json_str(out, r->readable ? r->path : asked);
	json_key(out, "scripts", &first);
	json_strlist(out, &r->scripts);
	json_key(out, "verdict", &first);
	put_json_str(out, r->readable ? check_verdict_name(r->verdict) : "error");
	if (!r->readable) {
		json_key(out, "error", &first);
		put_json_str(out, r->error);
		fputs("}\n", out);
		return;
	}
	json_key(out, "kind", &first);
	put_json_str(out, r->kind);
	json_key(out, "interpreter", &first);
	put_json_str(out, r->interp);
	json_key(out, "go", &first);
	put_json_str(out, r->go_marker);
	json_key(out, "io_uring", &first);
	fputs(r->io_uring ? "true" : "false", out);
	json_key(out, "setuid", &first);
	fputs(r->setuid ? "true" : "false", out);
	json_key(out, "setgid", &first);
	fputs(r->setgid ? "true" : "false", out);
	json_key(out, "capabilities", &first);
	fputs(r->capabilities ? "true" : "false", out);
	json_key(out, "nosuid_mount", &first);
	fputs(r->nosuid_mount ? "true" : "false", out);
	json_key(out, "owner", &first);
	fprintf(out, "{\"uid\": %u, \"gid\": %u}", r->owner_uid, r->owner_gid);
	json_key(out, "secure_execution", &first);
	fputs(r->secure_exec ? "true" : "false", out);
	json_key(out, "shim", &first);
	fputs("{\"path\": ", out);
	put_json_str(out, r->shim_path);
	fprintf(out, ", \"interposed\": %zu, \"error\": ", r->interposed);
	put_json_str(out, r->shim_error);
	fputc('}', out);
	json_key(out, "imports", &first);
	fputc('[', out);
	for (size_t i = 0; i < r->n_imports; i++) {
		fputs(i ? ", {\"name\": " : "{\"name\": ", out);
		put_json_str(out, r->imports[i].name);
		fputs(", \"from\": ", out);
		json_strlist(out, &r->imports[i].from);
		fputc('}', out);
	}
	fputc(']', out);
	json_key(out, "libraries", &first);
	fputc('[', out);
	for (size_t i = 0; i < r->n_libs; i++) {
		fputs(i ? ", {\"name\": " : "{\"name\": ", out);
		put_json_str(out, r->libs[i].name);
		fputs(", \"path\": ", out);
		put_json_str(out, r->libs[i].path);
		fputs(", \"needed_by\": ", out);
		put_json_str(out, r->libs[i].needed_by);
		fprintf(out, ", \"depth\": %u}", r->libs[i].depth);
	}
	fputc(']', out);
	json_key(out, "reasons", &first);
	fputc('[', out);
	for (size_t i = 0; i < r->n_reasons; i++) {
		fprintf(out, "%s{\"level\": \"%s\", \"code\": ", i ? ", " : "",
			check_level_name(r->reasons[i].level));
		put_json_str(out, r->reasons[i].code);
		fputs(", \"text\": ", out);
		put_json_str(out, r->reasons[i].text);
		fputc('}', out);
	}
	fputs("]}\n", out);
}

