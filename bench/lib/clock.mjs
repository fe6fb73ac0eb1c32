/** Milliseconds on CLOCK_MONOTONIC (process.hrtime): comparable across processes on one machine. */
export function nowMs() {
  return Number(process.hrtime.bigint()) / 1e6;
}
