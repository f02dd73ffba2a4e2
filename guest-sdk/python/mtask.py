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

import json
import sys
import traceback

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
    """The call's deadline passed; it had no effect."""

    def __init__(self):
        super().__init__("timeout")


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
    """A child task. Dropping it detaches the child."""

    def __init__(self, handle, entry):
        self._handle = handle
        self.entry = entry

    @property
    def id(self):
        return self._handle.id()

    def join(self, timeout=None):
        """Waits for the child's value; raises `TaskFailed` if it failed,
        `Timeout` if it has not ended by then (it runs on)."""
        result = _call(self._handle.join, _nanos(timeout))
        if isinstance(result, Err):
            error = result.value
            kind = type(error).__name__.removeprefix("TaskError_").lower()
            raise TaskFailed(self.entry, kind, getattr(error, "value", ""))
        payload = result.value if hasattr(result, "value") else result
        return json.loads(payload) if payload else None

    def cancel(self):
        """Ends the child if it has not ended."""
        self._handle.cancel()


def spawn(entry, arg=None, handles=()):
    """Starts a child task running `entry(arg)`; `handles` (queues, sockets,
    tasks) move to it, and it gets them from `take_handles()`."""
    wit_handles = [h._to_wit() for h in handles]
    return Task(_call(_tasks.spawn, entry, json.dumps(arg).encode(), wit_handles), entry)


def spawn_anywhere(entry, arg=None, handles=()):
    """Like `spawn`, for a child that may run on any host of the cluster
    that runs this same component (on this host outside a cluster). It
    runs at least once: again from its entry if its host dies (see
    `spawn_key`); only queues opened by name can be handed to it."""
    wit_handles = [h._to_wit() for h in handles]
    payload = json.dumps(arg).encode()
    anywhere = _tasks.Placement.ANYWHERE
    return Task(_call(_tasks.spawn_at, entry, payload, wit_handles, anywhere), entry)


def spawn_key():
    """The key of the remote spawn that started this task (the same each
    time it runs), or None if it was not placed anywhere in a cluster."""
    return _tasks.spawn_key()


def call(entry, arg=None, timeout=None):
    """Runs `entry(arg)` as a child task and returns its value: multitask's
    `yield child()`."""
    return spawn(entry, arg).join(timeout)


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
            out.append(Task(handle.value, "(handed over)"))
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
        _call(self._q.put, _queues.Item(tag=tag, data=json.dumps(item).encode()), _nanos(timeout))

    def get(self, timeout=None):
        return json.loads(_call(self._q.get, _nanos(timeout)).data)

    def get_tagged(self, tags, timeout=None):
        """The first item tagged with one of `tags`, as (tag, item)."""
        item = _call(self._q.get_tagged, list(tags), _nanos(timeout))
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
        stream, peer = _call(self._l.accept, _nanos(timeout))
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
        return cls(_call(_net.TcpStream.connect, address, _nanos(timeout)))

    def recv(self, max_bytes, timeout=None):
        """At most `max_bytes`; b"" when the peer closed."""
        return _call(self._s.recv, max_bytes, _nanos(timeout))

    def send(self, data, timeout=None):
        return _call(self._s.send, bytes(data), _nanos(timeout))

    def send_all(self, data, timeout=None):
        _call(self._s.send_all, bytes(data), _nanos(timeout))

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
        data, sender = _call(self._u.recv_from, max_bytes, _nanos(timeout))
        return bytes(data), sender

    def send_to(self, data, address, timeout=None):
        """Sends `data` as one datagram to `address`."""
        return _call(self._u.send_to, bytes(data), address, _nanos(timeout))

    def connect(self, address):
        """Fixes the peer for `send` and `recv`."""
        _call(self._u.connect, address)

    def send(self, data, timeout=None):
        return _call(self._u.send, bytes(data), _nanos(timeout))

    def recv(self, max_bytes, timeout=None):
        return bytes(_call(self._u.recv, max_bytes, _nanos(timeout)))

    def local_address(self):
        return _call(self._u.local_address)

    def close(self):
        self._u.__exit__(None, None, None)

    def _to_wit(self):
        return _tasks.Handle_UdpSocket(self._u)


# Entries ----------------------------------------------------------------------

_ENTRIES = {}


def entry(function):
    """Registers `function(arg)` as an entry the host may run as a task."""
    _ENTRIES[function.__name__] = function
    return function


class WitWorld(wit_world.WitWorld):
    """The component's exports: bind it in your app as `WitWorld`."""

    def entries(self):
        return list(_ENTRIES)

    def run(self, name, payload):
        function = _ENTRIES.get(name)
        if function is None:
            raise Err(f"no entry named `{name}`")
        arg = json.loads(payload) if payload else None
        try:
            return json.dumps(function(arg)).encode()
        except (TaskFailed, MtaskError) as error:
            raise Err(str(error))
        except Exception as error:  # an uncaught exception fails the task, as in multitask
            raise Err(f"{error}\n{traceback.format_exc().rstrip()}")
