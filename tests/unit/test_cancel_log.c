/* The cancel log line's time stamp: computed by the shim itself (libc's
 * gmtime_r takes a lock a fork child may inherit held), so checked here
 * against gmtime_r over dates that exercise leap years, century rules, month
 * ends and the epoch. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cancel/cancel_log.h"

static void expect_same_as_libc(long long secs)
{
	char line[400], want[64];
	struct tm tm;
	time_t t = (time_t)secs;

	cs_cancel_log_format(line, sizeof line, secs * 1000000000 + 123000000, 1, 2, NULL, 0, NULL, 0, 0, 0, -1);
	gmtime_r(&t, &tm);
	snprintf(want, sizeof want, "time=%04d-%02d-%02dT%02d:%02d:%02d.123Z ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	cr_assert(strncmp(line, want, strlen(want)) == 0, "at %lld s: %s, want %s", secs, line, want);
}

Test(cancel_log, the_time_stamp_is_utc_as_libc_says)
{
	static const long long fixed[] = { 0, 59, 86399, 86400, 951782400 /* 2000-02-29 */, 951868800,
					   4107542399 /* 2100-02-28T23:59:59 */, 4107542400, 1796092436 };

	for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
		expect_same_as_libc(fixed[i]);
	/* Day boundaries, give or take a second, from 1970 to 2260 (nanoseconds
	 * since the epoch fit in 64 bits until 2262): leap years, 2000, 2100,
	 * 2200. */
	for (long long day = 0; day < 106000; day += 3) {
		expect_same_as_libc(day * 86400);
		expect_same_as_libc(day * 86400 + 86399);
	}
}

Test(cancel_log, the_line_names_its_fields)
{
	char line[400];

	cs_cancel_log_format(line, sizeof line, 1796092436682000000LL, 10, 11, NULL, 0, NULL, 0, 1, 45 /* recvfrom */,
			     24000);
	cr_assert(strcmp(line, "time=2026-12-01T02:33:56.682Z pid=10 tid=11 lport=- peer=- reason=rst call=recvfrom "
			       "ms_since_disconnect=0.024") == 0,
		  "%s", line);
}
