/* CANCELSHIM_PORTS parsing and matching (common/ports.c), and its place in
 * cs_config_load. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "ports.h"

static struct cs_ports parsed(const char *s)
{
	struct cs_ports p;
	char err[512];
	cr_assert_eq(cs_parse_ports(s, &p, err, sizeof err), 0, "'%s': %s", s, err);
	return p;
}

static void rejected(const char *s)
{
	struct cs_ports p;
	char err[512] = "", want[256];
	cr_assert_eq(cs_parse_ports(s, &p, err, sizeof err), -1, "'%s' accepted", s);
	snprintf(want, sizeof want, "CANCELSHIM_PORTS='%s' is not valid", s);
	cr_assert(strstr(err, want) && strstr(err, "unix:PATH"), "%s", err);
}

Test(ports, all_and_empty_mean_every_listener)
{
	struct cs_ports p = parsed("all");
	cr_assert(cs_ports_all(&p) && cs_ports_has_tcp(&p, 1) && cs_ports_has_unix(&p, "/x", 2));
	p = parsed("");
	cr_assert(cs_ports_all(&p));
}

Test(ports, ports_ranges_and_unix_paths)
{
	struct cs_ports p = parsed("8080,9000-9009,unix:/run/app.sock,unix:@abstract");
	cr_assert(!cs_ports_all(&p));
	cr_assert(cs_ports_has_tcp(&p, 8080));
	cr_assert(cs_ports_has_tcp(&p, 9000) && cs_ports_has_tcp(&p, 9009));
	cr_assert(!cs_ports_has_tcp(&p, 8081) && !cs_ports_has_tcp(&p, 9010) && !cs_ports_has_tcp(&p, 8999));
	cr_assert(cs_ports_has_unix(&p, "/run/app.sock", 13));
	cr_assert(cs_ports_has_unix(&p, "@abstract", 9));
	cr_assert(!cs_ports_has_unix(&p, "/run/app.sock2", 14));
	cr_assert(!cs_ports_has_unix(&p, "/run/app.soc", 12));
	char buf[256];
	cs_ports_format(&p, buf, sizeof buf);
	cr_assert_str_eq(buf, "8080,9000-9009,unix:/run/app.sock,unix:@abstract");

	p = parsed("unix:/only");
	cr_assert(!cs_ports_has_tcp(&p, 80), "a unix-only list leaves every TCP port out");
}

Test(ports, bad_values_name_the_variable_and_the_accepted_values)
{
	rejected("http");
	rejected("0");
	rejected("65536");
	rejected("80,");
	rejected(",80");
	rejected("90-80");
	rejected("80-");
	rejected("8080 ");
	rejected("unix:");
	rejected("1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17");
}

static const char *fake_env(const char *name)
{
	return !strcmp(name, "CANCELSHIM_PORTS") ? "443,unix:/s" : NULL;
}

Test(ports, config_load_reads_cancelshim_ports)
{
	struct cs_config c;
	char err[256];
	cr_assert_eq(cs_config_load(&c, fake_env, err, sizeof err), 0, "%s", err);
	cr_assert(cs_ports_has_tcp(&c.ports, 443) && !cs_ports_has_tcp(&c.ports, 80));
	cs_config_defaults(&c);
	cr_assert(cs_ports_all(&c.ports));
}

Test(ports, entries_are_numbered_tcp_first_and_labelled_as_written)
{
	struct cs_ports p = parsed("unix:/run/a b.sock,8080,9000-9009,unix:@abs,8085-8090");
	char label[128];

	cr_assert_eq(cs_ports_entries(&p), 5);
	cr_assert_eq(cs_ports_tcp_entry(&p, 8080), 0);
	cr_assert_eq(cs_ports_tcp_entry(&p, 9005), 1);
	cr_assert_eq(cs_ports_tcp_entry(&p, 8090), 2);
	cr_assert_eq(cs_ports_tcp_entry(&p, 8081), -1);
	cr_assert_eq(cs_ports_unix_entry(&p, "/run/a b.sock", 13), 3);
	cr_assert_eq(cs_ports_unix_entry(&p, "@abs", 4), 4);
	cr_assert_eq(cs_ports_unix_entry(&p, "/run/a b.soc", 12), -1);
	const char *want[] = { "8080", "9000-9009", "8085-8090", "unix:/run/a b.sock", "unix:@abs" };
	for (unsigned i = 0; i < 5; i++) {
		cs_ports_entry_label(&p, i, label, sizeof label);
		cr_assert_str_eq(label, want[i]);
	}
	cs_ports_entry_label(&p, 5, label, sizeof label);
	cr_assert_str_eq(label, "");
	/* Overlapping ranges: the first entry written. */
	p = parsed("8000-8100,8080");
	cr_assert_eq(cs_ports_tcp_entry(&p, 8080), 0);
	/* Every listener in scope: no entries, no rows. */
	p = parsed("all");
	cr_assert_eq(cs_ports_entries(&p), 0);
	cr_assert_eq(cs_ports_tcp_entry(&p, 8080), -1);
}
