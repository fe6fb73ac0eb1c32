/**
 * The first-start hint of `herald start` as a real child process: the lines
 * it prints are meant to be pasted into a shell, so they must still work when
 * the data dir's path has a space (or a quote) in it.
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { exited, LineReader, runCli, spawnCli } from './helpers/cli.js';
import { restartablePort } from './helpers/ports.js';

describe('herald start: the first-start hint', () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-cli-hint-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('the export line, pasted into sh, sets HERALD_API_TOKEN even with a space and a quote in the data dir', async () => {
    const dataDir = join(dir, "panel's data");
    const child = spawnCli(['start', '--data-dir', dataDir, '--port', '0', '--no-legacy', '--log-level', 'silent']);
    const stderr = new LineReader(child.stderr);
    try {
      const line = (await stderr.next((l) => l.includes('export HERALD_API_TOKEN='))).trim();
      const r = spawnSync('sh', ['-c', `${line}\nprintf '%s' "$HERALD_API_TOKEN"`], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      const secrets = JSON.parse(readFileSync(join(dataDir, 'secrets.json'), 'utf8')) as { apiToken: string };
      assert.equal(r.stdout, secrets.apiToken, `${line}\n${r.stderr}`);
      // The other hint lines name the same data dir, quoted the same way.
      const tokenLine = await stderr.next((l) => l.includes('herald token --aid 1'));
      const args = spawnSync('sh', ['-c', `set -- ${tokenLine.replace(/#.*$/, '').trim()}\nprintf '%s\\n' "$@"`], { encoding: 'utf8' });
      assert.deepEqual(args.stdout.trim().split('\n'), ['herald', 'token', '--aid', '1', '--data-dir', dataDir]);
    } finally {
      child.kill('SIGTERM');
      await exited(child);
    }
  });

  test('the send line, run as printed, reaches a server started on a port of its own (--port), not the default one', async () => {
    const dataDir = join(dir, 'own-port');
    const child = spawnCli(['start', '--data-dir', dataDir, '--port', '0', '--no-legacy', '--log-level', 'silent']);
    const stderr = new LineReader(child.stderr);
    try {
      const line = (await stderr.next((l) => l.includes('herald send --aid 1'))).trim();
      const args = spawnSync('sh', ['-c', `set -- ${line}\nprintf '%s\\n' "$@"`], { encoding: 'utf8' }).stdout.trim().split('\n');
      assert.equal(args[0], 'herald', line);
      // As an operator would run it: no HERALD_* variables, from another directory.
      const sent = await runCli(args.slice(1), { cwd: dir });
      assert.equal(sent.code, 0, `${line}\n${sent.stderr}`);
      assert.match(sent.stdout, /^admin 1: delivered to 0 tabs; queued/);
    } finally {
      child.kill('SIGTERM');
      await exited(child);
    }
  });

  // Herald started with --config FILE, which sets one credential (the other is generated): the
  // lines lacked --config, so `herald send` found no API token (the one the file sets) and
  // `herald token` no signing secret, run anywhere but with HERALD_CONFIG set.
  for (const configured of ['apiToken', 'secret'] as const) {
    test(`started with --config FILE that sets ${configured}: every line, run as printed from another directory, works`, async () => {
      const confDir = join(dir, `config-${configured}`);
      mkdirSync(confDir, { mode: 0o700 });
      // A port of its own, which only the config file names: the send line finds it there, without --url.
      const port = await restartablePort();
      const credential = configured === 'apiToken' ? { apiToken: 'backend-token-0123456789abcdef' } : { secret: '0123456789abcdef0123456789abcdef-signing' };
      writeFileSync(join(confDir, 'herald.json'), JSON.stringify({ ...credential, port, legacyEnabled: false, store: 'memory', dataDir: 'data' }), { mode: 0o600 });
      // A relative --config, from the config's directory: the lines name it by its absolute path.
      const child = spawnCli(['start', '--config', 'herald.json', '--log-level', 'silent'], { cwd: confDir });
      const stderr = new LineReader(child.stderr);
      try {
        await stderr.next((l) => l.startsWith('Your backend'));
        const lines = stderr.lines.filter((l) => /^ {2}herald (token|send) /.test(l)).map((l) => l.replace(/#.*$/, '').trim());
        assert.equal(lines.length, 2, stderr.text());
        for (const line of lines) {
          const args = spawnSync('sh', ['-c', `set -- ${line}\nprintf '%s\\n' "$@"`], { encoding: 'utf8' }).stdout.trim().split('\n');
          const r = await runCli(args.slice(1), { cwd: tmpdir() });
          assert.equal(r.code, 0, `${line}\n${r.stderr}`);
          assert.match(r.stdout, line.startsWith('herald send') ? /^admin 1: delivered to 0 tabs; queued/ : /^[\w-]+\.[\w-]+\.[\w-]+\n$/);
          assert.ok(line.includes(` --config ${join(confDir, 'herald.json')} `), line);
          assert.doesNotMatch(line, /--url/);
        }
      } finally {
        child.kill('SIGTERM');
        await exited(child);
      }
    });
  }

  test('with publicUrl set, the token line names the endpoint browsers use there, not the listener', async () => {
    const dataDir = join(dir, 'public-url');
    const child = spawnCli(['start', '--data-dir', dataDir, '--port', '0', '--no-legacy', '--log-level', 'silent', '--public-url', 'https://panel.example.net/herald/']);
    const stderr = new LineReader(child.stderr);
    try {
      const tokenLine = await stderr.next((l) => l.includes('herald token --aid 1'));
      assert.match(tokenLine, /# a browser token for wss:\/\/panel\.example\.net\/herald\/ws\/admin\?token=…$/);
      // The send line still goes to the listener: the API is not served on the public side.
      const sendLine = await stderr.next((l) => l.includes('herald send --aid 1'));
      assert.doesNotMatch(sendLine, /panel\.example\.net/);
    } finally {
      child.kill('SIGTERM');
      await exited(child);
    }
  });

  test('with a resolver other than token (http: the panel\'s session cookie is the credential), there is no token line', async () => {
    const dataDir = join(dir, 'http-resolver');
    const child = spawnCli(['start', '--data-dir', dataDir, '--port', '0', '--no-legacy', '--log-level', 'silent',
      '--set', 'authResolver=http', '--set', 'httpResolverUrl=http://127.0.0.1:9/session']);
    const stderr = new LineReader(child.stderr);
    try {
      // The export line is the hint's last: everything before it has been printed.
      await stderr.next((l) => l.includes('export HERALD_API_TOKEN='));
      assert.ok(stderr.lines.some((l) => l.includes('herald send --aid 1')), stderr.text());
      assert.ok(!stderr.lines.some((l) => l.includes('herald token') || l.includes('browser token')), stderr.text());
    } finally {
      child.kill('SIGTERM');
      await exited(child);
    }
  });
});
