// The seed's parent and children, in JavaScript: children return nothing,
// one value or many, or throw; the parent gets each as multitask's did.

import { TaskFailed, call, entry, yieldNow } from './mtask.js';
export { entries, entryTypes, run, runJson } from './mtask.js';

// The seed printed Python's values: None, 1, (2, 3).
const asPython = (v) => (v === null ? 'None' : Array.isArray(v) ? `(${v.join(', ')})` : String(v));

entry(function main() {
  console.log(asPython(call('return_none')));
  console.log(asPython(call('return_one')));
  console.log(asPython(call('return_many')));
  try {
    call('raise_exception');
  } catch (e) {
    if (!(e instanceof TaskFailed)) throw e;
    console.log(`caught exception: ${e.reason}`);
  }
});

entry(function return_none() {
  yieldNow();
});

entry(function return_one() {
  yieldNow();
  return 1;
});

entry(function return_many() {
  yieldNow();
  return [2, 3];
});

entry(function raise_exception() {
  yieldNow();
  throw new Error('foo');
});
