/**
 * deploy/herald.service, as far as a machine without systemd as init can
 * check it: systemd-analyze verifies the unit (no unknown directive, the
 * node it runs exists), and Herald is run the way the unit runs it — its
 * ExecStart (dist/cli/main.js start --config) with deploy/herald.json, as an
 * unprivileged user, with NoNewPrivileges and the unit's capabilities, put in
 * place by setpriv (util-linux) — to show that it starts, writes its state
 * directory, runs ping as a background command only because of the unit's
 * AmbientCapabilities=CAP_NET_RAW (NoNewPrivileges ignores ping's own file
 * capability), and exits 0 on SIGTERM.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import { skipUnlessCI } from './helpers/capability.js';
import { restartablePort } from './helpers/ports.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const UNIT = join(ROOT, 'deploy/herald.service');
const SYSTEMD_ANALYZE = '/usr/bin/systemd-analyze';
const SETPRIV = '/usr/bin/setpriv';
/** Stands in for the unit's User=herald, which a test machine does not have. */
const NOBODY = { uid: 65534, gid: 65534 };

/** The [Service] directives of the unit, by name (the last one wins, as in systemd). */
function unitDirectives(): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of readFileSync(UNIT, 'utf8').split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line.trim());
    if (m) out.set(m[1]!, m[2]!);
  }
  return out;
}

