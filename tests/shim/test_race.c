/* The lost wake-up and descriptor reuse, under stress. */
#include <criterion/criterion.h>

#include "probe_run.h"

Test(race, hundred_thousand_disconnects_around_entry, .timeout = 280)
{
	struct probe_result r = probe_run(0, NULL, "race", "100000", "20", NULL);
	long long aborted = probe_field(&r, "race", "aborted");
	cr_expect_gt(aborted, 40000);
	cr_expect_eq(probe_field(&r, "race", "lost"), 0, "a cancel that did not wake the call\n%s", r.out);
	cr_expect_eq(probe_field(&r, "race", "missed"), 0, "an aborted request that was not cancelled\n%s", r.out);
	cr_expect_eq(probe_field(&r, "race", "cancelled"), aborted);
	cr_expect_eq(probe_field(&r, "race", "spurious"), 0, "a live request cancelled\n%s%s", r.out, r.err);
	probe_result_free(&r);
}

static void churn(const char *n, const char *family)
{
	struct probe_result r = probe_run(0, NULL, "churn", n, family, NULL);
	cr_expect_eq(probe_field(&r, "churn", "spurious"), 0, "a live request was cancelled (descriptor reuse?)\n%s", r.out);
	cr_expect_eq(probe_field(&r, "churn", "live_bad"), 0, "a live client got a wrong answer\n%s", r.out);
	cr_expect_eq(probe_field(&r, "churn", "pending"), 0);
	cr_expect_gt(probe_field(&r, "churn", "cancelled"), 0, "aborted requests must get cancelled\n%s", r.out);
	probe_result_free(&r);
}

Test(race, churn_reuses_descriptors_unix, .timeout = 280)
{
	churn("20000", "unix");
}

Test(race, churn_reuses_descriptors_tcp, .timeout = 280)
{
	churn("8000", "v4");
}
