<?php
// GET /pgsql.php?id=ID&s=S&port=P: one query, select pg_sleep(S), through
// PDO's pgsql driver (pdo_pgsql.so and libpq, loaded with
// dlopen(RTLD_DEEPBIND)) on PostgreSQL at 127.0.0.1:P. Events as slow.php's.
// Nothing here knows about cancelshim.
require __DIR__ . '/common.inc';
$s = (float)($_GET['s'] ?? 1);
$port = (int)($_GET['port'] ?? 5432);
try {
	$db = new PDO("pgsql:host=127.0.0.1;port=$port;dbname=postgres", 'postgres', '',
		      [PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION]);
	say("start id=$id t=" . hrtime(true));
	$db->query("select pg_sleep($s) /* $id */");
} catch (PDOException $e) {
	fail('', $e->getMessage());
}
reply("slept $id\n");
