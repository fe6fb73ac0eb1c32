/**
 * DATA_DIR/secrets.json holds the token-signing secret and the API token.
 * An operator who edits it by hand and breaks it must get an error that
 * names the file, never one that quotes what is in it: `herald start`
 * prints the message to the terminal and the service's journal.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadOptions } from '../src/server/options.js';
import { ensureSecrets, readSecrets } from '../src/server/secrets.js';

const SECRET = 'Zq8vN3kTg5Wm1XcR7pLs2HdY9bFj4AeU6oKi0QwE';
const API_TOKEN = 'Tk4mW9rXa2Lp7Qz3Vn8Bc1Hs';

test('a secrets.json that is not valid JSON is refused without quoting a character of it', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'herald-secrets-'));
  try {
    // Hand-edited: quotes forgotten, a trailing comma, a stray word, a lone value.
    const broken = [
      `{"secret": ${SECRET}, "apiToken": "${API_TOKEN}"}`,
      `{"apiToken": "${API_TOKEN}", "secret": ${SECRET}}`,
      `${SECRET}`,
      `{"secret": "${SECRET}", "apiToken": "${API_TOKEN}",}`,
      `{"secret": "${SECRET}"} ${API_TOKEN}`,
    ];
    for (const text of broken) {
      writeFileSync(join(dataDir, 'secrets.json'), text, { mode: 0o600 });
      for (const read of [() => readSecrets(dataDir), () => ensureSecrets(loadOptions({ env: {}, overrides: { dataDir } }))]) {
        assert.throws(read, (e: Error & { code?: string }) => {
          assert.equal(e.code, 'HERALD_ERR_CONFIG');
          assert.match(e.message, /secrets\.json/);
          assert.match(e.message, /not valid JSON/);
          // Not even a few characters of either: V8's message quotes up to ten around the error.
          for (const s of [SECRET, API_TOKEN]) {
            for (let i = 0; i + 4 <= s.length; i++) assert.ok(!e.message.includes(s.slice(i, i + 4)), `message quotes the file: ${e.message}`);
          }
          return true;
        }, text);
      }
    }
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('a secrets.json holding JSON that is not an object is refused by name, not with a TypeError', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'herald-secrets-'));
  try {
    for (const text of ['null', '[]', `"${SECRET}"`, '42']) {
      writeFileSync(join(dataDir, 'secrets.json'), text, { mode: 0o600 });
      assert.throws(() => readSecrets(dataDir), (e: Error & { code?: string }) => {
        assert.equal(e.code, 'HERALD_ERR_CONFIG');
        assert.match(e.message, /secrets\.json: it is not valid JSON for secrets/);
        assert.ok(!e.message.includes(SECRET.slice(0, 4)));
        return true;
      }, text);
    }
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});
