// A static-file HTTP server on Node's http module, for the servers suite.
//
//     node static_http.js DIR
//
// Serves the files of DIR (read once at start) on 127.0.0.1:<any port> and
// prints "listening port=P". One thread runs the event loop; nothing in it
// knows about cancelshim.
'use strict';
const fs = require('fs');
const http = require('http');
const path = require('path');

const dir = process.argv[2];
const files = {};
for (const name of fs.readdirSync(dir))
	files['/' + name] = fs.readFileSync(path.join(dir, name));

const server = http.createServer((req, res) => {
	const body = files[req.url.split('?')[0]];
	if (!body) {
		res.writeHead(404, { 'Content-Length': 0 });
		res.end();
		return;
	}
	res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': body.length });
	res.end(body);
});
server.keepAliveTimeout = 30000;
server.listen(0, '127.0.0.1', () => {
	console.log(`listening port=${server.address().port}`);
});
