"""mtask for Python: tasks that yield to the mtask host, in multitask's spirit.

A task is plain blocking code. Every call here that waits (`sleep`,
`Task.join`, `Queue.get`, `TcpStream.recv`, ...) suspends only the calling
task; the host runs the others meanwhile. Calls that take a `timeout` (in
seconds) raise `Timeout` when it passes, having had no effect.

Write entries with the `@entry` decorator, and expose `WitWorld` from your
app module (`from mtask import WitWorld`), then build with componentize-py
against mtask's WIT (see the README):

    import mtask

    @mtask.entry
    def main(arg):
        print(mtask.call("square", 7))

    @mtask.entry
    def square(n):
        mtask.sleep(0.001)
        return n * n

    WitWorld = mtask.WitWorld

Arguments and results travel as JSON.
"""

import inspect
import json
import sys
import traceback
import types
import typing

import wit_world
from componentize_py_types import Err
from wit_world.imports import net as _net
from wit_world.imports import queues as _queues
from wit_world.imports import tasks as _tasks
from wit_world.imports import types as _types


# Each line reaches the host's stdout whole and in order, as a task prints
# it, rather than when a buffer happens to fill. The runtime starts stdio
# unbuffered (write-through), so `print` would write the text and its
# newline separately, and a preempted task could split a line.
for _stream in (sys.stdout, sys.stderr):
    try:
        _stream.reconfigure(line_buffering=True, write_through=False)
    except (AttributeError, ValueError):
        pass


class MtaskError(Exception):
    """A host call failed; `kind` is the WIT error case (`denied`, `io`, ...)."""

    def __init__(self, kind, message=""):
        super().__init__(f"{kind}: {message}" if message else kind)
        self.kind = kind
        self.message = message


class Timeout(MtaskError):
    """The call's deadline passed; it had no effect. `call` names it
    (`Queue.get`), `after` is the timeout it was given (seconds)."""

    def __init__(self, call=None, after=None):
        super().__init__("timeout", f"{call} timed out after {after:g} s" if call else "")
        self.call = call
        self.after = after


class Closed(MtaskError):
    """The queue or connection is closed."""

    def __init__(self):
        super().__init__("closed")


class TaskFailed(Exception):
    """A child task ended without a value: `kind` is failed, trapped,
    cancelled or limit; `message` says why (one line) and `details` adds
    what followed it (a traceback, a wasm backtrace)."""

    def __init__(self, entry, kind, details):
        self.entry = entry
        self.kind = kind
        self.details = details
        self.message = details.splitlines()[0] if details else ""
        super().__init__(f"task `{entry}` {kind}: {self.message}" if details else f"task `{entry}` {kind}")


def _raise(err):
    """Turns a WIT `error` into the matching exception."""
    value = err.value
    if isinstance(value, _types.Error_Timeout):
        raise Timeout() from None
    if isinstance(value, _types.Error_Closed):
        raise Closed() from None
    kind = type(value).__name__.removeprefix("Error_").lower()
    raise MtaskError(kind, getattr(value, "value", "")) from None


def _call(function, *args):
    try:
        return function(*args)
    except Err as err:
        _raise(err)


def _timed(call, timeout, function, *args):
    """`function(*args, nanos)` for the call named `call`, given `timeout`
    (seconds): a timeout raises `Timeout` naming the call."""
    try:
        return function(*args, _nanos(timeout))
    except Err as err:
        if isinstance(err.value, _types.Error_Timeout):
            raise Timeout(call, timeout) from None
        _raise(err)


def _nanos(seconds):
    return None if seconds is None else max(0, int(seconds * 1e9))


# Scheduling -----------------------------------------------------------------


def yield_now():
    """Lets every other runnable task run once."""
    _tasks.yield_now()


def sleep(seconds):
    """Suspends this task for at least `seconds`."""
    _tasks.sleep(_nanos(seconds))


def current_id():
    """This task's id."""
    return _tasks.current_id()


