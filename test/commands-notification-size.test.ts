/**
 * A command's notifications within maxSendBytes. The notifier refuses any send whose JSON is
 * longer, and a command's output (up to commandsOutputCap) is up to six times longer as JSON
 * (a control character is \u0000): with maxSendBytes lowered, a command that printed much
 * ended with neither its progress frames nor its final notification. The runner cuts the
 * output in them to fit instead: the final text keeps the head and says so, a progress frame
 * keeps the tail, and the command info keeps all of it.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { LocalBroker } from '../src/server/broker/local-broker.js';
import { CommandRunner, jsonHead, jsonTail } from '../src/server/commands/runner.js';
import { Hub } from '../src/server/hub.js';
import { Notifier } from '../src/server/notifier.js';
import { loadOptions, type OptionKey } from '../src/server/options.js';
import { MemoryStore } from '../src/server/store/memory-store.js';
import { RecordingTab, type Frame } from './commands-fixture.js';

const MAX_SEND_BYTES = 262144;

/** A runner whose notifier holds sends to maxSendBytes, as herald.ts wires it. */
async function wired(overrides: Partial<Record<OptionKey, unknown>>) {
  const options = loadOptions({ env: {}, overrides: { commandsPath: '/usr/bin:/bin', commandsProgressMs: 50, ...overrides } });
  const logs: Frame[] = [];
  const logger = pino({ level: 'debug' }, new Writable({
    write(c: Buffer, _e, cb) {
      for (const line of c.toString('utf8').split('\n')) if (line.trim() !== '') logs.push(JSON.parse(line) as Frame);
      cb();
    },
  }));
  const hub = new Hub();
  const broker = new LocalBroker(hub);
  await broker.start((env) => { if (env.type === 'person') hub.deliverTo(env.to, env.frame, env.origin); });
  const store = new MemoryStore({ maxPerStream: 1000 });
  const notifier = new Notifier({ store, broker, logger, defaultTtlMs: options.defaultTtlMs, maxTtlMs: options.maxTtlMs, maxSendBytes: options.maxSendBytes });
  const runner = new CommandRunner({ notifier, logger, options });
  const tab = new RecordingTab({ kind: 'admin', id: 7 });
  hub.add(tab);
  return {
    runner, tab, logs,
    async close() {
      await runner.close();
      await broker.close();
      await store.close();
    },
  };
}

