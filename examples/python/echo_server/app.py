"""The seed's echo server, in Python: a listener task and one
client_handler task per connection.

    mtask-host run --listen 127.0.0.1:7878 echo_server.wasm -- ADDRESS [COUNT]
"""

import sys

import mtask


@mtask.entry
def main(_arg):
    address = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:7878"
    count = int(sys.argv[2]) if len(sys.argv) > 2 else None
    listener = mtask.TcpListener.bind(address)
    print(f"listening on {listener.local_address()}", flush=True)
    handlers = []
    while count is None or len(handlers) < count:
        conn, _peer = listener.accept()
        handlers.append(mtask.spawn("client_handler", None, [conn]))
    for handler in handlers:
        handler.join()
    print(f"served {len(handlers)} connections")


@mtask.entry
def client_handler(_arg):
    (conn,) = mtask.take_handles()
    while True:
        request = conn.recv(1024)
        if not request:
            break
        conn.send_all(request)


WitWorld = mtask.WitWorld
