// mtask for JavaScript: tasks that yield to the mtask host, in multitask's
// spirit. The same shape as the Python SDK (guest-sdk/python/mtask.py).
//
// A task is plain blocking code. Every call here that waits (`sleep`,
// `Task.join`, `Queue.get`, `TcpStream.recv`, ...) suspends only the
// calling task; the host runs the others meanwhile. Calls that take a
// `timeout` (in seconds) throw `Timeout` when it passes, having had no
// effect.
//
// Register entries with `entry` and re-export the component's exports:
//
//     import { entry, call, sleep } from './mtask.js';
//     export { entries, entryTypes, run, runJson } from './mtask.js';
//
//     entry(function main() { console.log(call('square', 7)); });
//     entry(function square(n) { sleep(0.001); return n * n; }, { arg: 'number', result: 'number' });
//
// An entry's types, if given, are checked at every spawn and when it runs
// (see `entry`).
//
// `just js-guests` builds each app in examples/js with componentize-qjs
// (QuickJS) against mtask's WIT plus WASI stdout and stderr (task-js.wit).
// Arguments and results travel as JSON.

import * as tasks from 'mtask:task/tasks@0.1.3';
import * as queues from 'mtask:task/queues@0.1.3';
import * as net from 'mtask:task/net@0.1.3';
import { getStdout } from 'wasi:cli/stdout@0.2.12';
import { getStderr } from 'wasi:cli/stderr@0.2.12';
import { getArguments, getEnvironment } from 'wasi:cli/environment@0.2.12';

/** The program's arguments: its name, then what follows `--` on the
 * mtask-host command line. */
export function args() {
  return getArguments();
}

/** The environment variables granted (`--env`), as an object. */
export function env() {
  return Object.fromEntries(getEnvironment());
}

// Text ----------------------------------------------------------------------

// QuickJS has neither TextEncoder nor `console`: UTF-8 and line output here.

/** The UTF-8 bytes of `text`. */
export function utf8(text) {
  const latin = unescape(encodeURIComponent(text));
  const bytes = new Uint8Array(latin.length);
  for (let i = 0; i < latin.length; i++) bytes[i] = latin.charCodeAt(i);
  return bytes;
}

/** The text of UTF-8 `bytes`. */
export function fromUtf8(bytes) {
  let latin = '';
  // In slices: String.fromCharCode takes its arguments on the stack.
  for (let i = 0; i < bytes.length; i += 4096) {
    latin += String.fromCharCode(...bytes.subarray(i, i + 4096));
  }
  return decodeURIComponent(escape(latin));
}

