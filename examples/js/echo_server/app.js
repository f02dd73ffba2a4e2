// The seed's echo server, in JavaScript: a listener task and one
// client_handler task per connection.
//
//     mtask-host run --listen 127.0.0.1:7878 echo_server.wasm -- ADDRESS [COUNT]

import { TcpListener, args, entry, spawn, takeHandles } from './mtask.js';
export { entries, entryTypes, run, runJson } from './mtask.js';

entry(function main() {
  const [, address = '127.0.0.1:7878', count] = args();
  const listener = TcpListener.bind(address);
  console.log(`listening on ${listener.localAddress()}`);
  const handlers = [];
  while (count === undefined || handlers.length < Number(count)) {
    const [conn] = listener.accept();
    handlers.push(spawn('client_handler', null, [conn]));
  }
  for (const handler of handlers) handler.join();
  console.log(`served ${handlers.length} connections`);
});

entry(function client_handler() {
  const [conn] = takeHandles();
  for (;;) {
    const request = conn.recv(1024);
    if (request.length === 0) break;
    conn.sendAll(request);
  }
});
