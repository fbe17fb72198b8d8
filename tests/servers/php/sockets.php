<?php
// GET /sockets.php?id=ID&n=N: slow.php's N upstream calls, made through
// ext/sockets (socket_connect, socket_write, socket_read): a shared extension
// PHP loads with dlopen(RTLD_DEEPBIND), so its libc calls bind to libc, not
// to a preloaded library, unless the preloaded library rebinds them. Same
// events as slow.php. Nothing here knows about cancelshim.
require __DIR__ . '/common.inc';
upstream_calls(function ($port, $i) use ($id) {
	$s = socket_create(AF_INET, SOCK_STREAM, SOL_TCP);
	$answer = false;
	if (@socket_connect($s, '127.0.0.1', $port) && @socket_write($s, "$id $i\n") !== false)
		$answer = @socket_read($s, 256, PHP_NORMAL_READ);
	$err = socket_strerror(socket_last_error($s));
	socket_close($s);
	return [$answer === '' ? false : $answer, $err];
});
