<?php
// GET /sleep.php?id=ID&s=S: sleep(S), then answer. Logs to $EVENTS when it
// starts, when sleep() returns (left = what sleep() returned: the seconds it
// did not sleep when interrupted) and when it finishes.
require __DIR__ . '/common.inc';
$s = (int)($_GET['s'] ?? 20);
say("start id=$id t=" . hrtime(true));
$left = sleep($s);
say("woke id=$id left=$left t=" . hrtime(true));
$body = "slept $id\n";
header('Content-Length: ' . strlen($body));
echo $body;
flush();
say("done id=$id t=" . hrtime(true));
