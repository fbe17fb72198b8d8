<?php
// GET /slow.php?id=ID&n=N: N calls to the slow upstream (127.0.0.1:$UPSTREAM_PORT,
// one line out, one line back, ~100 ms each), then the N answers. A failed
// call is logged and ends the script, as careful PHP code does. Events go to
// the file $EVENTS, one line each (t = hrtime = CLOCK_MONOTONIC ns). Nothing
// here knows about cancelshim.
require __DIR__ . '/common.inc';
upstream_calls(function ($port, $i) use ($id) {
	$s = @stream_socket_client("tcp://127.0.0.1:$port", $errno, $errstr, 10);
	if ($s === false)
		return [false, "connect: $errstr"];
	fwrite($s, "$id $i\n");
	$answer = @fgets($s);
	$err = error_get_last()['message'] ?? '';
	fclose($s);
	return [$answer, $err];
});
