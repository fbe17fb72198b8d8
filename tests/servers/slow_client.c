/* See slow_client.h. */
#include "slow_client.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http_client.h"
#include "testlib.h"

int slow_send(int port, const char *path, const char *id, int calls)
{
	int fd = tl_connect_tcp("127.0.0.1", port, 2000);
	cr_assert_geq(fd, 0, "connect: %s", strerror(errno));
	char *url = tl_strdupf("%s?id=%s&n=%d", path, id, calls);
	struct http_conn c;
	http_conn_init(&c, fd);
	cr_assert_eq(http_send_get(&c, url, false, 2000), 0);
	http_conn_free(&c);
	free(url);
	return fd;
}

void slow_read_ok(int fd, const char *id, int calls)
{
	struct http_conn c;
	struct http_resp r;
	http_conn_init(&c, fd);
	cr_assert_eq(http_read_response(&c, &r, 10000), 0, "request %s: %s", id, r.err);
	cr_assert_eq(r.status, 200, "request %s: status %d\n%s", id, r.status, r.body);
	size_t size = (size_t)calls * 32 + 1, len = 0;
	char *expect = malloc(size);
	expect[0] = 0;
	for (int i = 1; i <= calls; i++)
		len += snprintf(expect + len, size - len, "ok %s %d\n", id, i);
	cr_assert_str_eq(r.body, expect, "request %s: wrong body", id);
	free(expect);
	free(r.body);
	http_conn_free(&c);
	close(fd);
}