class Task:
    """A child task. Dropping it detaches the child. With `returns`, its
    join checks that the value is of that type."""

    def __init__(self, handle, entry, returns=None):
        self._handle = handle
        self.entry = entry
        self.returns = returns

    @property
    def id(self):
        return self._handle.id()

    def join(self, timeout=None):
        """Waits for the child's value; raises `TaskFailed` if it failed,
        `Timeout` if it has not ended by then (it runs on)."""
        result = _timed("Task.join", timeout, self._handle.join)
        if isinstance(result, Err):
            raise _task_failed(self.entry, result.value)
        payload = result.value if hasattr(result, "value") else result
        value = json.loads(payload) if payload else None
        if self.returns is not None and not _conforms(value, self.returns):
            raise MtaskError(
                "invalid",
                f"entry `{self.entry}` returned {type(value).__name__}, "
                f"not {_type_name(self.returns)}",
            )
        return value

    def cancel(self):
        """Ends the child if it has not ended. The tasks it started run on
        (detached); `cancel_tree` ends them too."""
        self._handle.cancel()

    def cancel_tree(self):
        """Like `cancel`, and ends every task the child started that has not
        ended, and every task those started, down the tree."""
        self._handle.cancel_tree()


def _task_failed(entry, error):
    """The `TaskFailed` of a WIT `task-error`."""
    kind = type(error).__name__.removeprefix("TaskError_").lower()
    return TaskFailed(entry, kind, getattr(error, "value", ""))


class TaskMonitor:
    """A watch on another task's end, from `monitor`. Dropping it stops
    the watch."""

    def __init__(self, handle):
        self._handle = handle

    @property
    def id(self):
        """The watched task's id."""
        return self._handle.id()

    def wait(self, timeout=None):
        """Waits until the task has ended and says how: `None` if its entry
        returned a value (which goes to whoever joins it), else a
        `TaskFailed` (returned, not raised) saying how it failed. Can be
        asked again. Raises `Timeout` if it has not ended by then (the
        watch goes on)."""
        result = _timed("TaskMonitor.wait", timeout, self._handle.wait)
        if isinstance(result, Err):
            return _task_failed(f"#{self.id}", result.value)
        return None


def monitor(task_id):
    """Watches the task `task_id` of this app: one that runs, or one that
    ended whose result nobody has taken yet. Raises `MtaskError("invalid")`
    if the app has no such task now, or it is this task."""
    return TaskMonitor(_call(_tasks.monitor, task_id))


def link(task_id):
    """Links this task to the task `task_id` of this app: if that one fails
    (cancelled included), this one is cancelled. One way; linking to a
    task that failed already cancels this one at its next wait. Raises
    `MtaskError("invalid")` as `monitor` does."""
    _call(_tasks.link, task_id)


def spawn(entry, arg=None, handles=(), returns=None):
    """Starts a child task running `entry(arg)`; `handles` (queues, sockets,
    tasks) move to it, and it gets them from `take_handles()`.

    Raises `MtaskError("invalid")`, spawning nothing, if `arg` is not of
    the type the entry's annotation gives, or if `returns` (the type the
    caller wants back) is not the entry's result type."""
    _check_spawn(entry, arg, returns)
    wit_handles = [h._to_wit() for h in handles]
    task = _call(_tasks.spawn, entry, json.dumps(arg).encode(), wit_handles)
    return Task(task, entry, returns)


def spawn_anywhere(entry, arg=None, handles=(), returns=None):
    """Like `spawn`, for a child that may run on any host of the cluster
    that runs this same component (on this host outside a cluster). It
    runs at least once: again from its entry if its host dies (see
    `spawn_key`); only queues opened by name can be handed to it."""
    _check_spawn(entry, arg, returns)
    wit_handles = [h._to_wit() for h in handles]
    payload = json.dumps(arg).encode()
    anywhere = _tasks.Placement.ANYWHERE
    return Task(_call(_tasks.spawn_at, entry, payload, wit_handles, anywhere), entry, returns)


def spawn_key():
    """The key of the remote spawn that started this task (the same each
    time it runs), or None if it was not placed anywhere in a cluster."""
    return _tasks.spawn_key()


def call(entry, arg=None, timeout=None, returns=None):
    """Runs `entry(arg)` as a child task and returns its value: multitask's
    `yield child()`. Types are checked as `spawn` does."""
    return spawn(entry, arg, returns=returns).join(timeout)


def take_handles():
    """The handles the parent gave this task at spawn."""
    out = []
    for handle in _tasks.take_handles():
        if isinstance(handle, _tasks.Handle_Queue):
            out.append(Queue(_wit=handle.value))
        elif isinstance(handle, _tasks.Handle_TcpStream):
            out.append(TcpStream(handle.value))
        elif isinstance(handle, _tasks.Handle_TcpListener):
            out.append(TcpListener(handle.value))
        elif isinstance(handle, _tasks.Handle_UdpSocket):
            out.append(UdpSocket(handle.value))
        elif isinstance(handle, _tasks.Handle_Task):
            out.append(Task(handle.value, handle.value.entry()))
    return out


