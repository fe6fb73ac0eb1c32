import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { HeraldError } from './errors.js';
import type { HeraldOptions } from './options.js';

export interface StoredSecrets {
  secret: string;
  apiToken: string;
}

export interface SecretsResult {
  options: HeraldOptions;
  /** Where generated secrets live. */
  file: string;
  /** True when this call generated and wrote at least one of them. */
  generated: boolean;
  /** Which of them this call generated (the others came from the configuration or the file). */
  generatedKeys: ReadonlyArray<keyof StoredSecrets>;
}

export function secretsFile(dataDir: string): string {
  return join(resolve(dataDir), 'secrets.json');
}

/** Reads DATA_DIR/secrets.json if present. */
export function readSecrets(dataDir: string): Partial<StoredSecrets> {
  const file = secretsFile(dataDir);
  if (!existsSync(file)) return {};
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new HeraldError('HERALD_ERR_CONFIG', `cannot read ${file}: ${(e as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    // Not JSON.parse's message: V8's quotes the text around the error ('Unexpected
    // token 'Z', ...""secret": Zq8vN3kTg5"... is not valid JSON'), ten characters
    // of the secret on the terminal and in the service's journal.
    throw new HeraldError('HERALD_ERR_CONFIG', `cannot read ${file}: it is not valid JSON (its contents are not shown: they are secrets)`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new HeraldError('HERALD_ERR_CONFIG', `cannot read ${file}: it is not valid JSON for secrets (an object with "secret" and "apiToken" was expected)`);
  }
  const { secret, apiToken } = parsed as Partial<Record<keyof StoredSecrets, unknown>>;
  return { ...(typeof secret === 'string' ? { secret } : {}), ...(typeof apiToken === 'string' ? { apiToken } : {}) };
}

/**
 * Fills `secret` and `apiToken` when the configuration left them empty: from
 * DATA_DIR/secrets.json, or generated on first start and written there with
 * owner-only permissions (0600, directory 0700). Configured values always win
 * and are never written to disk.
 */
export function ensureSecrets(options: HeraldOptions): SecretsResult {
  const file = secretsFile(options.dataDir);
  if (options.secret !== '' && options.apiToken !== '') return { options, file, generated: false, generatedKeys: [] };
  const stored = readSecrets(options.dataDir);
  const generatedKeys: Array<keyof StoredSecrets> = [];
  const next: StoredSecrets = {
    secret: stored.secret ?? '',
    apiToken: stored.apiToken ?? '',
  };
  if (options.secret === '' && next.secret === '') {
    next.secret = randomBytes(32).toString('base64url');
    generatedKeys.push('secret');
  }
  if (options.apiToken === '' && next.apiToken === '') {
    next.apiToken = randomBytes(24).toString('base64url');
    generatedKeys.push('apiToken');
  }
  const generated = generatedKeys.length > 0;
  if (generated) {
    mkdirSync(resolve(options.dataDir), { recursive: true, mode: 0o700 });
    writeFileSync(file, `${JSON.stringify(next, null, 2)}\n`, { mode: 0o600 });
    chmodSync(file, 0o600);
  }
  return {
    options: Object.freeze({
      ...options,
      secret: options.secret !== '' ? options.secret : next.secret,
      apiToken: options.apiToken !== '' ? options.apiToken : next.apiToken,
    }),
    file,
    generated,
    generatedKeys,
  };
}
