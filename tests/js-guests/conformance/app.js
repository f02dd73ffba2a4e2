// The JavaScript SDK's queues, timeouts, UDP, task joins and typed errors,
// each checked by a line tests/js.rs compares. Run with
//     --listen 127.0.0.1:* --connect 127.0.0.1:*
// (the `denied` entry runs without them).

import {
  MtaskError, Queue, TaskFailed, UdpSocket, currentId, entry, fromUtf8, link, monitor, sleep,
  spawn, takeHandles,
} from './mtask.js';
export { entries, entryTypes, run, runJson } from './mtask.js';

/** The name of what `f()` threw, and how long it took in ms. */
function thrown(f) {
  const started = Date.now();
  try {
    f();
    return ['nothing', Date.now() - started];
  } catch (e) {
    const kind = e instanceof MtaskError || e instanceof TaskFailed ? `${e.name} ${e.kind}` : String(e);
    return [kind, Date.now() - started];
  }
}

entry(function main() {
  // FIFO, with items given at creation first.
  const q = new Queue([1, 'two']);
  q.put({ three: 3 });
  console.log(`fifo ${JSON.stringify([q.get(), q.get(), q.get()])} left ${q.length}`);

  // A get on an empty queue times out, after its timeout.
  const [got, waited] = thrown(() => q.get(0.05));
  console.log(`empty get: ${got}, waited ${waited >= 45 ? 'long enough' : `${waited} ms`}`);

  // A full bounded queue refuses a put past its timeout.
  const full = new Queue([], 1);
  full.put('a');
  console.log(`full put: ${thrown(() => full.put('b', 0.02))[0]}`);

  // Tagged items are taken by tag (a number).
  const tagged = new Queue();
  tagged.put('plain');
  tagged.put('urgent item', null, 7);
  console.log(`tagged ${JSON.stringify(tagged.getTagged([7]))} then ${tagged.get()}`);

  // A queue handed to a child: the child's value comes back through it.
  const shared = new Queue();
  const child = spawn('producer', 21, [shared.clone()]);
  console.log(`from child ${shared.get()}`);
  child.join();

  // Closed: a get on a closed, drained queue.
  shared.close();
  console.log(`closed get: ${thrown(() => shared.get())[0]}`);

  // A join that times out leaves the child running; cancel ends it.
  const sleeper = spawn('sleeper', 5);
  console.log(`join: ${thrown(() => sleeper.join(0.02))[0]}`);
  sleeper.cancel();
  console.log(`after cancel: ${thrown(() => sleeper.join())[0]}`);

  // A child's typed failure, and a spawn of no such entry.
  console.log(`failed child: ${thrown(() => spawn('fails').join())[0]}`);
  console.log(`unknown entry: ${thrown(() => spawn('no_such_entry'))[0]}`);

  // UDP: a datagram each way, then a receive that times out.
  const a = UdpSocket.bind('127.0.0.1:0');
  const b = UdpSocket.bind('127.0.0.1:0');
  a.sendTo('ping', b.localAddress());
  const [ping, from] = b.recvFrom(100);
  b.sendTo(`${fromUtf8(ping)} back`, from);
  const [back] = a.recvFrom(100, 1);
  console.log(`udp ${fromUtf8(ping)} from a: ${from === a.localAddress()}, reply ${fromUtf8(back)}`);
  console.log(`udp recv: ${thrown(() => a.recvFrom(100, 0.02))[0]}`);
});

entry(function producer(n) {
  const [queue] = takeHandles();
  sleep(0.01);
  queue.put(n * 2);
});

// WIT 0.1.3: monitors, links and cancelTree.
entry(function watch() {
  const failing = spawn('failsSoon');
  const watched = monitor(failing.id);
  console.log(`early: ${thrown(() => watched.wait(0.001))[0]}`);
  const ended = watched.wait();
  console.log(`monitor: ${ended.kind}: ${ended.reason}`);
  console.log(`join still sees it: ${thrown(() => failing.join())[0]}`);
  const fine = spawn('sleeper', 0.01);
  console.log(`a success: ${monitor(fine.id).wait()}`);
  fine.join();
  console.log(`itself: ${thrown(() => monitor(currentId()))[0]}`);
  const again = spawn('fails');
  const linker = spawn('linked', again.id);
  console.log(`linked: ${thrown(() => linker.join())[0]}`);
  thrown(() => again.join());
  const parent = spawn('tree');
  const grandchild = monitor(Queue.open('tree-ids', 1).get());
  parent.cancelTree();
  console.log(`cancelTree: its child ${grandchild.wait().kind}`);
  thrown(() => parent.join());
});

entry(function failsSoon() {
  sleep(0.01);
  throw new Error('on purpose');
});

entry(function linked(id) {
  link(id);
  sleep(10);
});

entry(function tree() {
  const child = spawn('sleeper', 10);
  Queue.open('tree-ids', 1).put(child.id);
  sleep(10);
});

entry(function sleeper(seconds) {
  sleep(seconds);
});

entry(function fails() {
  throw new Error('on purpose');
});

entry(function denied() {
  console.log(`bind: ${thrown(() => UdpSocket.bind('127.0.0.1:0'))[0]}`);
});
