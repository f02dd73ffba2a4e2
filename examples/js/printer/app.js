// The seed's printers, in JavaScript: two tasks that yield to each other.

import { entry, spawn, yieldNow } from './mtask.js';
export { entries, entryTypes, run, runJson } from './mtask.js';

entry(function main() {
  const hello = spawn('printer', ['hello', 3]);
  const goodbye = spawn('printer', ['goodbye', 3]);
  hello.join();
  goodbye.join();
});

entry(function printer([message, times]) {
  for (let i = 0; i < times; i++) {
    console.log(message);
    yieldNow();
  }
});
