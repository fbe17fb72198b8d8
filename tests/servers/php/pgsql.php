<?php
// GET /pgsql.php?id=ID&s=S&port=P: one query, select pg_sleep(S), through
// PDO's pgsql driver (pdo_pgsql.so and libpq, loaded with
// dlopen(RTLD_DEEPBIND)) on PostgreSQL at 127.0.0.1:P. Events as slow.php's.
// Nothing here knows about cancelshim.
$events = $_SERVER['EVENTS'];
$id = $_GET['id'] ?? 'x';
$s = (float)($_GET['s'] ?? 1);
$port = (int)($_GET['port'] ?? 5432);
function say($line) {
	global $events;
	file_put_contents($events, $line . ' pid=' . getmypid() . "\n", FILE_APPEND);
}
try {
	$db = new PDO("pgsql:host=127.0.0.1;port=$port;dbname=postgres", 'postgres', '',
		      [PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION]);
	say("start id=$id t=" . hrtime(true));
	$db->query("select pg_sleep($s) /* $id */");
} catch (PDOException $e) {
	say("error id=$id t=" . hrtime(true) . " why=" . str_replace([' ', "\n"], '_', $e->getMessage()));
	http_response_code(502);
	exit;
}
$body = "slept $id\n";
header('Content-Type: text/plain');
header('Content-Length: ' . strlen($body));
echo $body;
say("done id=$id t=" . hrtime(true));
