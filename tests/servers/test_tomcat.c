/* Tomcat 10.1 (Debian's tomcat10, NIO connector: an acceptor thread, a poller
 * thread that waits on every idle connection in one selector, and a pool of
 * workers, here one: maxThreads=1) running tomcat/slow.jsp under the shim.
 * The worker reads the request the poller found readable and runs the JSP;
 * between keep-alive requests the connection goes back to the poller.
 *
 * Before issue 11 the poller itself was cancelled: when the process's first
 * client left while it was the only socket in the poller's selector, the
 * poller's epoll_wait failed with ECANCELED and Tomcat logged "Error in
 * selector loop" in a tight loop. The warm-up below is that first client.
 *
 * A JVM and Tomcat take seconds to start and the JSP seconds to compile, so
 * one test per mode runs every scenario on the same server, each scenario's
 * request ids under its own tag. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http_client.h"
#include "pool_scenarios.h"

#define JAVA "/usr/bin/java"
#define TOMCAT_HOME "/usr/share/tomcat10"
#define TOMCAT_ETC "/etc/tomcat10"

static const char *const bad_log[] = { "Error in selector loop", "OutOfMemoryError", NULL };
static struct pool_server srv = { .name = "tomcat", .path = "/slow.jsp", .processes = 1,
				  .worker_reads_request = true, .bad_log = bad_log };
static char *base;

static void stop(void)
{
	pool_stop(&srv);
	if (base)
		tl_cleanup_dir(base);
}

TestSuite(tomcat, .timeout = 120, .fini = stop);

static void put(const char *rel, const char *text)
{
	char *path = tl_strdupf("%s/%s", base, rel);
	cr_assert_eq(tl_write_file(path, text, strlen(text)), 0, "write %s", path);
	free(path);
}

/* CATALINA_BASE: Debian's web.xml (the JSP servlet) and catalina.properties
 * (class loaders) with jar scanning off (it costs seconds), our connector,
 * the JSP as the ROOT application. */
static void make_base(void)
{
	base = tl_tmpdir("tomcat");
	cr_assert_not_null(base);
	const char *dirs[] = { "conf", "logs", "work", "temp", "webapps", "webapps/ROOT" };
	for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
		char *d = tl_strdupf("%s/%s", base, dirs[i]);
		cr_assert_eq(mkdir(d, 0755), 0, "mkdir %s: %s", d, strerror(errno));
		free(d);
	}
	char *web = tl_read_file(TOMCAT_ETC "/web.xml", NULL);
	char *props = tl_read_file(TOMCAT_ETC "/catalina.properties", NULL);
	char *jsp_src = tl_source_path("tests/servers/tomcat/slow.jsp");
	char *jsp = tl_read_file(jsp_src, NULL);
	cr_assert(web && props && jsp, "missing " TOMCAT_ETC " files or slow.jsp");
	put("conf/web.xml", web);
	char *p = tl_strdupf("%s\ntomcat.util.scan.StandardJarScanFilter.jarsToSkip=*\n"
			     "tomcat.util.scan.StandardJarScanFilter.jarsToScan=\n", props);
	put("conf/catalina.properties", p);
	put("conf/context.xml",
	    "<Context><JarScanner scanClassPath=\"false\" scanManifest=\"false\"/></Context>\n");
	char *server = tl_strdupf(
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		"<Server port=\"-1\" shutdown=\"SHUTDOWN\">\n"
		" <Service name=\"Catalina\">\n"
		"  <Connector address=\"127.0.0.1\" port=\"%d\" protocol=\"HTTP/1.1\"\n"
		"   maxThreads=\"1\" minSpareThreads=\"1\" connectionTimeout=\"30000\"\n"
		"   keepAliveTimeout=\"30000\" maxKeepAliveRequests=\"-1\"/>\n"
		"  <Engine name=\"Catalina\" defaultHost=\"localhost\">\n"
		"   <Host name=\"localhost\" appBase=\"webapps\" unpackWARs=\"false\"\n"
		"    autoDeploy=\"false\"/>\n"
		"  </Engine>\n"
		" </Service>\n"
		"</Server>\n", srv.port);
	put("conf/server.xml", server);
	put("webapps/ROOT/slow.jsp", jsp);
	free(server);
	free(p);
	free(web);
	free(props);
	free(jsp);
	free(jsp_src);
}

static void start(void)
{
	cr_assert_eq(access(TOMCAT_HOME "/bin/bootstrap.jar", R_OK), 0,
		     TOMCAT_HOME " missing (package tomcat10)");
	pool_upstreams_start(&srv);
	srv.port = tl_free_port();
	cr_assert_gt(srv.port, 0);
	make_base();
	char *dbase = tl_strdupf("-Dcatalina.base=%s", base);
	char *dtmp = tl_strdupf("-Djava.io.tmpdir=%s/temp", base);
	char *uport = tl_strdupf("SLOW_UPSTREAM_PORT=%d", tl_upstream_port(srv.slow));
	const char *argv[] = { JAVA, "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xmx256m",
			       dbase, "-Dcatalina.home=" TOMCAT_HOME, dtmp,
			       "-cp", TOMCAT_HOME "/bin/bootstrap.jar:" TOMCAT_HOME "/bin/tomcat-juli.jar",
			       "org.apache.catalina.startup.Bootstrap", "start", NULL };
	const char *env[] = { uport, pool_shim_log(), NULL };
	srv.proc = tl_spawn(argv, env, TL_SHIM);
	cr_assert_not_null(srv.proc, "spawn java: %s", strerror(errno));
	char *err = NULL;
	if (!tl_proc_wait_stderr(srv.proc, "Server startup in", 60000))
		err = tl_proc_stderr(srv.proc);
	cr_assert_null(err, "tomcat did not start:\n%s", err);
	free(dbase);
	free(dtmp);
	free(uport);

	/* The process's first client: compiles the JSP (jsp_precompile runs
	 * nothing), then leaves while it is alone in the poller's selector. */
	struct http_conn c;
	http_conn_init(&c, tl_connect_tcp("127.0.0.1", srv.port, 2000));
	cr_assert_geq(c.fd, 0);
	cr_assert_eq(http_send_get(&c, "/slow.jsp?jsp_precompile=true", true, 2000), 0);
	struct http_resp r;
	cr_assert_eq(http_read_response(&c, &r, 60000), 0, "precompile: %s", r.err);
	cr_assert_eq(r.status, 200, "precompile: %d %s", r.status, r.body);
	free(r.body);
	close(c.fd);
	http_conn_free(&c);
}

static void scenario(const char *tag)
{
	snprintf(srv.tag, sizeof srv.tag, "%s", tag);
	cr_log_info("tomcat: scenario %s", tag);
}

Test(tomcat, all_scenarios)
{
	start();
	scenario("a1");
	pool_abort_mid_request(&srv, false);
	scenario("a2");
	pool_abort_mid_request(&srv, true);
	scenario("b1");
	pool_keepalive_idle_then_close(&srv, false);
	scenario("b2");
	pool_keepalive_idle_then_close(&srv, true);
	scenario("c");
	pool_followups(&srv);
	scenario("d");
	pool_load(&srv);
}
