// Preload (`node --import`): shifts the process's wall clock (Date.now, new Date()) by the
// offset in ms read from $CLOCK_SHIFT_FILE (polled every 20 ms), as an NTP step or a VM
// resumed does. Monotonic clocks (performance.now, timers) are untouched. With
// $CLOCK_SHIFT_ON_SIGTERM, the offset becomes that many ms 30 ms after SIGTERM (a step
// during the shutdown). For test/clock-steps.test.ts.
import { readFileSync } from 'node:fs';

const file = process.env.CLOCK_SHIFT_FILE;
let offset = 0;
let polling = Boolean(file);
const RealDate = Date;
const realNow = RealDate.now.bind(RealDate);
function read() {
  try {
    offset = Number(readFileSync(file, 'utf8').trim()) || 0;
  } catch {
    // not written yet
  }
}
if (file) {
  read();
  setInterval(() => { if (polling) read(); }, 20).unref();
}
class ShiftedDate extends RealDate {
  constructor(...args) {
    if (args.length === 0) super(realNow() + offset);
    else super(...args);
  }
  static now() {
    return realNow() + offset;
  }
}
globalThis.Date = ShiftedDate;
if (process.env.CLOCK_SHIFT_ON_SIGTERM) {
  const step = Number(process.env.CLOCK_SHIFT_ON_SIGTERM);
  process.on('SIGTERM', () => setTimeout(() => { polling = false; offset = step; }, 30));
}
