/**
 * A running command's live toast that leaves the stack, closed by the person
 * or pushed out by maxToasts, stays gone while the command's COMMAND_PROGRESS
 * frames go on (one every ~500 ms): it came back with each, could not be
 * closed, its output so far lost, and pushed out the oldest MESSAGE toast.
 * And maxToasts must be a cap: NaN lifted it.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Page } from 'playwright-core';
import { browserSkipReason, type W } from './helpers/browser.js';
import { openDemoPage } from './helpers/demo-page.js';

/** What the stack of `hostId` shows: a MESSAGE toast by its title, a command toast as `command <id>: <output>`. */
function stackOf(hostId: string): string[] {
  return [...document.getElementById(hostId)!.shadowRoot!.querySelectorAll<HTMLElement>('.herald-toast')].map((toast) =>
    toast.dataset.commandId ? `command ${toast.dataset.commandId}: ${toast.querySelector('.herald-output')!.textContent}` : toast.querySelector('.herald-title')!.textContent!,
  );
}

describe('a command toast that left the stack', { skip: browserSkipReason() }, () => {
  let page: Page;
  let close: (() => Promise<void>) | undefined;

  before(async () => {
    ({ page, close } = await openDemoPage());
    await page.evaluate(`window.stackOf = ${stackOf.toString()}`);
  });
  after(() => close?.());

  it('closed with × or Escape, stays closed through the next frames, to the last; the final notification shows as usual', async () => {
    const r = await page.evaluate(() => {
      const w = window as W & { stackOf: typeof stackOf };
      const t = new w.Herald.Toaster({ hostId: 'cmd-closed' });
      const frame = (COMMAND_ID: string, STATE: string, OUTPUT: string) => t.progress({ TYPE: 'COMMAND_PROGRESS', COMMAND_ID, ID: 1, PROGRAM: 'ping', STATE, OUTPUT } as never, () => {});
      frame('c1', 'running', 'seq=1\n');
      frame('c2', 'running', 'seq=1\n');
      const opened = w.stackOf('cmd-closed');
      const toasts = [...document.getElementById('cmd-closed')!.shadowRoot!.querySelectorAll<HTMLElement>('.herald-toast')];
      toasts[0]!.querySelector<HTMLElement>('.herald-close')!.click();
      toasts[1]!.querySelector<HTMLElement>('.herald-output')!.dispatchEvent(new KeyboardEvent('keydown', { key: 'Escape', bubbles: true, composed: true }));
      const closed = w.stackOf('cmd-closed');
      frame('c1', 'running', 'seq=2\n');
      frame('c2', 'running', 'seq=2\n');
      frame('c1', 'succeeded', 'done\n');
      const afterFrames = w.stackOf('cmd-closed');
      // The final notification (herald-client.ts #dispatch): the live toast ends, the MESSAGE shows.
      const ended = t.endCommand('c1');
      t.show({ TYPE: 'MESSAGE', TITLE: 'ping finished', COMMAND_ID: 'c1' });
      // A command that starts later has its toast.
      frame('c3', 'running', 'seq=1\n');
      return { opened, closed, afterFrames, ended, atEnd: w.stackOf('cmd-closed') };
    });
    assert.deepEqual(r, {
      opened: ['command c1: seq=1\n', 'command c2: seq=1\n'],
      closed: [],
      afterFrames: [],
      ended: true,
      atEnd: ['ping finished', 'command c3: seq=1\n'],
    });
  });

  it('pushed out by maxToasts, does not come back and push out a MESSAGE toast', async () => {
    const r = await page.evaluate(() => {
      const w = window as W & { stackOf: typeof stackOf };
      const t = new w.Herald.Toaster({ hostId: 'cmd-cap', maxToasts: 3 });
      const frame = (OUTPUT: string) => t.progress({ TYPE: 'COMMAND_PROGRESS', COMMAND_ID: 'c1', ID: 1, PROGRAM: 'ping', STATE: 'running', OUTPUT } as never, () => {});
      frame('seq=1\n');
      for (const n of [1, 2, 3]) t.show({ TYPE: 'MESSAGE', TITLE: `message ${n}`, TEXT: 'x', TIMEOUT: 0 });
      const afterMessages = w.stackOf('cmd-cap');
      frame('seq=2\n');
      frame('seq=3\n');
      return { afterMessages, afterFrames: w.stackOf('cmd-cap') };
    });
    assert.deepEqual(r.afterMessages, ['message 1', 'message 2', 'message 3']);
    assert.deepEqual(r.afterFrames, ['message 1', 'message 2', 'message 3'], 'the command toast came back and pushed out a MESSAGE');
  });

  it('is remembered for the last 64 commands that left: an older one whose final notification never came shows again', async () => {
    const r = await page.evaluate(() => {
      const w = window as W & { stackOf: typeof stackOf };
      const t = new w.Herald.Toaster({ hostId: 'cmd-many', maxToasts: 100 });
      const frame = (COMMAND_ID: string) => t.progress({ TYPE: 'COMMAND_PROGRESS', COMMAND_ID, ID: 1, PROGRAM: 'ping', STATE: 'running', OUTPUT: `${COMMAND_ID}\n` } as never, () => {});
      for (let i = 0; i < 65; i++) {
        frame(`c${i}`);
        document.getElementById('cmd-many')!.shadowRoot!.querySelector<HTMLElement>('.herald-close')!.click();
      }
      const closed = w.stackOf('cmd-many');
      for (let i = 0; i < 65; i++) frame(`c${i}`);
      return { closed, afterFrames: w.stackOf('cmd-many') };
    });
    assert.deepEqual(r, { closed: [], afterFrames: ['command c0: c0\n'] });
  });

  it('maxToasts that is not a whole number ≥ 1 (NaN from a page\'s Number("five"), 0, 2.5) throws a TypeError naming it; Infinity lifts the cap', async () => {
    const r = await page.evaluate(() => {
      const { Toaster } = (window as W).Herald;
      const thrown = (maxToasts: number) => {
        try {
          new Toaster({ hostId: 'cap-bad', maxToasts });
          return 'accepted';
        } catch (err) {
          return `${(err as Error).name}: ${(err as Error).message}`;
        }
      };
      const reconfigured = (() => {
        try {
          new Toaster({ hostId: 'cap-configure' }).configure({ maxToasts: Number('five') });
          return 'accepted';
        } catch (err) {
          return (err as Error).name;
        }
      })();
      const unbounded = new Toaster({ hostId: 'cap-infinite', maxToasts: Infinity });
      for (let i = 0; i < 8; i++) unbounded.show({ TYPE: 'MESSAGE', TITLE: `m${i}`, TIMEOUT: 0 });
      const byDefault = new Toaster({ hostId: 'cap-default' });
      for (let i = 0; i < 8; i++) byDefault.show({ TYPE: 'MESSAGE', TITLE: `m${i}`, TIMEOUT: 0 });
      return { nan: thrown(Number('five')), zero: thrown(0), half: thrown(2.5), reconfigured, unbounded: unbounded.size, byDefault: byDefault.size };
    });
    assert.deepEqual(r, {
      nan: 'TypeError: maxToasts must be a whole number ≥ 1, or Infinity for no cap, got NaN',
      zero: 'TypeError: maxToasts must be a whole number ≥ 1, or Infinity for no cap, got 0',
      half: 'TypeError: maxToasts must be a whole number ≥ 1, or Infinity for no cap, got 2.5',
      reconfigured: 'TypeError',
      unbounded: 8,
      byDefault: 5,
    });
  });
});
