<?php
// GET /curl.php?id=ID&n=N: slow.php's N upstream calls, made with ext/curl
// (libcurl: its own connect, poll, recv), as HTTP GETs of /call/ID/I. curl.so
// and libcurl are loaded with dlopen(RTLD_DEEPBIND). Same events as
// slow.php. Nothing here knows about cancelshim.
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
	$c = curl_init("http://127.0.0.1:$port/call/$id/$i");
	curl_setopt($c, CURLOPT_RETURNTRANSFER, true);
	curl_setopt($c, CURLOPT_TIMEOUT, 10);
	$answer = curl_exec($c);
	$err = curl_error($c);
	curl_close($c);
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
