"""The Python SDK's calls, each entry printing what it observed: queues
(FIFO, timeouts naming the call, tags, handed to a child, closed), cancel,
and join with a timeout."""

import mtask


@mtask.entry
def queues(_arg):
    q = mtask.Queue([1, 2], maxsize=2)
    try:
        q.put(3, timeout=0.01)
    except mtask.Timeout as e:
        print(f"full: {e.message} (call {e.call})")
    print("got", q.get(), q.get(), "left", len(q))
    try:
        q.get(timeout=0.01)
    except mtask.Timeout as e:
        print(f"empty: {e.message}")
    q.put("b", tag=2)
    q.put("a", tag=1)
    print("tagged", q.get_tagged([1]), q.get_tagged([2]))
    child = mtask.spawn("taker", None, [q.clone()])
    q.put({"from": "parent"})
    print("child took", child.join())
    q.put("last")
    q.close()
    try:
        q.put("more")
    except mtask.Closed:
        print("put after close: closed")
    print("get after close:", q.get())
    try:
        q.get()
    except mtask.Closed as e:
        print(f"drained: {e.kind}")


@mtask.entry
def taker(_arg):
    (q,) = mtask.take_handles()
    return q.get()


@mtask.entry
def cancel(_arg):
    sleeper = mtask.spawn("sleeper", 10)
    mtask.yield_now()
    sleeper.cancel()
    try:
        sleeper.join()
    except mtask.TaskFailed as e:
        print(f"cancelled: {e.kind} ({e})")


@mtask.entry
def join_timeout(_arg):
    sleeper = mtask.spawn("sleeper", 0.1)
    try:
        sleeper.join(timeout=0.01)
    except mtask.Timeout as e:
        print(f"not yet: {e.message}")
    print("then:", sleeper.join())


@mtask.entry
def watch(_arg):
    failing = mtask.spawn("fails", "on purpose")
    watch = mtask.monitor(failing.id)
    try:
        watch.wait(timeout=0.001)
    except mtask.Timeout as e:
        print(f"early: {e.message}")
    ended = watch.wait()
    print(f"monitor: {ended.kind}: {ended.message}")
    try:
        failing.join()
    except mtask.TaskFailed as e:
        print(f"join still sees it: {e.kind}")
    fine = mtask.spawn("sleeper", 0.01)
    print("a success:", mtask.monitor(fine.id).wait(), fine.join())
    try:
        mtask.monitor(mtask.current_id())
    except mtask.MtaskError as e:
        print(f"itself: {e.kind}")
    again = mtask.spawn("fails", "again")
    linked = mtask.spawn("linked", again.id)
    try:
        linked.join()
    except mtask.TaskFailed as e:
        print(f"linked: {e.kind}")
    try:
        again.join()
    except mtask.TaskFailed as e:
        print(f"its failure still joined: {e.kind}")
    parent = mtask.spawn("tree", None)
    grandchild = mtask.monitor(mtask.Queue.open("tree-ids", 1).get())
    parent.cancel_tree()
    print(f"cancel_tree: its child {grandchild.wait().kind}")


@mtask.entry
def fails(why: str):
    mtask.sleep(0.01)
    raise ValueError(why)


@mtask.entry
def linked(task_id: int):
    mtask.link(task_id)
    mtask.sleep(10)


@mtask.entry
def tree(_arg):
    child = mtask.spawn("sleeper", 10)
    mtask.Queue.open("tree-ids", 1).put(child.id)
    mtask.sleep(10)


@mtask.entry
def sleeper(seconds: float) -> str:
    mtask.sleep(seconds)
    return f"slept {seconds} s"


WitWorld = mtask.WitWorld
