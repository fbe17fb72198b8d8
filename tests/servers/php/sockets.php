<?php
// GET /sockets.php?id=ID&n=N: slow.php's N upstream calls, made through
// ext/sockets (socket_connect, socket_write, socket_read): a shared extension
// PHP loads with dlopen(RTLD_DEEPBIND), so its libc calls bind to libc, not
// to a preloaded library, unless the preloaded library rebinds them. Same
// events as slow.php. Nothing here knows about cancelshim.
$events = $_SERVER['EVENTS'];
$port = (int)$_SERVER['UPSTREAM_PORT'];
$id = $_GET['id'] ?? 'x';
$n = (int)($_GET['n'] ?? 20);
function say($line) {
	global $events;
	file_put_contents($events, $line . ' pid=' . getmypid() . "\n", FILE_APPEND);
}
$body = '';
for ($i = 1; $i <= $n; $i++) {
	$s = socket_create(AF_INET, SOCK_STREAM, SOL_TCP);
	$answer = false;
	if (@socket_connect($s, '127.0.0.1', $port) && @socket_write($s, "$id $i\n") !== false)
		$answer = @socket_read($s, 256, PHP_NORMAL_READ);
	$err = socket_strerror(socket_last_error($s));
	socket_close($s);
	if ($answer === false || $answer === '') {
		say("error id=$id i=$i t=" . hrtime(true) . " why=" . str_replace(' ', '_', $err));
		http_response_code(502);
		exit;
	}
	$body .= $answer;
	say("call id=$id i=$i t=" . hrtime(true));
}
header('Content-Type: text/plain');
header('Content-Length: ' . strlen($body));
echo $body;
say("done id=$id t=" . hrtime(true));
