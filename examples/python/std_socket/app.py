"""Python's own `socket` and `time.sleep` under mtask: an echo server on
the standard library's sockets, beside a task that ticks with time.sleep.
A blocking call suspends only the task that makes it.

    mtask-host run --listen 127.0.0.1:* std_socket.wasm -- ADDRESS [COUNT]
"""

import socket
import sys
import time

import mtask


@mtask.entry
def main(_arg):
    host, port = (sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:7878").rsplit(":", 1)
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    ticker = mtask.spawn("ticker", 25)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind((host, int(port)))
        server.listen()
        print("listening on %s:%d" % server.getsockname(), flush=True)
        for _ in range(count):
            conn, _peer = server.accept()
            with conn:
                data = b""
                while chunk := conn.recv(1024):
                    data += chunk
                conn.sendall(data)
    print(f"echoed {count} connections")
    ticks, late = ticker.join()
    print(f"ticker: {ticks} ticks, at most {late} ms late")


@mtask.entry
def ticker(ticks):
    """Sleeps `ticks` times 20 ms; gives how many and its latest wake-up's lateness."""
    start = time.monotonic()
    late = 0.0
    for i in range(1, ticks + 1):
        time.sleep(0.02)
        late = max(late, time.monotonic() - start - 0.02 * i)
    return [ticks, round(late * 1000)]


WitWorld = mtask.WitWorld
