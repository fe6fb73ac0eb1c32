/**
 * One gateway Connection over a plain `ws` server, with no Herald around it:
 * for tests that need to drive the replay seam over a store they control
 * (slow, failing). Owns its server: call `close()`.
 */
import pino from 'pino';
import { ThrottledLog } from '../../src/server/throttled-log.js';
import { WebSocketServer } from 'ws';
import { AckBuffer } from '../../src/server/gateway/ack-buffer.js';
import { Connection, type ResumeCursors } from '../../src/server/gateway/connection.js';
import type { MessageStore } from '../../src/server/store/message-store.js';
import { TestTab } from './ws-client.js';

export interface BareConnection {
  conn: Connection;
  tab: TestTab;
  close(): void;
}

/**
 * Starts a Connection for admin 1 that replays from `cursors`, and a tab connected to it.
 * `monotonicNow`: the Connection's clock of windows and waits (ConnectionDeps.monotonicNow), for a test that sets the time itself.
 */
export async function openBareConnection(store: MessageStore, cursors: ResumeCursors, monotonicNow?: () => number): Promise<BareConnection> {
  const log = pino({ level: 'silent' });
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await new Promise((r) => wss.once('listening', r));
  const connected = new Promise<Connection>((resolve) => wss.once('connection', (ws, req) => {
    const conn = new Connection(ws, req.socket, { kind: 'admin', id: 1 }, 'credential', {
      store, acks: new AckBuffer(store, log), commands: undefined, logger: log, now: Date.now, tabCount: () => 1, ...(monotonicNow ? { monotonicNow } : {}),
      behind: new ThrottledLog(log, Date.now, { summary: () => ({ fields: {}, message: '' }) }),
      limits: { maxFrameBytes: 65_536, heartbeatMs: 60_000, maxBufferedBytes: 4 << 20, replayBatch: 10, closeTimeoutMs: 3000, maxFramesPer10s: 1000, maxErrorsPer10s: 50, broadcastAcksPerSecond: 50, acksPerSecond: 250 },
    });
    conn.start(cursors)?.catch(() => undefined);
    resolve(conn);
  }));
  const { port } = wss.address() as { port: number };
  const tab = await TestTab.open(`ws://127.0.0.1:${port}/`);
  const conn = await connected;
  return {
    conn, tab,
    close() {
      tab.terminate();
      wss.close();
    },
  };
}