/** How `console.log` shows one value. */
function show(value) {
  if (typeof value === 'string') return value;
  if (value instanceof Error) return value.stack ? `${value}\n${value.stack}` : String(value);
  if (value === undefined || typeof value === 'function') return String(value);
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/** A `console.log`-like writer to the stream `open` gives: each call
 * writes one whole line, so lines of tasks never mix. */
function lineWriter(open) {
  return (...values) => {
    const bytes = utf8(values.map(show).join(' ') + '\n');
    const stream = open();
    // The stream takes at most 4096 bytes a call.
    for (let i = 0; i < bytes.length; i += 4096) {
      stream.blockingWriteAndFlush(bytes.subarray(i, i + 4096));
    }
  };
}

const out = lineWriter(getStdout);
const err = lineWriter(getStderr);
globalThis.console ??= { log: out, info: out, warn: err, error: err };

// Errors --------------------------------------------------------------------

/** A host call failed; `kind` is the WIT error case (`denied`, `io`, ...). */
export class MtaskError extends Error {
  constructor(kind, message = '') {
    super(message ? `${kind}: ${message}` : kind);
    this.name = 'MtaskError';
    this.kind = kind;
    this.detail = message;
  }
}

/** The call's deadline passed; it had no effect. */
export class Timeout extends MtaskError {
  /** `call` names what timed out (`Queue.get`), `after` the timeout it was
   * given (seconds). */
  constructor(call = null, after = null) {
    super('timeout', call ? `${call} timed out after ${after} s` : '');
    this.name = 'Timeout';
    this.call = call;
    this.after = after;
  }
}

/** The queue or connection is closed. */
export class Closed extends MtaskError {
  constructor() {
    super('closed');
    this.name = 'Closed';
  }
}

/** A child task ended without a value: `kind` is failed, trapped,
 * cancelled or limit; `message` says why (one line) and `details` adds
 * what followed it (a stack, a wasm backtrace). */
export class TaskFailed extends Error {
  constructor(entry, kind, details = '') {
    const line = details.split('\n')[0];
    super(details ? `task \`${entry}\` ${kind}: ${line}` : `task \`${entry}\` ${kind}`);
    this.name = 'TaskFailed';
    this.entry = entry;
    this.kind = kind;
    this.details = details;
    this.reason = line;
  }
}

/** The error for a WIT `error` value. */
function toError(error) {
  if (error.tag === 'timeout') return new Timeout();
  if (error.tag === 'closed') return new Closed();
  return new MtaskError(error.tag, error.val ?? '');
}

/** Calls `f(...args)`, turning a host call's WIT error into its exception. */
function host(f, ...args) {
  try {
    return f(...args);
  } catch (e) {
    throw e && e.payload && typeof e.payload.tag === 'string' ? toError(e.payload) : e;
  }
}

/** `host(f, ...args)` for the call named `call`, given `timeout`: a
 * timeout throws `Timeout` naming the call. */
function timed(call, timeout, f, ...args) {
  try {
    return host(f, ...args);
  } catch (e) {
    throw e instanceof Timeout ? new Timeout(call, timeout) : e;
  }
}

/** Seconds as the host's nanoseconds (`null`: no timeout). */
function nanos(seconds) {
  return seconds == null ? null : Math.max(0, Math.round(seconds * 1e9));
}

const encode = (value) => utf8(JSON.stringify(value ?? null));
const decode = (bytes) => (bytes.length ? JSON.parse(fromUtf8(bytes)) : null);

// Scheduling ----------------------------------------------------------------

/** Lets every other runnable task run once. */
export function yieldNow() {
  tasks.yieldNow();
}

/** Suspends this task for at least `seconds`. */
export function sleep(seconds) {
  tasks.sleep(nanos(seconds));
}

/** This task's id. */
export function currentId() {
  return tasks.currentId();
}

/** A child task. */
export class Task {
  constructor(handle, entry, returns = null) {
    this.handle = handle;
    this.entry = entry;
    this.returns = returns;
  }

  get id() {
    return this.handle.id();
  }

  /** Waits for the child's value; throws `TaskFailed` if it failed,
   * `Timeout` if it has not ended by then (it runs on). */
  join(timeout = null) {
    const ended = timed('Task.join', timeout, () => this.handle.join(nanos(timeout)));
    if (ended.tag === 'err') {
      throw new TaskFailed(this.entry, ended.val.tag, ended.val.val ?? '');
    }
    const value = decode(ended.val);
    if (this.returns !== null && !conforms(value, this.returns)) {
      throw new MtaskError('invalid', `entry \`${this.entry}\` returned ${kindOf(value)}, not ${this.returns}`);
    }
    return value;
  }

  /** Ends the child if it has not ended. The tasks it started run on
   * (detached); `cancelTree` ends them too. */
  cancel() {
    this.handle.cancel();
  }

  /** Like `cancel`, and ends every task the child started that has not
   * ended, and every task those started, down the tree. */
  cancelTree() {
    this.handle.cancelTree();
  }

  toWit() {
    return { tag: 'task', val: this.handle };
  }
}

/** A watch on another task's end, from `monitor`. */
export class TaskMonitor {
  constructor(handle) {
    this.handle = handle;
  }

  /** The watched task's id. */
  get id() {
    return this.handle.id();
  }

  /** Waits until the task has ended and says how: `null` if its entry
   * returned a value (which goes to whoever joins it), else a
   * `TaskFailed` (returned, not thrown). Throws `Timeout` if it has not
   * ended by then (the watch goes on). Can be asked again. */
  wait(timeout = null) {
    const ended = timed('TaskMonitor.wait', timeout, () => this.handle.wait(nanos(timeout)));
    return ended.tag === 'err' ? new TaskFailed(`#${this.id}`, ended.val.tag, ended.val.val ?? '') : null;
  }
}

/** Watches the task `id` of this app: one that runs,
 * or one that ended whose result nobody has taken yet. Throws
 * `MtaskError('invalid')` if the app has no such task now, or it is this
 * task. */
export function monitor(id) {
  return new TaskMonitor(host(tasks.monitor, Number(id)));
}

/** Links this task to the task `id` of this app: if that one fails
 * (cancelled included), this one is cancelled. One way; linking to a task
 * that failed already cancels this one at its next wait. Throws
 * `MtaskError('invalid')` as `monitor` does. */
export function link(id) {
  host(tasks.link, Number(id));
}

/** Starts a child task running `entry(arg)`; `handles` (queues, sockets,
 * tasks) move to it, and it gets them from `takeHandles()`. Throws
 * `MtaskError('invalid')`, spawning nothing, if `arg` is not of the type
 * the entry declares, or `returns` (the type wanted back) is not its
 * result type. */
export function spawn(entry, arg = null, handles = [], returns = null) {
  checkSpawn(entry, arg, returns);
  const wit = handles.map((h) => h.toWit());
  return new Task(host(tasks.spawn, entry, encode(arg), wit), entry, returns);
}

/** Like `spawn`, for a child that may run on any host of the cluster that
 * runs this same component (on this host outside a cluster). */
export function spawnAnywhere(entry, arg = null, handles = [], returns = null) {
  checkSpawn(entry, arg, returns);
  const wit = handles.map((h) => h.toWit());
  return new Task(host(tasks.spawnAt, entry, encode(arg), wit, 'anywhere'), entry, returns);
}

/** The key of the remote spawn that started this task, or null. */
export function spawnKey() {
  return tasks.spawnKey() ?? null;
}

/** Runs `entry(arg)` as a child task and returns its value: multitask's
 * `yield child()`. */
export function call(entry, arg = null, timeout = null, returns = null) {
  return spawn(entry, arg, [], returns).join(timeout);
}

/** The handles the parent gave this task at spawn. */
export function takeHandles() {
  return tasks.takeHandles().map(({ tag, val }) => {
    switch (tag) {
      case 'queue':
        return new Queue([], 0, val);
      case 'tcp-stream':
        return new TcpStream(val);
      case 'tcp-listener':
        return new TcpListener(val);
      case 'udp-socket':
        return new UdpSocket(val);
      default:
        return new Task(val, val.entry());
    }
  });
}

// Queues ----------------------------------------------------------------------

/** A FIFO queue of JSON values: multitask's `Queue(contents, maxsize)`. */
export class Queue {
  constructor(items = [], maxsize = 0, wit = null) {
    const initial = () => items.map((i) => ({ tag: null, data: encode(i) }));
    this.q = wit ?? host(queues.Queue.create, maxsize, initial());
  }

  /** The named queue that every task of this app shares. */
  static open(name, maxsize = 0) {
    return new Queue([], 0, host(queues.Queue.open, name, maxsize));
  }

  /** Adds `item`, waiting at most `timeout` seconds for room; `tag` (a
   * number, up to 2^53) lets `getTagged` pick it. */
  put(item, timeout = null, tag = null) {
    timed('Queue.put', timeout, () => this.q.put({ tag, data: encode(item) }, nanos(timeout)));
  }

  get(timeout = null) {
    return decode(timed('Queue.get', timeout, () => this.q.get(nanos(timeout))).data);
  }

  /** The first item tagged with one of `tags`, as [tag, item]. */
  getTagged(tags, timeout = null) {
    const item = timed('Queue.getTagged', timeout, () => this.q.getTagged(tags, nanos(timeout)));
    return [item.tag, decode(item.data)];
  }

  get length() {
    return this.q.len();
  }

  close() {
    this.q.close();
  }

  /** Another handle on the same queue (to give to a child). */
  clone() {
    return new Queue([], 0, this.q.clone());
  }

  toWit() {
    return { tag: 'queue', val: this.q };
  }
}

// Sockets ---------------------------------------------------------------------

const bytes = (data) => (typeof data === 'string' ? utf8(data) : Uint8Array.from(data));

export class TcpListener {
  constructor(wit) {
    this.l = wit;
  }

  static bind(address, backlog = 128) {
    return new TcpListener(host(net.TcpListener.bind, address, backlog));
  }

  /** Waits for a connection: [TcpStream, peer address]. */
  accept(timeout = null) {
    const [stream, peer] = timed('TcpListener.accept', timeout, () => this.l.accept(nanos(timeout)));
    return [new TcpStream(stream), peer];
  }

  localAddress() {
    return host(() => this.l.localAddress());
  }

  toWit() {
    return { tag: 'tcp-listener', val: this.l };
  }
}

export class TcpStream {
  constructor(wit) {
    this.s = wit;
  }

  static connect(address, timeout = null) {
    return new TcpStream(timed('TcpStream.connect', timeout, net.TcpStream.connect, address, nanos(timeout)));
  }

  /** At most `maxBytes`; empty when the peer closed. */
  recv(maxBytes, timeout = null) {
    return timed('TcpStream.recv', timeout, () => this.s.recv(maxBytes, nanos(timeout)));
  }

  /** Sends some of `data` (bytes or a string); how many bytes went. */
  send(data, timeout = null) {
    return timed('TcpStream.send', timeout, () => this.s.send(bytes(data), nanos(timeout)));
  }

  sendAll(data, timeout = null) {
    timed('TcpStream.sendAll', timeout, () => this.s.sendAll(bytes(data), nanos(timeout)));
  }

  toWit() {
    return { tag: 'tcp-stream', val: this.s };
  }
}

/** A UDP socket: datagrams, each whole or not at all. */
export class UdpSocket {
  constructor(wit) {
    this.u = wit;
  }

  /** Binds to `address` (port 0: any free port). */
  static bind(address) {
    return new UdpSocket(host(net.UdpSocket.bind, address));
  }

  /** Waits for a datagram: [at most `maxBytes` of it, sender]. */
  recvFrom(maxBytes, timeout = null) {
    return timed('UdpSocket.recvFrom', timeout, () => this.u.recvFrom(maxBytes, nanos(timeout)));
  }

  /** Sends `data` as one datagram to `address`. */
  sendTo(data, address, timeout = null) {
    return timed('UdpSocket.sendTo', timeout, () => this.u.sendTo(bytes(data), address, nanos(timeout)));
  }

  /** Fixes the peer for `send` and `recv`. */
  connect(address) {
    host(() => this.u.connect(address));
  }

  send(data, timeout = null) {
    return timed('UdpSocket.send', timeout, () => this.u.send(bytes(data), nanos(timeout)));
  }

  recv(maxBytes, timeout = null) {
    return timed('UdpSocket.recv', timeout, () => this.u.recv(maxBytes, nanos(timeout)));
  }

  localAddress() {
    return host(() => this.u.localAddress());
  }

  toWit() {
    return { tag: 'udp-socket', val: this.u };
  }
}

// Entries ---------------------------------------------------------------------
//
// Every task is an instance of the same app, so each has the whole table of
// entries: a spawn checks its argument against the entry's declared type
// before asking the host, and the entry checks it again, and its result,
// when it runs. The types are JSON's: 'number', 'string', 'boolean',
// 'array', 'object', 'null', or several joined by '|' ('number|null').

const ENTRIES = new Map();

/** Registers `f(arg)` as an entry the host may run as a task, under its
 * function name or `types.name`, taking `types.arg` and returning
 * `types.result` if given (see above). */
export function entry(f, types = {}) {
  if (typeof types === 'string') types = { name: types };
  const name = types.name ?? f.name;
  ENTRIES.set(name, { f, arg: types.arg ?? '', result: types.result ?? '' });
  return f;
}

/** The JSON type of `value`, as entries' types name them. */
function kindOf(value) {
  if (value === null || value === undefined) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

/** Whether `value` is of the declared type `type` ('' is any). */
const conforms = (value, type) => !type || type.split('|').includes(kindOf(value));

/** The entry `name`, if `arg` is of its argument's type; else `invalid`. */
function checkArg(name, arg) {
  const found = ENTRIES.get(name);
  if (!found) {
    const names = [...ENTRIES.keys()].join(', ');
    throw new MtaskError('invalid', `no entry named \`${name}\`: the entries are ${names} (a function becomes one with \`entry\`)`);
  }
  if (!conforms(arg, found.arg)) {
    throw new MtaskError('invalid', `entry \`${name}\` takes ${found.arg}, not ${kindOf(arg)} (${show(arg)})`);
  }
  return found;
}

function checkSpawn(name, arg, returns) {
  const found = checkArg(name, arg);
  if (returns !== null && found.result && returns !== found.result) {
    throw new MtaskError('invalid', `entry \`${name}\` returns ${found.result}, not ${returns}`);
  }
}

/** The component's export: the entries' names. */
export function entries() {
  return [...ENTRIES.keys()];
}

/** The component's export: the entries with their declared types. */
export function entryTypes() {
  return [...ENTRIES].map(([name, e]) => ({ name, arg: e.arg, result: e.result }));
}

/** Runs entry `name` with the decoded `arg`; its result as JSON text. A
 * thrown error fails the task with its message and stack, as in multitask;
 * the error must reach the host as a string. */
function runEntry(name, arg) {
  let found;
  try {
    found = checkArg(name, arg);
  } catch (e) {
    throw String(e.detail);
  }
  let result;
  try {
    result = found.f(arg) ?? null;
  } catch (e) {
    if (e instanceof TaskFailed || e instanceof MtaskError) throw String(e.message);
    // The message first, as Python's SDK does; the type and stack follow.
    if (e instanceof Error) throw `${e.message}\n${e.name}\n${(e.stack ?? '').trimEnd()}`;
    throw `uncaught ${show(e)}`;
  }
  if (!conforms(result, found.result)) {
    throw `entry \`${name}\` returned ${kindOf(result)} (${show(result)}), not ${found.result} as it declares`;
  }
  return JSON.stringify(result);
}

/** The component's export: runs entry `name` with its JSON argument. */
export function run(name, payload) {
  return utf8(runEntry(name, decode(payload)));
}

/** The component's export: `run` with JSON text in and out. */
export function runJson(name, arg) {
  return runEntry(name, JSON.parse(arg));
}
