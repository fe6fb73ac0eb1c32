/**
 * A panel for the http session resolver, on 127.0.0.1, that admits the admin
 * a `panel_session=s<id>` cookie names, and can stop answering: once `hang()`
 * is called every look-up is held, unanswered, as at a panel that hangs.
 */
import { once } from 'node:events';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseCookies } from '../../src/server/auth/session-resolver.js';

export interface HangingPanel {
  /** The resolver's URL (httpResolverUrl). */
  url: string;
  /** Look-ups held since hang(), unanswered. */
  readonly held: ServerResponse[];
  /** Look-ups asked since hang(). */
  askedWhileHanging(): number;
  hang(): void;
  answerAgain(): void;
  close(): void;
}

export async function hangingPanel(): Promise<HangingPanel> {
  let hanging = false;
  let asked = 0;
  const held: ServerResponse[] = [];
  const panel = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (hanging) {
        asked++;
        held.push(res);
        return;
      }
      const sid = parseCookies(req.headers.cookie).get('panel_session') ?? '';
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'admin', id: Number(sid.slice('s'.length)) }));
    });
  });
  panel.listen(0, '127.0.0.1');
  await once(panel, 'listening');
  return {
    url: `http://127.0.0.1:${(panel.address() as AddressInfo).port}/session`,
    held,
    askedWhileHanging: () => asked,
    hang: () => { hanging = true; },
    answerAgain: () => { hanging = false; },
    close: () => {
      for (const res of held) res.destroy();
      panel.closeAllConnections();
      panel.close();
    },
  };
}
