/**
 * A run that ends while the audit file cannot be written: the process is out
 * of file descriptors (EMFILE: the audit file's rollback journal is a new
 * file at every write), as a full disk would do too. Herald saw the run end,
 * so a clean restart must not call it lost to a kill or a crash: the run's
 * end is kept in memory and written once the file takes it, and a shutdown
 * that still cannot write says so, naming the runs left open. A real Herald
 * in a child node, its open-file limit lowered with prlimit(1) while it runs.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import Database from 'better-sqlite3';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { within } from './commands-fixture.js';
import { skipUnlessCI } from './helpers/capability.js';
import { startHerald, type TestServer } from './helpers/server.js';

const SRC = new URL('../src/server/', import.meta.url).href;
const commands = { commandsEnabled: true, commandsAllow: ['sleep'], commandsPath: '/usr/bin:/bin', legacyEnabled: false, store: 'memory' };

const noPrlimit = spawnSync('prlimit', ['--version']).status === 0 ? false : 'prlimit(1) (util-linux) is not installed';

type Line = Record<string, unknown>;

/** A Herald in a child node whose stdout (its JSON log lines) the test reads; SIGTERM is a clean shutdown. */
class HeraldChild {
  readonly lines: Line[] = [];
  #out = '';
  #waiters = new Set<() => void>();
  constructor(readonly child: ChildProcess) {
    child.stdout!.on('data', (c: Buffer) => {
      this.#out += c.toString();
      let nl;
      while ((nl = this.#out.indexOf('\n')) >= 0) {
        const line = this.#out.slice(0, nl);
        this.#out = this.#out.slice(nl + 1);
        try {
          this.lines.push(JSON.parse(line) as Line);
        } catch {
          this.lines.push({ msg: line });
        }
        for (const w of this.#waiters) w();
      }
    });
  }

  /** The first line (already printed or still to come) that matches, or a failure after `ms`. */
  line(match: (l: Line) => boolean, what: string, ms = 10_000): Promise<Line> {
    const seen = this.lines.find(match);
    if (seen) return Promise.resolve(seen);
    return within(new Promise<Line>((resolve) => {
      const w = () => {
        const l = this.lines.find(match);
        if (l) {
          this.#waiters.delete(w);
          resolve(l);
        }
      };
      this.#waiters.add(w);
    }), ms, `${what}; the child printed ${JSON.stringify(this.lines).slice(0, 3000)}`);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGTERM');
    await within(exited, 15_000, 'the Herald child to shut down');
  }
}

/** Starts a Herald on `dataDir` that runs `sleep <seconds>` and prints its id and the program's pid. */
async function heraldRunningSleep(dataDir: string, seconds: string): Promise<{ herald: HeraldChild; id: string }> {
  const code = `
    import { createHerald } from ${JSON.stringify(`${SRC}herald.ts`)};
    import { loadOptions } from ${JSON.stringify(`${SRC}options.ts`)};
    const options = loadOptions({ env: {}, overrides: { ...${JSON.stringify(commands)}, host: '127.0.0.1', port: 0,
      dataDir: ${JSON.stringify(dataDir)}, logLevel: 'info', logPretty: false, secret: 'unwritable-audit-secret-0123456789abcdef', apiToken: 'unwritable-audit-token-0123456789' } });
    const herald = await createHerald(options);
    const info = await herald.commands.start({ aid: 7, program: 'sleep', args: [${JSON.stringify(seconds)}], door: 'http', requestedBy: 'test' });
    process.on('SIGTERM', () => { herald.close().finally(() => process.exit(0)); });
    setInterval(() => {}, 1000);
    for (let i = 0; i < 100 && (await herald.commands.get(info.id))?.state !== 'running'; i++) await new Promise((r) => setTimeout(r, 20));
    console.log(JSON.stringify({ started: info.id }));
  `;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  const herald = new HeraldChild(child);
  const started = await herald.line((l) => typeof l.started === 'string', 'the Herald child to start its command', 30_000);
  return { herald, id: started.started as string };
}

/**
 * Lowers `pid`'s soft open-file limit to 3: it keeps every descriptor it has, and opens nothing
 * more (the kernel gives the lowest free number, and refuses one at or past the limit; 0, 1 and
 * 2 are its standard streams, open for its whole life).
 */
function exhaustDescriptors(pid: number): void {
  execFileSync('prlimit', ['--pid', String(pid), '--nofile=3:']);
}

function restoreDescriptors(pid: number): void {
  const hard = execFileSync('prlimit', ['--pid', String(pid), '--nofile', '--output=HARD', '--noheadings']).toString().trim();
  execFileSync('prlimit', ['--pid', String(pid), `--nofile=${hard}:`]);
}

const cannotWrite = (l: Line) => typeof l.msg === 'string' && l.msg.startsWith('command audit file cannot be written (');
const finished = (id: string) => (l: Line) => l.msg === 'command finished' && l.id === id;

describe('a run that ends while the audit file cannot be written (EMFILE)', { skip: skipUnlessCI(noPrlimit) }, () => {
  let dataDir: string;
  let herald: HeraldChild | undefined;
  let fresh: TestServer | undefined;
  beforeEach(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'herald-audit-unwritable-'));
  });
  afterEach(async () => {
    if (herald && herald.child.exitCode === null) herald.child.kill('SIGKILL');
    herald = undefined;
    await fresh?.close();
    fresh = undefined;
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('is written once the file can be again, and a clean restart finds it succeeded, not lost', async () => {
    const run = await heraldRunningSleep(dataDir, '0.5');
    herald = run.herald;
    exhaustDescriptors(herald.child.pid!);
    await herald.line(finished(run.id), 'the run to end');
    // Whatever Herald then does with the records, it said that it could not write them.
    const warned = await herald.line((l) => cannotWrite(l) || l.msg === 'command audit sink failed', 'a warning that the audit file cannot be written');
    assert.match(JSON.stringify(warned), /too many open files|unable to open/i);
    restoreDescriptors(herald.child.pid!);
    await herald.stop();
    const db = new Database(join(dataDir, 'commands-audit.sqlite'), { readonly: true });
    const open = db.prepare('SELECT id FROM command_runs').all();
    db.close();
    assert.deepEqual(open, [], 'no run left open in the file');

    fresh = await startHerald(commands, { dataDir });
    const got = await fresh.api('GET', `/api/v1/commands/${run.id}`);
    assert.equal(got.status, 200, JSON.stringify(got.body));
    assert.deepEqual([got.body.state, got.body.source, got.body.error], ['succeeded', 'audit', undefined], JSON.stringify(got.body));
  });

  it('a shutdown that still cannot write says which ended runs stay open in the file', async () => {
    const run = await heraldRunningSleep(dataDir, '0.5');
    herald = run.herald;
    exhaustDescriptors(herald.child.pid!);
    await herald.line(finished(run.id), 'the run to end');
    await herald.line((l) => cannotWrite(l) || l.msg === 'command audit sink failed', 'a warning that the audit file cannot be written');
    await herald.stop();
    const said = await herald.line((l) => typeof l.msg === 'string' && l.msg.startsWith('command audit file cannot be written at shutdown'), 'the shutdown to say what it could not write');
    assert.deepEqual(said.runsLeftOpen, [run.id]);
    assert.match(said.msg as string, /1 ended runs stay open in it, and the next start will report them lost although this Herald saw them end/);
  });
});
