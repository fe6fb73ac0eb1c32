/**
 * The demo page's script (served as /demo.js after /herald.js): sign in as an
 * admin or user id of your choice (a token minted by POST /demo/token, which
 * exists only in demo mode), watch the connection state and the frames, and
 * send yourself a notification through the HTTP API (POST /demo/send).
 *
 * It uses the script-tag build's globals, as a panel page would.
 */
import type * as HeraldApi from '../index.js';
import type { HeraldClient } from '../herald-client.js';

type HeraldGlobal = typeof HeraldApi & { connect: typeof HeraldApi.connect; client: HeraldClient | undefined };
const Herald = (globalThis as unknown as { Herald: HeraldGlobal }).Herald;

const SESSION_KEY = 'herald-demo:signin';
const MAX_LOG = 200;

interface SignIn {
  kind: 'admin' | 'user';
  id: number;
  token: string;
}

function $<T extends HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`demo page: #${id} is missing`);
  return el as T;
}

let client: HeraldClient | undefined;
let who: SignIn | undefined;

function log(direction: string, value: unknown): void {
  const list = $<HTMLOListElement>('log');
  const li = document.createElement('li');
  const time = document.createElement('time');
  time.textContent = new Date().toLocaleTimeString();
  const dir = document.createElement('span');
  dir.className = 'dir';
  dir.textContent = direction;
  const code = document.createElement('code');
  code.textContent = typeof value === 'string' ? value : JSON.stringify(value);
  li.append(time, ' ', dir, ' ', code);
  list.prepend(li);
  while (list.children.length > MAX_LOG) list.lastElementChild?.remove();
}

function setState(state: string): void {
  const el = $('state');
  el.textContent = state;
  el.dataset.state = state;
}

async function postJson(path: string, body: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const json = (await res.json().catch(() => ({}))) as Record<string, unknown>;
  if (!res.ok) {
    const err = json.error as { message?: string } | undefined;
    throw new Error(err?.message ?? `HTTP ${res.status}`);
  }
  return json;
}

async function signIn(kind: 'admin' | 'user', id: number): Promise<void> {
  const { token } = await postJson('/demo/token', { kind, id });
  if (typeof token !== 'string') throw new Error('no token in the answer');
  start({ kind, id, token });
}

function start(s: SignIn): void {
  void client?.close();
  who = s;
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(s));
  $('who').textContent = `${s.kind} ${s.id}`;
  $('cli').textContent = `npx herald send --${s.kind === 'admin' ? 'aid' : 'uid'} ${s.id} --title Hi --text 'Just<br/>some<br/>text'`;
  $('signin').hidden = true;
  $('session').hidden = false;
  const c = Herald.connect({ kind: s.kind, token: s.token, url: location.origin });
  client = c;
  c.events.on('state', (state) => {
    if (client === c) setState(state);
  });
  c.events.on('frame', (frame) => log('←', frame));
  c.events.on('connected', ({ welcome, resumed }) => log('•', `connected as ${welcome.KIND} ${welcome.ID}${resumed ? ' (resumed)' : ''}, heartbeat ${welcome.HEARTBEAT} ms`));
  c.events.on('reconnecting', ({ attempt, delayMs }) => log('•', `reconnecting (attempt ${attempt}) in ${delayMs} ms`));
  c.events.on('reset', ({ stream, reason }) => log('•', `the ${stream} stream was reset (${reason}): some notifications may be missing`));
  c.events.on('rejected', ({ code, reason }) => {
    log('•', `rejected (${code} ${reason}): sign in again`);
    sessionStorage.removeItem(SESSION_KEY);
    $('signin').hidden = false;
  });
  c.events.on('event', (m) => log('EVENT', m));
}

async function send(): Promise<void> {
  if (!who) return;
  const out = $('send-result');
  out.textContent = '…';
  try {
    const answer = await postJson('/demo/send', {
      kind: who.kind,
      id: who.id,
      title: $<HTMLInputElement>('title').value,
      text: $<HTMLTextAreaElement>('text').value,
      extra: $<HTMLInputElement>('extra').value,
    });
    out.textContent = JSON.stringify(answer);
  } catch (e) {
    out.textContent = `failed: ${(e as Error).message}`;
  }
}

function init(): void {
  $('signin').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const kind = $<HTMLSelectElement>('kind').value === 'user' ? 'user' : 'admin';
    signIn(kind, Number($<HTMLInputElement>('id').value)).catch((e: Error) => log('•', `sign-in failed: ${e.message}`));
  });
  $('send').addEventListener('submit', (ev) => {
    ev.preventDefault();
    void send();
  });
  $('disconnect').addEventListener('click', () => {
    void client?.close();
  });
  $('reconnect').addEventListener('click', () => client?.connect());
  $('desktop').addEventListener('click', () => {
    void client?.desktop.enable().then((p) => log('•', `desktop notifications: ${p}`));
  });
  $('signout').addEventListener('click', () => {
    void client?.close();
    client = undefined;
    sessionStorage.removeItem(SESSION_KEY);
    $('signin').hidden = false;
    $('session').hidden = true;
    setState('idle');
  });
  // Page code extends the dispatcher exactly as it did with the old daemon.
  (globalThis as unknown as { AMessageChecker: { extend(e: { TYPE: string; CALLBACK: (m: unknown) => void }): void } }).AMessageChecker.extend({
    TYPE: 'DEMO_CUSTOM',
    CALLBACK: (m) => log('DEMO_CUSTOM handler', m),
  });

  const params = new URLSearchParams(location.search);
  const aid = Number(params.get('aid'));
  const uid = Number(params.get('uid'));
  if (Number.isSafeInteger(aid) && aid > 0) {
    void signIn('admin', aid).catch((e: Error) => log('•', `sign-in failed: ${e.message}`));
    return;
  }
  if (Number.isSafeInteger(uid) && uid > 0) {
    void signIn('user', uid).catch((e: Error) => log('•', `sign-in failed: ${e.message}`));
    return;
  }
  const saved = sessionStorage.getItem(SESSION_KEY);
  if (saved) {
    try {
      start(JSON.parse(saved) as SignIn);
    } catch {
      sessionStorage.removeItem(SESSION_KEY);
    }
  }
}

init();
