/** A SQLite store file in the layout of schema version 1 (one row per notification), as the store wrote it until the journal. */
import Database from 'better-sqlite3';

const V1_LAYOUT = `
  CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
  CREATE TABLE streams (
    stream TEXT PRIMARY KEY, epoch TEXT NOT NULL, last_seq INTEGER NOT NULL DEFAULT 0,
    acked INTEGER NOT NULL DEFAULT 0, retained INTEGER NOT NULL DEFAULT 0
  ) WITHOUT ROWID;
  CREATE TABLE messages (stream TEXT NOT NULL, seq INTEGER NOT NULL, json TEXT NOT NULL, expires_at INTEGER NOT NULL);
  CREATE UNIQUE INDEX messages_by_stream ON messages (stream, seq);
  CREATE INDEX messages_by_expiry ON messages (expires_at);
  CREATE TABLE idempotency (
    stream TEXT NOT NULL, key TEXT NOT NULL, seq INTEGER NOT NULL, expires_at INTEGER NOT NULL, PRIMARY KEY (stream, key)
  ) WITHOUT ROWID;
  CREATE INDEX idempotency_by_expiry ON idempotency (expires_at);
`;

/** Creates `file` with version 1's tables (in WAL mode, as the store kept it), empty; the caller fills and closes it. */
export function createV1File(file: string): Database.Database {
  const v1 = new Database(file);
  v1.pragma('journal_mode = WAL');
  v1.exec(V1_LAYOUT);
  return v1;
}
