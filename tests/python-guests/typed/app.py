"""Typed entries in Python: each spawn below means a type other than its
entry's annotation and prints the error; the last ones match. An entry
that returns a value of the wrong type fails; `--entry square --arg 7`
runs one entry with a JSON argument."""

from typing import Optional

import mtask


def report(what, thunk):
    try:
        print(f"{what}: {thunk()}")
    except (mtask.MtaskError, mtask.TaskFailed) as error:
        print(f"{what}: {error}")


@mtask.entry
def main(_arg):
    report("text to square", lambda: mtask.call("square", "hello"))
    report("square as text", lambda: mtask.call("square", 5, returns=str))
    report("bool to square", lambda: mtask.call("square", True))
    report("no such entry", lambda: mtask.call("cube", 5))
    report("list of text to total", lambda: mtask.call("total", [1, "2"]))
    report("wrong result", lambda: mtask.call("liar", 1))
    report("square 7", lambda: mtask.call("square", 7, returns=int))
    report("total", lambda: mtask.call("total", [1, 2, 3]))
    report("maybe", lambda: mtask.call("maybe", None))
    report("untyped", lambda: mtask.call("untyped", {"any": "thing"}))


@mtask.entry
def square(n: int) -> int:
    return n * n


@mtask.entry
def total(numbers: list[int]) -> int:
    return sum(numbers)


@mtask.entry
def maybe(n: Optional[int]) -> str:
    return "nothing" if n is None else str(n)


@mtask.entry
def liar(n: int) -> int:
    return str(n)


@mtask.entry
def untyped(arg):
    return sorted(arg)


WitWorld = mtask.WitWorld