describe('deploy/herald.service', () => {
  const noSystemdAnalyze = skipUnlessCI(!existsSync(SYSTEMD_ANALYZE) && `${SYSTEMD_ANALYZE} is missing (Debian's systemd package)`);

  it('passes systemd-analyze verify (no unknown directive, a node that exists)', { skip: noSystemdAnalyze }, () => {
    // The unit names /usr/bin/node (Debian's nodejs); where node lives elsewhere, verify this node instead.
    const dir = mkdtempSync(join(tmpdir(), 'herald-unit-'));
    try {
      const copy = join(dir, 'herald.service');
      const text = readFileSync(UNIT, 'utf8');
      assert.match(text, /^ExecStart=\/usr\/bin\/node \/opt\/herald\/dist\/cli\/main\.js start --config \/etc\/herald\/herald\.json$/m);
      writeFileSync(copy, text.replace('ExecStart=/usr/bin/node ', `ExecStart=${process.execPath} `));
      const r = spawnSync(SYSTEMD_ANALYZE, ['verify', copy], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '/usr/bin:/bin', SYSTEMD_LOG_LEVEL: 'warning' } });
      assert.equal(`${r.stdout}${r.stderr}`.trim(), '', 'systemd-analyze has nothing to say');
      assert.equal(r.status, 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("allows io_uring, as the unit's comment says: @system-service holds @aio, which holds the io_uring calls", { skip: noSystemdAnalyze }, () => {
    // The comment once said io_uring was outside the filter (and that was why EPERM): it is inside.
    assert.equal(unitDirectives().get('SystemCallFilter'), '@system-service');
    const list = (set: string) => {
      const r = spawnSync(SYSTEMD_ANALYZE, ['syscall-filter', set], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      return r.stdout.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
    };
    assert.ok(list('@system-service').includes('@aio'), '@system-service includes @aio');
    const aio = list('@aio');
    for (const call of ['io_uring_setup', 'io_uring_enter', 'io_uring_register']) assert.ok(aio.includes(call), `@aio lists ${call}`);
  });

  const root = process.getuid?.() === 0;
  const cannot = skipUnlessCI(!root ? 'the service run needs root (setpriv switches to an unprivileged user)' : !existsSync(SETPRIV) ? `the service run needs ${SETPRIV} (util-linux)` : !existsSync(join(ROOT, 'dist/cli/main.js')) ? 'the service run needs dist/cli/main.js: npm run build' : false);

  describe("Herald run as the unit runs it (its user, NoNewPrivileges, its capabilities)", { skip: cannot }, () => {
    const running = new Set<ChildProcess>();
    const dirs: string[] = [];
    after(async () => {
      for (const child of running) {
        if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
          process.kill(child.pid, 'SIGKILL');
          await once(child, 'exit');
        }
      }
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    });

    /**
     * Starts the unit's ExecStart under setpriv. caps: 'unit', the unit's two capability lines;
     * 'removed', both lines left out (the full bounding set, nothing ambient); 'none',
     * CapabilityBoundingSet= empty, a common hardening line.
     */
    async function startLikeUnit(caps: 'unit' | 'removed' | 'none') {
      const unit = unitDirectives();
      assert.equal(unit.get('User'), 'herald');
      assert.equal(unit.get('NoNewPrivileges'), 'yes');
      assert.equal(unit.get('StateDirectory'), 'herald');
      const ambient = unit.get('AmbientCapabilities');
      assert.equal(ambient, 'CAP_NET_RAW');
      assert.equal(unit.get('CapabilityBoundingSet'), 'CAP_NET_RAW');
      const cap = ambient!.replace(/^CAP_/, '').toLowerCase();

      const dataDir = mkdtempSync(join(tmpdir(), 'herald-state-'));
      dirs.push(dataDir);
      // StateDirectory=herald with StateDirectoryMode=0700: owned by the service's user.
      chownSync(dataDir, NOBODY.uid, NOBODY.gid);
      chmodSync(dataDir, 0o700);
      const port = await restartablePort();
      const legacyPort = await restartablePort();
      const config = JSON.parse(readFileSync(join(ROOT, 'deploy/herald.json'), 'utf8')) as Record<string, unknown>;
      assert.equal(config.dataDir, '/var/lib/herald', 'the unit\'s StateDirectory');
      const confDir = mkdtempSync(join(tmpdir(), 'herald-etc-'));
      dirs.push(confDir);
      chmodSync(confDir, 0o755);
      const confFile = join(confDir, 'herald.json');
      writeFileSync(confFile, JSON.stringify({ ...config, port, legacyPort, dataDir, commandsCwd: dataDir, publicUrl: `https://127.0.0.1:${port}/herald`, allowedOrigins: [`https://127.0.0.1:${port}`], logLevel: 'warn' }));
      chmodSync(confFile, 0o644);

      const setpriv = [
        '--reuid', String(NOBODY.uid), '--regid', String(NOBODY.gid), '--clear-groups', '--no-new-privs',
        ...(caps === 'unit' ? [`--inh-caps=+${cap}`, `--ambient-caps=+${cap}`, `--bounding-set=-all,+${cap}`] : caps === 'none' ? ['--inh-caps=-all', '--bounding-set=-all'] : ['--inh-caps=-all']),
      ];
      // systemd starts a service with a clean environment: nothing of the test's.
      const child = spawn(SETPRIV, [...setpriv, process.execPath, join(ROOT, 'dist/cli/main.js'), 'start', '--config', confFile], {
        cwd: dataDir, env: { PATH: '/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin', NODE_ENV: 'production', LANG: 'C.UTF-8' }, stdio: ['ignore', 'pipe', 'pipe'],
      });
      running.add(child);
      let output = '';
      child.stdout!.on('data', (c: Buffer) => { output += c.toString(); });
      child.stderr!.on('data', (c: Buffer) => { output += c.toString(); });
      const base = `http://127.0.0.1:${port}`;
      const deadline = Date.now() + 20_000;
      for (;;) {
        if (child.exitCode !== null) assert.fail(`herald exited with ${child.exitCode}: ${output}`);
        const up = await fetch(`${base}/healthz`).then((r) => r.ok, () => false);
        if (up) break;
        if (Date.now() > deadline) assert.fail(`herald did not answer on ${port}: ${output}`);
        await delay(100);
      }
      const secrets = join(dataDir, 'secrets.json');
      const apiToken = (JSON.parse(readFileSync(secrets, 'utf8')) as { apiToken: string }).apiToken;
      const api = async (method: string, path: string, body?: unknown) => {
        const res = await fetch(`${base}${path}`, { method, headers: { authorization: `Bearer ${apiToken}`, ...(body ? { 'content-type': 'application/json' } : {}) }, ...(body ? { body: JSON.stringify(body) } : {}) });
        return { status: res.status, body: (await res.json()) as any };
      };
      return { child, dataDir, secrets, api, output: () => output };
    }

    async function ping(api: Awaited<ReturnType<typeof startLikeUnit>>['api']) {
      const started = await api('POST', '/api/v1/commands', { aid: 1, program: 'ping', args: ['-c', '1', '-W', '2', '127.0.0.1'] });
      assert.equal(started.status, 201, JSON.stringify(started.body));
      const done = await api('GET', `/api/v1/commands/${started.body.id}?wait=20`);
      return done.body as { state: string; EXIT_CODE: number | null; output: string };
    }

    it('starts as the unprivileged user with no new privileges, keeps its state in the data dir, runs ping, and exits 0 on SIGTERM', async () => {
      const h = await startLikeUnit('unit');
      const status = readFileSync(`/proc/${h.child.pid}/status`, 'utf8');
      assert.match(status, new RegExp(`^Uid:\\s+${NOBODY.uid}\\s+${NOBODY.uid}\\s+${NOBODY.uid}`, 'm'));
      assert.match(status, /^NoNewPrivs:\s+1$/m);
      const st = statSync(h.secrets);
      assert.equal(st.uid, NOBODY.uid);
      assert.equal(st.mode & 0o777, 0o600, 'generated secrets are the service user\'s alone');
      assert.ok(existsSync(join(h.dataDir, 'herald.sqlite')), 'the SQLite store is in the state directory');
      const run = await ping(h.api);
      assert.equal(run.state, 'succeeded', run.output);
      assert.equal(run.EXIT_CODE, 0);
      const exit = once(h.child, 'exit');
      process.kill(h.child.pid!, 'SIGTERM');
      const [code, signal] = (await exit) as [number | null, NodeJS.Signals | null];
      assert.deepEqual({ code, signal }, { code: 0, signal: null }, h.output());
    });

    it('without the unit\'s CAP_NET_RAW lines, NoNewPrivileges makes ping fail unless ping_group_range lets the user open ICMP sockets', async () => {
      const [low, high] = readFileSync('/proc/sys/net/ipv4/ping_group_range', 'utf8').trim().split(/\s+/).map(Number) as [number, number];
      const icmpSockets = NOBODY.gid >= low && NOBODY.gid <= high;
      const h = await startLikeUnit('removed');
      const run = await ping(h.api);
      if (icmpSockets) {
        assert.equal(run.state, 'succeeded', `ping_group_range ${low} ${high} covers the group: ${run.output}`);
      } else {
        assert.equal(run.state, 'failed', run.output);
        assert.match(run.output, /cap_net_raw/, 'ping says what it lacks');
      }
    });

    it('with an empty CapabilityBoundingSet=, ping (a file with a capability) cannot even start: spawn EPERM', async () => {
      const h = await startLikeUnit('none');
      const run = (await ping(h.api)) as { state: string; error?: string };
      assert.equal(run.state, 'failed');
      assert.equal(run.error, 'spawn EPERM');
    });
  });
});
