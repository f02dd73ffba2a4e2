"""The seed's printers, in Python: two tasks that yield to each other."""

import mtask


@mtask.entry
def main(_arg):
    hello = mtask.spawn("printer", ["hello", 3])
    goodbye = mtask.spawn("printer", ["goodbye", 3])
    hello.join()
    goodbye.join()


@mtask.entry
def printer(arg):
    message, times = arg
    for _ in range(times):
        print(message)
        mtask.yield_now()


WitWorld = mtask.WitWorld
