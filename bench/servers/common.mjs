// What every benchmarked server process offers the orchestrator over IPC:
// its memory after a full GC (run node with --expose-gc) and its CPU time.
import { Session } from 'node:inspector/promises';
import { PerformanceObserver } from 'node:perf_hooks';
import { writeFileSync } from 'node:fs';
import { serveIpc } from '../lib/ipc.mjs';
import { nowMs } from '../lib/clock.mjs';
import { startPromotedSampling } from '../lib/heap.mjs';

// A CPU profile of one measured phase only (not of start-up or token minting).
let inspector = null;
/** With --heap-promoted: ends the phase's sampling and resolves with the profile. */
let stopPromoted = null;

// Garbage-collection pauses of this process (each one stops the event loop):
// counted from gcStart to gcStop around a measured phase.
const gc = { count: 0, totalMs: 0, maxMs: 0 };
/** With --timeline: every pause, as [start on the clients' clock (ms), duration (ms), kind (node's: 1 minor, 4 major, 8 incremental, 16 weak callbacks)]. */
let gcEvents = null;
// performance.now() counts from this process's start; the clients' timestamps are CLOCK_MONOTONIC.
const monotonicOffset = nowMs() - performance.now();
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    gcEvents?.push([e.startTime + monotonicOffset, e.duration, e.detail?.kind ?? 0]);
    gc.count++;
    gc.totalMs += e.duration;
    if (e.duration > gc.maxMs) gc.maxMs = e.duration;
  }
}).observe({ entryTypes: ['gc'] });

export function serveServerIpc(extra = {}) {
  serveIpc({
    mem() {
      // Two passes: the first may only queue finalizers.
      if (globalThis.gc) { globalThis.gc(); globalThis.gc(); }
      return process.memoryUsage();
    },
    cpu() { return process.cpuUsage(); },
    gcStart({ timeline = false } = {}) {
      Object.assign(gc, { count: 0, totalMs: 0, maxMs: 0 });
      gcEvents = timeline ? [] : null;
      return true;
    },
    gcStop() {
      const events = gcEvents;
      gcEvents = null;
      return { ...gc, ...(events ? { events } : {}) };
    },
    async profileStart() {
      inspector = new Session();
      inspector.connect();
      await inspector.post('Profiler.enable');
      await inspector.post('Profiler.setSamplingInterval', { interval: 200 });
      await inspector.post('Profiler.start');
      return true;
    },
    async profileStop({ file }) {
      if (!inspector) return false;
      const { profile } = await inspector.post('Profiler.stop');
      inspector.disconnect();
      inspector = null;
      writeFileSync(file, JSON.stringify(profile));
      return file;
    },
    async heapPromotedStart() {
      stopPromoted = await startPromotedSampling();
      return true;
    },
    async heapPromotedStop({ file }) {
      if (!stopPromoted) return false;
      const profile = await stopPromoted();
      stopPromoted = null;
      writeFileSync(file, JSON.stringify(profile));
      return file;
    },
    ...extra,
  });
}

/** Reads a whole request body as a string (bounded). */
export function readBody(req, limit = 64 * 1024 * 1024) {
  return new Promise((resolve, reject) => {
    const parts = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > limit) { reject(new Error('body too large')); req.destroy(); return; }
      parts.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(parts).toString('utf8')));
    req.on('error', reject);
  });
}

/**
 * The floor's and Socket.IO's control endpoints, the same for both:
 * POST /send  [{"to":id,"msg":{...}}, ...] → {"delivered":sockets}
 * POST /broadcast {"msg":{...}}            → {"delivered":sockets}
 */
export function controlHandler({ send, broadcast }) {
  return async (req, res) => {
    try {
      if (req.method === 'POST' && (req.url === '/send' || req.url === '/broadcast')) {
        const body = JSON.parse(await readBody(req));
        const delivered = req.url === '/send' ? send(body) : broadcast(body.msg);
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ delivered }));
        return;
      }
      res.writeHead(404).end();
    } catch (e) {
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: String(e) }));
    }
  };
}
