<%@ page contentType="text/plain; charset=UTF-8" trimDirectiveWhitespaces="true" session="false"
    import="java.io.*,java.net.*,java.nio.charset.StandardCharsets" %><%
/* slow.jsp: the protocol of slow_wsgi.py (see there) for Tomcat's tests.
 * GET /slow.jsp?id=ID&n=N[&port=Q]: N calls to the upstream on 127.0.0.1
 * ($SLOW_UPSTREAM_PORT or Q), each "ID I\n" answered by a line; 200 with the
 * N answers. stdout lines: call/error/done id=ID ... t=NS pid=PID (t is
 * System.nanoTime(), CLOCK_MONOTONIC on Linux). Java gives no errno: an
 * IOException saying "Operation canceled" is logged as errno=125. */
String ident = request.getParameter("id") != null ? request.getParameter("id") : "x";
int n = Integer.parseInt(request.getParameter("n") != null ? request.getParameter("n") : "20");
String portArg = request.getParameter("port");
int port = Integer.parseInt(portArg != null ? portArg : System.getenv("SLOW_UPSTREAM_PORT"));
long pid = ProcessHandle.current().pid();
StringBuilder body = new StringBuilder();
int i = 0;
try {
    for (i = 1; i <= n; i++) {
        try (Socket s = new Socket("127.0.0.1", port)) {
            s.getOutputStream().write((ident + " " + i + "\n").getBytes(StandardCharsets.UTF_8));
            BufferedReader r = new BufferedReader(
                new InputStreamReader(s.getInputStream(), StandardCharsets.UTF_8));
            String line = r.readLine();
            if (line == null)
                throw new IOException("upstream closed");
            body.append(line).append('\n');
        }
        System.out.println("call id=" + ident + " i=" + i + " t=" + System.nanoTime() + " pid=" + pid);
    }
} catch (IOException e) {
    String msg = String.valueOf(e.getMessage());
    int errno = msg.contains("Operation canceled") ? 125 : -1;
    System.out.println("error id=" + ident + " i=" + i + " errno=" + errno + " t=" + System.nanoTime()
                       + " pid=" + pid + " msg=" + msg.replace(' ', '_'));
    throw e;
}
System.out.println("done id=" + ident + " t=" + System.nanoTime() + " pid=" + pid);
String text = body.toString();
response.setContentLength(text.getBytes(StandardCharsets.UTF_8).length);
out.write(text);
%>
