/** Handshakes offered at a steady rate past what a session resolver can answer, and what got in, second by second. */
import assert from 'node:assert/strict';
import type { AuthHerald } from './auth-herald.js';

export interface Offered {
  results: Array<{ second: number; status: number }>;
  /** The answers, by the second their handshake was sent in. */
  perSecond: Array<Array<{ second: number; status: number }>>;
  /** `admitted/sent` per second, for messages. */
  table: string;
}

/** Sends `perS` admin handshakes a second for `seconds` s, the i-th (from 0) with `cookie(i)`, and waits for every answer. */
export async function offerHandshakes(h: AuthHerald, perS: number, seconds: number, cookie: (i: number) => string): Promise<Offered> {
  const answers: Array<Promise<{ second: number; status: number }>> = [];
  const t0 = Date.now();
  await new Promise<void>((resolve) => {
    let i = 0;
    const timer = setInterval(() => {
      const second = Math.floor((Date.now() - t0) / 1000);
      if (second >= seconds) {
        clearInterval(timer);
        resolve();
        return;
      }
      answers.push(h.status('admin', { headers: { cookie: cookie(i++) } }).then((status) => ({ second, status })));
    }, 1000 / perS);
  });
  const results = await Promise.all(answers);
  const perSecond = Array.from({ length: seconds }, (_, s) => results.filter((r) => r.second === s));
  const table = perSecond.map((rs) => `${rs.filter((r) => r.status === 101).length}/${rs.length}`).join(' ');
  return { results, perSecond, table };
}

/**
 * Every session offered exists, so each answer is admitted (101) or unavailable (503), never
 * refused; from second `from` on, at least 30% of `capacityPerS` a second got in (generous for
 * a busy machine: a resolver that collapsed admitted none), and someone in every second.
 */
export function assertGoodput({ results, perSecond, table }: Offered, from: number, capacityPerS: number, what: string): void {
  assert.deepEqual([...new Set(results.map((r) => r.status))].filter((s) => s !== 101 && s !== 503), []);
  const admitted = perSecond.slice(from).flat().filter((r) => r.status === 101).length;
  const floor = 0.3 * capacityPerS * (perSecond.length - from);
  assert.ok(admitted >= floor, `${admitted} admitted in seconds ${from + 1} to ${perSecond.length}, fewer than 30% of what ${what} (${floor}): ${table}`);
  for (const [s, rs] of perSecond.entries()) {
    if (s < from) continue;
    assert.ok(rs.some((r) => r.status === 101), `nobody admitted in second ${s + 1}: ${table}`);
  }
}
