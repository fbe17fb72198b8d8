<?php
// GET /slow.php?id=ID&n=N: N calls to the slow upstream (127.0.0.1:$UPSTREAM_PORT,
// one line out, one line back, ~100 ms each), then the N answers. A failed
// call is logged and ends the script, as careful PHP code does. Events go to
// the file $EVENTS, one line each (t = hrtime = CLOCK_MONOTONIC ns). Nothing
// here knows about cancelshim.
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
	$s = @stream_socket_client("tcp://127.0.0.1:$port", $errno, $errstr, 10);
	$answer = false;
	if ($s !== false) {
		fwrite($s, "$id $i\n");
		$answer = @fgets($s);
		$err = error_get_last()['message'] ?? '';
		fclose($s);
	} else {
		$err = "connect: $errstr";
	}
	if ($answer === false) {
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