# Queues -----------------------------------------------------------------------


class Queue:
    """A FIFO queue of JSON values: multitask's `Queue(contents, maxsize)`."""

    def __init__(self, items=(), maxsize=0, _wit=None):
        if _wit is None:
            initial = [_queues.Item(tag=None, data=json.dumps(i).encode()) for i in items]
            _wit = _call(_queues.Queue.create, maxsize, initial)
        self._q = _wit

    @classmethod
    def open(cls, name, maxsize=0):
        """The named queue that every task of this app shares."""
        return cls(_wit=_call(_queues.Queue.open, name, maxsize))

    def put(self, item, timeout=None, tag=None):
        _timed("Queue.put", timeout, self._q.put, _queues.Item(tag=tag, data=json.dumps(item).encode()))

    def get(self, timeout=None):
        return json.loads(_timed("Queue.get", timeout, self._q.get).data)

    def get_tagged(self, tags, timeout=None):
        """The first item tagged with one of `tags`, as (tag, item)."""
        item = _timed("Queue.get_tagged", timeout, self._q.get_tagged, list(tags))
        return item.tag, json.loads(item.data)

    def __len__(self):
        return self._q.len()

    def close(self):
        self._q.close()

    def clone(self):
        """Another handle on the same queue (to give to a child)."""
        return Queue(_wit=self._q.clone())

    def _to_wit(self):
        return _tasks.Handle_Queue(self._q)


# Sockets ----------------------------------------------------------------------


class TcpListener:
    def __init__(self, wit):
        self._l = wit

    @classmethod
    def bind(cls, address, backlog=128):
        return cls(_call(_net.TcpListener.bind, address, backlog))

    def accept(self, timeout=None):
        """Waits for a connection: (TcpStream, peer address)."""
        stream, peer = _timed("TcpListener.accept", timeout, self._l.accept)
        return TcpStream(stream), peer

    def local_address(self):
        return _call(self._l.local_address)

    def _to_wit(self):
        return _tasks.Handle_TcpListener(self._l)


class TcpStream:
    def __init__(self, wit):
        self._s = wit

    @classmethod
    def connect(cls, address, timeout=None):
        return cls(_timed("TcpStream.connect", timeout, _net.TcpStream.connect, address))

    def recv(self, max_bytes, timeout=None):
        """At most `max_bytes`; b"" when the peer closed."""
        return _timed("TcpStream.recv", timeout, self._s.recv, max_bytes)

    def send(self, data, timeout=None):
        return _timed("TcpStream.send", timeout, self._s.send, bytes(data))

    def send_all(self, data, timeout=None):
        _timed("TcpStream.send_all", timeout, self._s.send_all, bytes(data))

    def close(self):
        self._s.__exit__(None, None, None)

    def _to_wit(self):
        return _tasks.Handle_TcpStream(self._s)


class UdpSocket:
    """A UDP socket: datagrams, each whole or not at all."""

    def __init__(self, wit):
        self._u = wit

    @classmethod
    def bind(cls, address):
        """Binds to `address` (port 0: any free port)."""
        return cls(_call(_net.UdpSocket.bind, address))

    def recv_from(self, max_bytes, timeout=None):
        """Waits for a datagram: (at most `max_bytes` of it, sender)."""
        data, sender = _timed("UdpSocket.recv_from", timeout, self._u.recv_from, max_bytes)
        return bytes(data), sender

    def send_to(self, data, address, timeout=None):
        """Sends `data` as one datagram to `address`."""
        return _timed("UdpSocket.send_to", timeout, self._u.send_to, bytes(data), address)

    def connect(self, address):
        """Fixes the peer for `send` and `recv`."""
        _call(self._u.connect, address)

    def send(self, data, timeout=None):
        return _timed("UdpSocket.send", timeout, self._u.send, bytes(data))

    def recv(self, max_bytes, timeout=None):
        return bytes(_timed("UdpSocket.recv", timeout, self._u.recv, max_bytes))

    def local_address(self):
        return _call(self._u.local_address)

    def close(self):
        self._u.__exit__(None, None, None)

    def _to_wit(self):
        return _tasks.Handle_UdpSocket(self._u)


