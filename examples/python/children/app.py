"""The seed's parent and children, in Python."""

import mtask


@mtask.entry
def main(_arg):
    print(mtask.call("return_none"))
    print(mtask.call("return_one"))
    print(tuple(mtask.call("return_many")))
    try:
        mtask.call("raise_exception")
    except mtask.TaskFailed as e:
        print(f"caught exception: {e.message}")


@mtask.entry
def return_none(_arg):
    mtask.yield_now()


@mtask.entry
def return_one(_arg):
    mtask.yield_now()
    return 1


@mtask.entry
def return_many(_arg):
    mtask.yield_now()
    return (2, 3)


@mtask.entry
def raise_exception(_arg):
    mtask.yield_now()
    raise RuntimeError("foo")


WitWorld = mtask.WitWorld
