// Typed entries in JavaScript: each spawn below means a type other than its
// entry's and prints the error; the last ones match. An entry that returns
// a value of the wrong type fails.

import { MtaskError, TaskFailed, call, entry } from './mtask.js';
export { entries, entryTypes, run, runJson } from './mtask.js';

function report(what, thunk) {
  try {
    console.log(`${what}: ${JSON.stringify(thunk())}`);
  } catch (e) {
    if (!(e instanceof MtaskError || e instanceof TaskFailed)) throw e;
    console.log(`${what}: ${e.message}`);
  }
}

entry(function main() {
  report('text to square', () => call('square', 'hello'));
  report('square as text', () => call('square', 5, null, 'string'));
  report('no such entry', () => call('cube', 5));
  report('wrong result', () => call('liar', 1));
  report('square 7', () => call('square', 7, null, 'number'));
  report('maybe', () => call('maybe', null));
  report('untyped', () => call('untyped', { any: 'thing' }));
});

entry((n) => n * n, { name: 'square', arg: 'number', result: 'number' });
entry((n) => (n === null ? 'nothing' : String(n)), { name: 'maybe', arg: 'number|null', result: 'string' });
entry((n) => String(n), { name: 'liar', arg: 'number', result: 'number' });
entry(function untyped(arg) {
  return Object.keys(arg);
});
