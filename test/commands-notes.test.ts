/**
 * commandsNotes: the bracketed lines of a command's default final text, in the
 * panel's language. Real programs, run by the real runner, for each way a run
 * ends that a program can be made to end; the rest through finalNotification.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import type { CommandInfo } from '../src/server/commands/command-service.js';
import { DEFAULT_NOTES, finalNotification, parseCommandNotes } from '../src/server/commands/outcome.js';
import { isHeraldError } from '../src/server/errors.js';
import { loadOptions } from '../src/server/options.js';
import { makeRig, within, type Frame, type Rig } from './commands-fixture.js';

const RUSSIAN = [
  'exitStatus=[код завершения {code}]',
  'killedBy=[прервано сигналом {signal}]',
  'timedOut=[остановлено: не завершилось за {seconds} с]',
  'cancelledByAdmin=[отменено администратором {admin}]',
  'cancelledByApi=[отменено через API]',
  'cancelledAtShutdown=[отменено: сервер останавливается]',
  'couldNotRun=[не удалось запустить: {error}]',
  'outputCut=[вывод обрезан]',
  'leftRunning=[запущенный процесс оставлен работать]',
];
const isFinal = (id: string) => (f: Frame) => f.COMMAND_ID === id && f.TYPE !== 'COMMAND_PROGRESS';

describe('commandsNotes with real programs', () => {
  let rig: Rig | undefined;
  afterEach(async () => {
    await rig?.close();
    rig = undefined;
  });

  it('says how each run ended in the given words: exit status, signal, timeout, output cut, cancels by an admin and by the API', async () => {
    rig = await makeRig({ commandsAllow: ['sh', 'seq', 'sleep'], commandsNotes: RUSSIAN, commandsOutputCap: 1024 });
    const tab = rig.tab(1);
    const start = (program: string, args: string[], timeoutSec = 10) => rig!.runner.start({ aid: 1, program, args, timeoutSec, door: 'http' });
    const failed = await start('sh', ['-c', 'echo oops; exit 3']);
    const killed = await start('sh', ['-c', 'kill -KILL $$']);
    const [f1, f2] = [await tab.next(isFinal(failed.id)), await tab.next(isFinal(killed.id))];
    assert.equal(f1.TEXT, 'oops\n[код завершения 3]');
    assert.equal(f2.TEXT, '[прервано сигналом SIGKILL]');

    const slow = await start('sleep', ['30'], 0.3);
    const cut = await start('seq', ['1', '5000']);
    const [f3, f4] = [await tab.next(isFinal(slow.id)), await tab.next(isFinal(cut.id))];
    assert.equal(f3.TEXT, '[остановлено: не завершилось за 0.3 с]');
    assert.match(String(f4.TEXT), /^1\n2\n3\n[\s\S]*\n\[вывод обрезан\]$/);

    const mine = await start('sleep', ['30']);
    const anyones = await start('sleep', ['30']);
    await within(rig.runner.cancel(mine.id, { kind: 'admin', id: 1 }), 5000, 'cancel by the admin');
    await within(rig.runner.cancel(anyones.id), 5000, 'cancel through the API');
    assert.equal((await tab.next(isFinal(mine.id))).TEXT, '[отменено администратором 1]');
    assert.equal((await tab.next(isFinal(anyones.id))).TEXT, '[отменено через API]');
    // What the API and the audit trail say is the server's own, as before: only the admin's text changes.
    assert.equal(rig.runner.get(mine.id)?.error, 'by admin 1');
    assert.equal(rig.runner.get(anyones.id)?.error, 'through the API');
  });

  it('says a run was cancelled by the shutdown in the given words', async () => {
    rig = await makeRig({ commandsAllow: ['sleep'], commandsNotes: RUSSIAN });
    const tab = rig.tab(1);
    const info = await rig.runner.start({ aid: 1, program: 'sleep', args: ['30'], door: 'http' });
    await within(rig.runner.close(), 5000, 'shutdown');
    assert.equal((await tab.next(isFinal(info.id))).TEXT, '[отменено: сервер останавливается]');
    assert.equal(rig.runner.get(info.id)?.state, 'cancelled');
  });

  it('leaves out a note given as empty, and keeps the default of one not given', async () => {
    rig = await makeRig({ commandsAllow: ['sh'], commandsNotes: ['exitStatus='] });
    const tab = rig.tab(1);
    const failed = await rig.runner.start({ aid: 1, program: 'sh', args: ['-c', 'echo oops; exit 3'], door: 'http' });
    const killed = await rig.runner.start({ aid: 1, program: 'sh', args: ['-c', 'kill -TERM $$'], door: 'http' });
    const f1 = await tab.next(isFinal(failed.id));
    assert.equal(f1.TEXT, 'oops\n', 'the output alone');
    assert.equal((f1.COMMAND as Record<string, unknown>).EXIT_CODE, 3, 'the summary still says how it ended');
    assert.equal((await tab.next(isFinal(killed.id))).TEXT, '[killed by SIGTERM]');
  });
});

describe('commandsNotes, read at start-up', () => {
  const refused = (entries: string[], message: RegExp) =>
    assert.throws(() => parseCommandNotes(entries), (e: unknown) => isHeraldError(e) && e.code === 'HERALD_ERR_CONFIG' && message.test(e.message), JSON.stringify(entries));

  it('refuses an entry that is not NAME=TEXT, a name that is not a note, a name given twice, and a placeholder the note does not fill', () => {
    refused(['exitStatus'], /^option "commandsNotes": entry 1 is not NAME=TEXT \("exitStatus"\)$/);
    refused(['=[x]'], /^option "commandsNotes": entry 1 is not NAME=TEXT/);
    refused(['outputCut=ok', 'exitCode=[{code}]'], /^option "commandsNotes": entry 2 names "exitCode", which is not a note: the notes are exitStatus, killedBy, timedOut, /);
    refused(['__proto__=x'], /names "__proto__", which is not a note/);
    refused(['outputCut=a', 'outputCut=b'], /entry 2 gives "outputCut" a second time/);
    refused(['exitStatus=[код {cdoe}]'], /entry 1 \("exitStatus"\) has the placeholder \{cdoe\}, which it does not fill: it has \{code\}$/);
    refused(['timedOut=[{code}]'], /it has \{seconds\}$/);
    refused(['outputCut=[{}]'], /has the placeholder \{\}, which it does not fill: it has none$/);
  });

  it('takes every note and its placeholders, and braces that are not a placeholder as text', () => {
    const notes = parseCommandNotes([...RUSSIAN.filter((e) => !e.startsWith('cancelledByApi=')), 'cancelledByApi=[{отменено} через API: {"a":1}]']);
    assert.equal(notes.exitStatus, '[код завершения {code}]');
    assert.equal(notes.cancelledByApi, '[{отменено} через API: {"a":1}]');
    assert.deepEqual(parseCommandNotes([]), DEFAULT_NOTES);
  });

  it('comes from the environment as a JSON list, commas and all', () => {
    const options = loadOptions({ env: { HERALD_COMMANDS_NOTES: JSON.stringify(['exitStatus=[код {code}, ошибка]', 'outputCut=']) } });
    assert.deepEqual(options.commandsNotes, ['exitStatus=[код {code}, ошибка]', 'outputCut=']);
    assert.equal(parseCommandNotes(options.commandsNotes).exitStatus, '[код {code}, ошибка]');
  });
});

describe('finalNotification with commandsNotes', () => {
  const info = (over: Partial<CommandInfo>): CommandInfo => ({
    id: 'c1', aid: 1, program: 'probe', path: '/usr/bin/probe', args: [], state: 'failed', door: 'http', queuedAt: 0, timeoutSec: 5, output: 'out\n',
    COMMAND_ID: 'c1', EXIT_CODE: null, SIGNAL: null, TIMED_OUT: false, DURATION_MS: 1, TRUNCATED: false, ...over,
  } as CommandInfo);

  it('fills a placeholder with the value as it is, never reading the value as a template', () => {
    const notes = parseCommandNotes(['couldNotRun=[не удалось: {error}]']);
    const text = finalNotification(info({ error: 'spawn {error} {code} $& $1 ENOENT' }), {}, {}, notes).TEXT;
    assert.equal(text, 'out\n[не удалось: spawn {error} {code} $& $1 ENOENT]');
  });

  it('adds the left-running note after the others, and says nothing on a clean success', () => {
    const notes = parseCommandNotes(RUSSIAN);
    assert.equal(finalNotification(info({ state: 'failed', EXIT_CODE: 1, TRUNCATED: true }), {}, { leftRunning: true }, notes).TEXT,
      'out\n[код завершения 1]\n[вывод обрезан]\n[запущенный процесс оставлен работать]');
    assert.equal(finalNotification(info({ state: 'succeeded', EXIT_CODE: 0 }), {}, {}, notes).TEXT, 'out\n');
  });

  it('leaves a caller\'s own SUCCESS and ERROR as they are', () => {
    const notes = parseCommandNotes(RUSSIAN);
    assert.equal(finalNotification(info({ EXIT_CODE: 2 }), { error: 'Не удалось' }, {}, notes).TEXT, 'Не удалось');
  });
});