describe('a command\'s notifications and maxSendBytes', () => {
  let rig: Awaited<ReturnType<typeof wired>>;
  before(async () => {
    rig = await wired({ commandsAllow: ['head', 'sh'], maxSendBytes: MAX_SEND_BYTES });
  });
  after(() => rig.close());

  it('a command printing 300,000 control characters: its admin gets the final notification and the progress, cut to fit', async () => {
    const info = await rig.runner.start({ aid: 7, program: 'head', args: ['-c', '300000', '/dev/zero'], door: 'http', taskId: 'zeros' });
    const done = await rig.runner.wait(info.id);
    assert.equal(done?.state, 'succeeded');
    const final = await rig.tab.next((f) => f.TYPE === 'MESSAGE' && f.COMMAND_ID === info.id);
    const text = String(final.TEXT);
    assert.ok(text.endsWith('\n[output cut: too long]'), JSON.stringify(text.slice(-40)));
    const kept = text.slice(0, -'\n[output cut: too long]'.length);
    assert.match(kept, /^\0+$/, 'the head of the output');
    assert.ok(kept.length > 40_000, `${kept.length} characters kept: as many as fit`);
    // The delivered frame adds the delivery fields to what the notifier measured: left out here.
    assert.ok(JSON.stringify({ ...final, SEQ: undefined, EPOCH: undefined, STREAM: undefined }).length <= MAX_SEND_BYTES, 'the notification fits');
    assert.equal((final.COMMAND as Frame).TRUNCATED, true, 'its summary says the output it carries was cut');
    assert.equal(final.ID, 'zeros');
    // The command info keeps what the run kept: all of it.
    assert.equal(done?.output.length, 300_000);
    assert.equal(done?.TRUNCATED, false);

    const progress = rig.tab.frames.filter((f) => f.TYPE === 'COMMAND_PROGRESS' && f.COMMAND_ID === info.id);
    const shown = progress.map((f) => String(f.OUTPUT)).join('');
    assert.ok(shown.length > 0, 'progress frames carried output');
    for (const f of progress) assert.ok(JSON.stringify(f).length <= MAX_SEND_BYTES, 'each progress frame fits');
    assert.equal(progress.at(-1)?.STATE, 'succeeded', 'the last progress frame, with the final state, went out');
    assert.deepEqual(rig.logs.filter((l) => l.msg === 'command notification failed'), [], 'no notification was refused');
    assert.ok(rig.logs.some((l) => l.msg === 'command output cut in its final notification to fit maxSendBytes (the command info keeps all of it)' && l.id === info.id));
  });

  it('an output that fits goes whole, without a note', async () => {
    const info = await rig.runner.start({ aid: 7, program: 'sh', args: ['-c', 'printf "a\\tb\\n"'], door: 'http' });
    await rig.runner.wait(info.id);
    const final = await rig.tab.next((f) => f.TYPE === 'MESSAGE' && f.COMMAND_ID === info.id);
    assert.equal(final.TEXT, 'a\tb\n');
    assert.equal((final.COMMAND as Frame).TRUNCATED, false);
  });

  it('a caller\'s own ERROR is sent as given, the output being in none of it', async () => {
    const info = await rig.runner.start({
      aid: 7, program: 'sh', args: ['-c', 'head -c 300000 /dev/zero; exit 3'], door: 'http', error: { TYPE: 'MESSAGE', TEXT: 'it failed' },
    });
    await rig.runner.wait(info.id);
    const final = await rig.tab.next((f) => f.TYPE === 'MESSAGE' && f.COMMAND_ID === info.id);
    assert.equal(final.TEXT, 'it failed');
    assert.equal((final.COMMAND as Frame).TRUNCATED, false);
  });
});

describe('cutting text to a length of JSON', () => {
  const samples = ['', 'plain', 'q"uote\\back', '\0\x01\x1b\t\n\r\b\f', 'é€😀x😀', '\ud83d lone \ude00', 'a'.repeat(50) + '\0'.repeat(50) + '😀'.repeat(20)];
  const json = (s: string): number => JSON.stringify(s).length - 2;

  it('jsonHead keeps the longest head whose JSON fits, never half a pair', () => {
    for (const s of samples) {
      for (let room = 0; room <= json(s) + 1; room++) {
        const head = jsonHead(s, room);
        assert.ok(s.startsWith(head));
        assert.ok(json(head) <= room, `${JSON.stringify(s)} in ${room}: ${JSON.stringify(head)}`);
        // One more code point would not fit (or there is none).
        const next = s.slice(0, head.length + (s.codePointAt(head.length)! > 0xffff ? 2 : 1));
        if (head.length < s.length) assert.ok(json(next) > room, `${JSON.stringify(s)} in ${room}: more fits than ${JSON.stringify(head)}`);
        if (head.length > 0 && head.length < s.length) assert.ok(!/[\ud800-\udbff]$/.test(head) || !/^[\udc00-\udfff]/.test(s.slice(head.length)), 'half a pair');
      }
    }
  });

  it('jsonTail keeps the longest tail whose JSON fits, never half a pair', () => {
    for (const s of samples) {
      for (let room = 0; room <= json(s) + 1; room++) {
        const tail = jsonTail(s, room);
        assert.ok(s.endsWith(tail));
        assert.ok(json(tail) <= room, `${JSON.stringify(s)} in ${room}: ${JSON.stringify(tail)}`);
        const rest = s.slice(0, s.length - tail.length);
        if (rest !== '') {
          const width = /[\udc00-\udfff]$/.test(rest) && /[\ud800-\udbff]$/.test(rest.slice(0, -1)) ? 2 : 1;
          assert.ok(json(s.slice(s.length - tail.length - width)) > room, `${JSON.stringify(s)} in ${room}: more fits than ${JSON.stringify(tail)}`);
          assert.ok(!/^[\udc00-\udfff]/.test(tail) || !/[\ud800-\udbff]$/.test(rest), 'half a pair');
        }
      }
    }
  });
});