# Entries ----------------------------------------------------------------------
#
# Every task is an instance of the same app, so each one has the whole table
# of entries: a spawn checks its argument against the entry's annotation
# before asking the host, and the entry checks it again, and its result,
# when it runs. A check refuses a value that JSON could carry but that the
# entry does not take (`"hello"` for `n: int`), naming both types.

_ENTRIES = {}


def entry(function):
    """Registers `function(arg)` as an entry the host may run as a task.

    Annotations, if given, are its types: `def square(n: int) -> int`. A
    spawn whose argument is not of the argument's type, or whose
    `returns=` differs from the result's, raises `MtaskError("invalid")`
    naming both; a result not of its type fails the task."""
    _ENTRIES[function.__name__] = _Entry(function)
    return function


class _Entry:
    """An entry and the types its annotations give (`_ANY` if none)."""

    def __init__(self, function):
        self.function = function
        try:
            hints = typing.get_type_hints(function)
        except Exception:  # an annotation that names nothing importable
            hints = {}
        params = list(inspect.signature(function).parameters)
        self.arg = hints.get(params[0], _ANY) if params else type(None)
        self.result = hints.get("return", _ANY)


_ANY = typing.Any


def _type_name(tp):
    """How a type is written in messages and `entry-types`; "" for any."""
    if tp is _ANY:
        return ""
    if tp is None or tp is type(None):
        return "None"
    if typing.get_origin(tp) is not None or not isinstance(tp, type):
        return repr(tp).replace("typing.", "")
    return tp.__name__


def _conforms(value, tp):
    """Whether the JSON value `value` is of type `tp`."""
    if tp is _ANY or tp is object:
        return True
    if tp is None or tp is type(None):
        return value is None
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, t) for t in args)
    if origin is typing.Literal:
        return value in args
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(map(_conforms, value, args))
        return not args or all(_conforms(v, args[0]) for v in value)
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            return False
        return not args or all(
            _conforms(k, args[0]) and _conforms(v, args[1]) for k, v in value.items()
        )
    if isinstance(tp, type):
        return isinstance(value, tp)
    return True  # a type this check does not know: JSON decides


def _check_arg(name, arg):
    """The entry `name`, if `arg` is of its argument's type; else `invalid`."""
    found = _ENTRIES.get(name)
    if found is None:
        raise MtaskError(
            "invalid",
            f"no entry named `{name}`: the entries are {', '.join(_ENTRIES)} "
            "(a function becomes one with `@mtask.entry`)",
        )
    if not _conforms(arg, found.arg):
        raise MtaskError(
            "invalid",
            f"entry `{name}` takes {_type_name(found.arg)}, not {type(arg).__name__} ({arg!r})",
        )
    return found


def _check_spawn(name, arg, returns):
    found = _check_arg(name, arg)
    if returns is not None and found.result is not _ANY:
        if _type_name(returns) != _type_name(found.result):
            raise MtaskError(
                "invalid",
                f"entry `{name}` returns {_type_name(found.result)}, not {_type_name(returns)}",
            )


def _run_entry(name, arg):
    """Runs entry `name` with the decoded `arg`; its result, or `Err`."""
    try:
        found = _check_arg(name, arg)
    except MtaskError as error:
        raise Err(error.message)
    try:
        result = found.function(arg)
    except (TaskFailed, MtaskError) as error:
        raise Err(str(error))
    except Exception as error:  # an uncaught exception fails the task, as in multitask
        raise Err(f"{error}\n{traceback.format_exc().rstrip()}")
    if not _conforms(result, found.result):
        raise Err(
            f"entry `{name}` returned {type(result).__name__} ({result!r}), "
            f"not {_type_name(found.result)} as it declares"
        )
    return json.dumps(result)


class WitWorld(wit_world.WitWorld):
    """The component's exports: bind it in your app as `WitWorld`."""

    def entries(self):
        return list(_ENTRIES)

    def entry_types(self):
        return [
            _types.EntryType(name, _type_name(e.arg), _type_name(e.result))
            for name, e in _ENTRIES.items()
        ]

    def run(self, name, payload):
        return _run_entry(name, json.loads(payload) if payload else None).encode()

    def run_json(self, name, arg):
        return _run_entry(name, json.loads(arg))
