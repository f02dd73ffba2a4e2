"""A UDP echo server, in Python: sends each datagram back to its sender.

    mtask-host run --listen 127.0.0.1:7879 udp_echo.wasm -- ADDRESS [COUNT]
"""

import sys

import mtask


@mtask.entry
def main(_arg):
    address = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:7879"
    count = int(sys.argv[2]) if len(sys.argv) > 2 else None
    socket = mtask.UdpSocket.bind(address)
    print(f"listening on {socket.local_address()}")
    echoed = 0
    while count is None or echoed < count:
        data, sender = socket.recv_from(65536)
        socket.send_to(data, sender)
        echoed += 1
    print(f"echoed {echoed} datagrams")


WitWorld = mtask.WitWorld
