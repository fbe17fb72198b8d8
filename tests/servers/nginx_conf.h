/* What every nginx the servers tests start has in common: in the
 * foreground, every file of its own in the test's directory, ready once its
 * port answers. */
#ifndef CS_NGINX_CONF_H
#define CS_NGINX_CONF_H

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"

#define NGINX "/usr/sbin/nginx"

/* The head of nginx.conf, up to and including "http {": a format whose
 * argument 1 (%1$s) is the test's directory. */
#define NGINX_CONF_HEAD(workers, connections)                                                                \
	"daemon off;\n"                                                                                      \
	"master_process on;\n"                                                                               \
	"worker_processes " workers ";\n"                                                                    \
	"user root;\n"                                                                                       \
	"error_log %1$s/error.log info;\n"                                                                   \
	"pid %1$s/nginx.pid;\n"                                                                              \
	"events { worker_connections " connections "; }\n"                                                   \
	"http {\n"                                                                                           \
	"  client_body_temp_path %1$s/tmp_body;\n"                                                           \
	"  proxy_temp_path %1$s/tmp_proxy;\n"                                                                \
	"  fastcgi_temp_path %1$s/tmp_fastcgi;\n"                                                            \
	"  uwsgi_temp_path %1$s/tmp_uwsgi;\n"                                                                \
	"  scgi_temp_path %1$s/tmp_scgi;\n"

/* Writes conf to dir/nginx.conf and starts nginx on it (under the shim);
 * returns once 127.0.0.1:port answers, or fails the test with nginx's
 * stderr and error.log. */
static inline struct tl_proc *nginx_start(const char *dir, const char *conf, int port, const char *const env[])
{
	char *path = tl_write_in(dir, "nginx.conf", conf, strlen(conf));
	cr_assert_not_null(path, "cannot write %s/nginx.conf", dir);
	char *errlog = tl_strdupf("%s/error.log", dir), *why;
	const char *argv[] = { NGINX, "-p", dir, "-c", path, "-e", errlog, NULL };
	struct tl_ready ready = { .port = port, .timeout_ms = 10000, .log = errlog };
	struct tl_proc *p = tl_server_start(argv, env, TL_SHIM, &ready, NULL, &why);
	cr_assert_not_null(p, "%s", why);
	free(path);
	free(errlog);
	return p;
}

#endif
