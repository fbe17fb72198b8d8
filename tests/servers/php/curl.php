<?php
// GET /curl.php?id=ID&n=N: slow.php's N upstream calls, made with ext/curl
// (libcurl: its own connect, poll, recv), as HTTP GETs of /call/ID/I. curl.so
// and libcurl are loaded with dlopen(RTLD_DEEPBIND). Same events as
// slow.php. Nothing here knows about cancelshim.
require __DIR__ . '/common.inc';
upstream_calls(function ($port, $i) use ($id) {
	$c = curl_init("http://127.0.0.1:$port/call/$id/$i");
	curl_setopt($c, CURLOPT_RETURNTRANSFER, true);
	curl_setopt($c, CURLOPT_TIMEOUT, 10);
	$answer = curl_exec($c);
	$err = curl_error($c);
	curl_close($c);
	return [$answer, $err];
});
