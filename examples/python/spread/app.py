"""Children placed anywhere in a cluster (mtask-host run --cluster URL):
each may run on another host that runs this same component."""

import mtask


@mtask.entry
def main(_arg):
    children = [mtask.spawn_anywhere("square", n) for n in range(1, 5)]
    results = [child.join(timeout=60) for child in children]
    print("squares:", [r["square"] for r in results])
    print("keys:", all(r["key"] for r in results) and "every child has one")
    print("my key:", mtask.spawn_key())


@mtask.entry
def square(n):
    return {"square": n * n, "key": mtask.spawn_key()}


WitWorld = mtask.WitWorld
