/**
 * The built-in UI: a stack of toasts in a shadow root (see styles.ts), one
 * per MESSAGE, plus one live toast per running background command.
 */
import type { NotificationObject } from '../protocol/frames.js';
import type { CommandProgressFrame, CommandState } from '../protocol/commands.js';
import { asText, clipText, clipTitle, isPlainTextFormat, isSafeUrl, MAX_TEXT_CHARS, sanitizeHtml, withoutBidiControls, withShortClusters } from './sanitize.js';
import { TOAST_CSS } from './styles.js';
import { headOf, tailOf } from '../protocol/text-cut.js';
import { createElement, listenToDocument, pageBody, rootElement, stillLoading } from './dom.js';
import { TIMER_MAX_MS } from './backoff.js';

export interface ToasterOptions {
  /** Where the toast stack is attached. Default: document.body. */
  parent?: HTMLElement;
  /** Id of the host element (for theming with CSS custom properties). Default "herald-toasts". */
  hostId?: string;
  /** At most this many toasts at once (a whole number ≥ 1, or Infinity for no cap); the oldest goes first. Default 5. */
  maxToasts?: number;
  /** Auto-dismiss after this many ms when a MESSAGE has no TIMEOUT. 0 (or more than 2147483647) = stay until closed. Default 15000. */
  timeoutMs?: number;
  /** Text of the EXTRA link. Default "Open". */
  linkLabel?: string;
  /** Accessible label of the close button. Default "Close". */
  closeLabel?: string;
  /** Text of a command toast's cancel button. Default "Cancel". */
  cancelLabel?: string;
  /** Accessible name of the toasts' region, which screen readers say as a toast arrives. Default "Notifications". */
  regionLabel?: string;
  /**
   * What a command toast says of each state after the program's name, by
   * STATE; those not given keep their default (queued, running, done,
   * failed, timed out, cancelled). The page's language, like the labels
   * above: the state is what the live region announces.
   */
  stateLabels?: Partial<Record<CommandState, string>>;
  /** Output kept in a command toast, in characters (the tail). Default 4000. */
  outputTail?: number;
  /**
   * Longest TEXT parsed, in characters; a longer one shows its head and tail
   * around `…`. Default 10000: parsing costs the tab's main thread, and some
   * markup far more than its length suggests (sanitize.ts, MAX_TEXT_CHARS).
   */
  maxTextChars?: number;
}

/**
 * Longest TITLE (and a command's PROGRAM, or a STATE of its own) put on a
 * toast, in characters; a longer one ends in `…`. Far more than a toast
 * shows, and a bound on what the tab lays out. One grapheme cluster costs
 * more, in time growing with the square of its length (a letter followed by
 * 100,000 combining marks blocked the tab for 27 s): every field a toast
 * shows goes through withShortClusters (sanitize.ts).
 */
const MAX_TITLE_CHARS = 1000;

/** A TITLE, PROGRAM or STATE as a toast shows it: cut, bidi controls out, no long cluster. */
function shownTitle(value: unknown): string {
  return withShortClusters(withoutBidiControls(clipTitle(asText(value), MAX_TITLE_CHARS)));
}

/**
 * Longest ICON symbol put on a toast, in UTF-16 units: the longest emoji
 * sequences (a kiss of two people with skin tones, a Scottish flag) are 14
 * or 15. A grapheme has no bound of its own: a letter with 100,000
 * combining marks is one, and laying it out blocked the tab for 31 s.
 */
const MAX_ICON_CHARS = 16;

const TERMINAL: ReadonlySet<CommandState> = new Set<CommandState>(['succeeded', 'failed', 'timed_out', 'cancelled']);
const STATE_LABEL: Record<CommandState, string> = {
  queued: 'queued',
  running: 'running',
  succeeded: 'done',
  failed: 'failed',
  timed_out: 'timed out',
  cancelled: 'cancelled',
};

/**
 * The state labels: the defaults, each replaced by the page's own where it
 * gave a string for a known state (a page's `{__proto__: …}` or a number
 * changes nothing).
 */
function stateLabels(given: Partial<Record<CommandState, string>> | undefined): Record<CommandState, string> {
  const labels = { ...STATE_LABEL };
  if (given === undefined || given === null) return labels;
  for (const state of Object.keys(STATE_LABEL) as CommandState[]) {
    const label = Object.hasOwn(given, state) ? given[state] : undefined;
    if (typeof label === 'string') labels[state] = label;
  }
  return labels;
}

/**
 * TIMEOUT of a MESSAGE, in milliseconds; 0, or more than a timer can wait
 * (Infinity too: the string "Infinity" or "1e999"; a JSON number 1e999 reaches a tab through
 * Herald as null, the default), keeps the toast until closed
 * (#autoDismiss). Anything that is not a non-negative number falls back to
 * the default.
 */
function timeoutOf(message: NotificationObject, fallback: number): number {
  const t = message.TIMEOUT;
  const n = typeof t === 'string' && t.trim() !== '' ? Number(t) : t;
  // Written so that NaN fails.
  return typeof n === 'number' && n >= 0 ? n : fallback;
}

/** One constructed sheet shared by every toast stack of the page. */
let toastSheet: CSSStyleSheet | undefined;

/**
 * Styles the shadow root with a constructed stylesheet where the browser has
 * them (Chrome 73, Firefox 101, Safari 16.4). A page whose
 * Content-Security-Policy has no 'unsafe-inline' in style-src blocks a
 * <style> element, in a shadow root too: the toasts then lay out unstyled at
 * the end of <body>, not fixed in the corner. CSP does not apply to a
 * constructed sheet. Returns false where it must be a <style> element.
 */
function adoptToastStyles(root: ShadowRoot): boolean {
  if (!('adoptedStyleSheets' in root) || typeof CSSStyleSheet !== 'function' || typeof CSSStyleSheet.prototype.replaceSync !== 'function') return false;
  try {
    if (!toastSheet) {
      const sheet = new CSSStyleSheet();
      sheet.replaceSync(TOAST_CSS);
      toastSheet = sheet;
    }
    root.adoptedStyleSheets = [toastSheet];
    return true;
  } catch {
    return false;
  }
}

/** The host element's id when the options name none. */
export const DEFAULT_HOST_ID = 'herald-toasts';

type ResolvedOptions = Required<Omit<ToasterOptions, 'parent' | 'stateLabels'>> & { parent: HTMLElement | undefined; stateLabels: Record<CommandState, string> };

/** The options with their defaults. Throws a TypeError for a `maxToasts` that is not a whole number ≥ 1 or Infinity. */
function resolveOptions(options: ToasterOptions): ResolvedOptions {
  const maxToasts = options.maxToasts ?? 5;
  // NaN (a page's Number('five')) lifted the cap: `length > NaN` is never true. 0 would
  // push out each toast as it is added, the way to show none being `toasts: false`.
  if (!(maxToasts >= 1 && (Number.isInteger(maxToasts) || maxToasts === Infinity))) {
    throw new TypeError(`maxToasts must be a whole number ≥ 1, or Infinity for no cap, got ${String(options.maxToasts)}`);
  }
  return {
    parent: options.parent,
    hostId: options.hostId ?? DEFAULT_HOST_ID,
    maxToasts,
    timeoutMs: options.timeoutMs ?? 15_000,
    linkLabel: options.linkLabel ?? 'Open',
    closeLabel: options.closeLabel ?? 'Close',
    cancelLabel: options.cancelLabel ?? 'Cancel',
    regionLabel: options.regionLabel ?? 'Notifications',
    stateLabels: stateLabels(options.stateLabels),
    outputTail: options.outputTail ?? 4000,
    maxTextChars: options.maxTextChars ?? MAX_TEXT_CHARS,
  };
}

interface CommandToast {
  element: HTMLElement;
  /** Where Cancel goes: the client of the command's latest frame (a client that was closed and replaced no longer sends). */
  onCancel: (commandId: string) => void;
  output: HTMLElement;
  state: HTMLElement;
  spinner: HTMLElement;
  cancel: HTMLButtonElement;
  close: HTMLElement;
  text: string;
  /**
   * False once it left the stack, closed by the person or pushed out past
   * maxToasts: later frames update it off screen and never put it back.
   * Put back, it showed again each ~500 ms frame (a running command's toast
   * could not be closed), its output so far gone, and pushed out the oldest
   * MESSAGE toast, which nobody had closed. The person sees how it ended in
   * its final notification, a toast of its own (endCommand).
   */
  shown: boolean;
}

/**
 * Command toasts that left the stack (CommandToast.shown) remembered until
 * their final notification, at most: a command whose final notification
 * never reaches this tab is forgotten once this many left after it (a later
 * frame of it makes a new toast).
 */
const MAX_LEFT_COMMANDS = 64;

export class Toaster {
  #options: ResolvedOptions;
  #host: HTMLElement | undefined;
  #root: ShadowRoot | undefined;
  /** The host waits for <body> to exist (a notification arrived while the parser was still in <head>). */
  #awaitingBody = false;
  readonly #commands = new Map<string, CommandToast>();
  /**
   * The auto-dismiss timer of each MESSAGE toast that has one. A toast that
   * leaves early (pushed out past maxToasts, closed, cleared) stops its timer:
   * a pending timer holds the toast, its subtree and its listeners until it
   * fires, and a sender's TIMEOUT may be an hour.
   */
  readonly #timers = new WeakMap<HTMLElement, ReturnType<typeof setTimeout>>();
  /**
   * The page element that had the keyboard focus before it entered the
   * stack: focus goes back there when the last toast holding it leaves,
   * rather than falling to <body> and the start of the page (WCAG 2.4.3).
   */
  #focusBefore: HTMLElement | undefined;
  #titleIds = 0;

  constructor(options: ToasterOptions = {}) {
    this.#options = resolveOptions(options);
  }

  /** Id of the host element (the `hostId` option). */
  get hostId(): string {
    return this.#options.hostId;
  }

  /**
   * Takes new options, for the toasts that come from now on (those on
   * screen stay as they are): a client of the page that gives toast options
   * for a stack another client made (one stack per host id, herald-client.ts).
   * The stack moves to the new `parent` and takes the new `regionLabel`;
   * `hostId` stays.
   */
  configure(options: ToasterOptions): void {
    this.#options = { ...resolveOptions(options), hostId: this.#options.hostId };
    const host = this.#host;
    if (!host) return;
    host.setAttribute('aria-label', this.#options.regionLabel);
    const parent = this.#parent();
    if (host.isConnected && parent && host.parentNode !== parent) parent.append(host);
  }

  /** The shadow root holding the toasts, created on first use. */
  get root(): ShadowRoot {
    if (this.#root && this.#host) {
      if (this.#host.isConnected || this.#awaitingBody) return this.#root;
      // The page replaced <body> (Turbo-style navigation) or removed the
      // stack: it goes back, with its toasts and live command toasts, which
      // would otherwise go on updating where nobody sees them.
      const parent = this.#parent();
      if (parent) {
        parent.append(this.#host);
        return this.#root;
      }
    }
    const host = createElement('div');
    host.id = this.#options.hostId;
    // The region is announced politely by screen readers as toasts arrive.
    host.setAttribute('role', 'region');
    host.setAttribute('aria-label', this.#options.regionLabel);
    host.addEventListener('focusin', (ev) => {
      // From inside the stack the relatedTarget is retargeted to the host itself.
      const from = ev.relatedTarget;
      if (from instanceof HTMLElement && from !== host && !host.contains(from)) this.#focusBefore = from;
    });
    const root = host.attachShadow({ mode: 'open' });
    const list = createElement('div');
    list.className = 'herald-list';
    list.setAttribute('aria-live', 'polite');
    list.setAttribute('aria-relevant', 'additions');
    list.style.display = 'contents';
    if (!adoptToastStyles(root)) {
      const style = createElement('style');
      style.textContent = TOAST_CSS;
      root.append(style);
    }
    root.append(list);
    this.#host = host;
    this.#root = root;
    const parent = this.#parent();
    if (parent) {
      parent.append(host);
    } else {
      // A script in <head> (where the old daemon's pages load it) can get a
      // notification before the parser reached <body>: a replay right after
      // connect, or processData(). The toast is built now and shown once
      // the body exists; the notification is acked already, so throwing
      // here would lose it for good.
      this.#awaitingBody = true;
      listenToDocument(
        'DOMContentLoaded',
        () => {
          this.#awaitingBody = false;
          if (this.#host === host) (pageBody() ?? rootElement())?.append(host);
        },
        { once: true },
      );
    }
    return root;
  }

  /**
   * Puts the (empty) stack on the page now. The stack is a live region, and
   * a screen reader announces only what changes in a region it already
   * knows: one made together with its first toast stays silent about that
   * toast. A client calls this as it starts connecting, a network round
   * trip before anything can arrive.
   */
  prepare(): void {
    void this.root;
  }

  /** Where the stack goes: the option, else <body>; none while the parser is still in <head>; the root element where there is no <body> once parsed (a frameset, an SVG document). */
  #parent(): Element | undefined {
    return this.#options.parent ?? pageBody() ?? (stillLoading() ? undefined : rootElement() ?? undefined);
  }

  get #list(): HTMLElement {
    return this.root.querySelector('.herald-list') as HTMLElement;
  }

  /** Number of toasts on screen. */
  get size(): number {
    return this.#root ? this.#list.children.length : 0;
  }

  /** Shows a MESSAGE: TITLE as text, TEXT sanitised, EXTRA as a link, ICON, TIMEOUT. Returns the toast element. */
  show(message: NotificationObject): HTMLElement {
    const titleText = shownTitle(message.TITLE);
    const toast = this.#frame(message.TYPE, titleText);
    const body = toast.querySelector('.herald-body') as HTMLElement;
    this.#icon(toast, message.ICON);
    const title = body.querySelector('.herald-title') as HTMLElement;
    // The sender's words only: Arabic or Hebrew reads right to left on a
    // left-to-right page, and the other way round.
    title.dir = 'auto';
    title.textContent = titleText;
    let text: HTMLElement;
    if (isPlainTextFormat(message)) {
      // Plain text (a command's output): as written, whitespace kept, never
      // parsed as HTML. No dir="auto": the styles keep it left to right and
      // give each line its own direction (unicode-bidi: plaintext).
      text = createElement('pre');
      text.className = 'herald-text herald-output';
      text.textContent = withShortClusters(clipText(withoutBidiControls(asText(message.TEXT)), this.#options.maxTextChars, true));
    } else {
      text = createElement('div');
      text.className = 'herald-text';
      text.dir = 'auto';
      text.append(sanitizeHtml(clipText(asText(message.TEXT), this.#options.maxTextChars)));
    }
    text.setAttribute('part', 'text');
    body.append(text);
    const extra = typeof message.EXTRA === 'string' ? message.EXTRA.trim() : '';
    if (extra !== '' && isSafeUrl(extra)) {
      const a = createElement('a');
      a.className = 'herald-link';
      a.setAttribute('part', 'link');
      a.href = extra;
      a.target = '_blank';
      a.rel = 'noopener noreferrer';
      a.textContent = this.#options.linkLabel;
      body.append(a);
    }
    if (message.ID !== undefined) toast.dataset.id = asText(message.ID);
    this.#add(toast);
    this.#autoDismiss(toast, timeoutOf(message, this.#options.timeoutMs));
    return toast;
  }

  /**
   * Creates or updates the live toast of a background command. When the
   * admin presses Cancel, the `onCancel` of the command's latest frame runs.
   */
  progress(frame: CommandProgressFrame, onCancel: (commandId: string) => void): HTMLElement {
    let entry = this.#commands.get(frame.COMMAND_ID);
    if (!entry) {
      const program = shownTitle(frame.PROGRAM);
      const element = this.#frame('COMMAND_PROGRESS', program, () => this.#left(frame.COMMAND_ID, element));
      element.dataset.commandId = frame.COMMAND_ID;
      const body = element.querySelector('.herald-body') as HTMLElement;
      const title = body.querySelector('.herald-title') as HTMLElement;
      const spinner = createElement('span');
      spinner.className = 'herald-spinner';
      spinner.setAttribute('aria-hidden', 'true');
      const name = createElement('span');
      // The title itself follows the page (its state label is in the page's
      // language); the program's name, data, finds its own direction.
      name.dir = 'auto';
      name.textContent = program;
      const state = createElement('span');
      state.className = 'herald-state';
      title.append(spinner, name, ' ', state);
      const output = createElement('pre');
      output.className = 'herald-output';
      output.setAttribute('part', 'progress');
      // The stack is a polite live region: without this, every frame made a
      // screen reader read the whole output again (WCAG 4.1.3). The state in
      // the title is what gets announced; the output is there to be read.
      output.setAttribute('aria-live', 'off');
      const cancel = createElement('button');
      cancel.type = 'button';
      cancel.className = 'herald-cancel';
      cancel.setAttribute('part', 'cancel');
      cancel.textContent = this.#options.cancelLabel;
      cancel.addEventListener('click', () => {
        // aria-disabled, not disabled: a disabled button drops the keyboard
        // focus to <body>.
        if (cancel.getAttribute('aria-disabled') === 'true') return;
        cancel.setAttribute('aria-disabled', 'true');
        this.#commands.get(frame.COMMAND_ID)?.onCancel(frame.COMMAND_ID);
      });
      body.append(output, cancel);
      entry = { element, onCancel, output, state, spinner, cancel, close: element.querySelector('.herald-close') as HTMLElement, text: '', shown: true };
      this.#commands.set(frame.COMMAND_ID, entry);
      this.#add(element);
    } else {
      // A later frame brings the stack back too, if the page replaced <body>.
      if (entry.shown) void this.root;
      entry.onCancel = onCancel;
    }
    entry.element.dataset.state = frame.STATE;
    // Own keys only: a STATE of "toString" read a function's source through the prototype.
    const labels = this.#options.stateLabels;
    const stateText = `— ${Object.hasOwn(labels, frame.STATE) ? labels[frame.STATE] : shownTitle(frame.STATE)}`;
    // Written only when it changes: each write is a change in the live region.
    if (entry.state.textContent !== stateText) entry.state.textContent = stateText;
    if (typeof frame.OUTPUT === 'string' && frame.OUTPUT !== '') {
      // Cut as a whole: a run of combining marks may go on from one frame's output into the next.
      entry.text = tailOf(withShortClusters(entry.text + withoutBidiControls(frame.OUTPUT)), this.#options.outputTail);
      entry.output.textContent = entry.text;
      entry.output.scrollTop = entry.output.scrollHeight;
    }
    if (TERMINAL.has(frame.STATE)) {
      entry.spinner.remove();
      if (this.#root?.activeElement === entry.cancel) entry.close.focus();
      entry.cancel.remove();
    }
    return entry.element;
  }

  /** A command toast left the stack (closed, pushed out): remembered off screen (CommandToast.shown), the oldest such forgotten past MAX_LEFT_COMMANDS. */
  #left(commandId: string, element: HTMLElement): void {
    const entry = this.#commands.get(commandId);
    if (entry?.element !== element) return;
    entry.shown = false;
    // Last in the map's order, so that those that left longest ago are forgotten first.
    this.#commands.delete(commandId);
    this.#commands.set(commandId, entry);
    let left = 0;
    for (const e of this.#commands.values()) if (!e.shown) left++;
    for (const [id, e] of this.#commands) {
      if (left <= MAX_LEFT_COMMANDS) break;
      if (e.shown) continue;
      this.#commands.delete(id);
      left--;
    }
  }

  /** Removes the live toast of a command (its final notification has arrived). */
  endCommand(commandId: string): boolean {
    const entry = this.#commands.get(commandId);
    if (!entry) return false;
    this.#commands.delete(commandId);
    this.#remove(entry.element);
    return true;
  }

  /** Removes every toast and the host element. */
  clear(): void {
    // From the root as it is: the `root` getter would first put a removed stack back.
    for (const toast of this.#root?.querySelectorAll<HTMLElement>('.herald-toast') ?? []) this.#stopTimer(toast);
    if (this.#root?.activeElement) this.#focusBack();
    this.#commands.clear();
    this.#awaitingBody = false;
    this.#host?.remove();
    this.#host = undefined;
    this.#root = undefined;
  }

  /** An empty toast: body, title, close button. `label` (the TITLE) names the toast and its close button. */
  #frame(type: string, label: string, onRemove?: () => void): HTMLElement {
    const toast = createElement('div');
    toast.className = 'herald-toast';
    toast.setAttribute('part', 'toast');
    toast.dataset.type = type;
    const body = createElement('div');
    body.className = 'herald-body';
    const title = createElement('div');
    title.className = 'herald-title';
    title.setAttribute('part', 'title');
    // Ids are per shadow root, so a counter of this stack's own is enough.
    title.id = `herald-title-${++this.#titleIds}`;
    // Each toast a named group, so that five "Close" buttons in a row can be told apart.
    toast.setAttribute('role', 'group');
    toast.setAttribute('aria-labelledby', title.id);
    body.append(title);
    const close = createElement('button');
    close.type = 'button';
    close.className = 'herald-close';
    close.setAttribute('part', 'close');
    const name = shortLabel(label);
    close.setAttribute('aria-label', name === '' ? this.#options.closeLabel : `${this.#options.closeLabel}: ${name}`);
    close.textContent = '×';
    const dismiss = () => {
      this.#remove(toast);
      onRemove?.();
    };
    close.addEventListener('click', dismiss);
    toast.addEventListener('keydown', (ev) => {
      // Escape anywhere in a toast closes it, as it would a dialog.
      if (ev.key !== 'Escape' || ev.defaultPrevented) return;
      ev.preventDefault();
      dismiss();
    });
    toast.append(body, close);
    return toast;
  }

  #icon(toast: HTMLElement, icon: unknown): void {
    if (typeof icon !== 'string' || icon.trim() === '') return;
    const value = icon.trim();
    let el: HTMLElement;
    if (isSafeUrl(value) && /[/.]/.test(value)) {
      const img = createElement('img');
      img.alt = '';
      img.src = value;
      el = img;
      el.className = 'herald-icon';
    } else if (/^[\w\s-]+$/.test(value)) {
      // Icon-font class names of the host page ("fa fa-bell") cannot reach
      // into the shadow root, so they show nothing rather than their name.
      return;
    } else {
      // An emoji or a symbol.
      el = createElement('span');
      el.className = 'herald-icon-text';
      el.setAttribute('aria-hidden', 'true');
      el.textContent = firstSymbol(headOf(value, MAX_ICON_CHARS));
    }
    el.setAttribute('part', 'icon');
    toast.prepend(el);
  }

  #add(toast: HTMLElement): void {
    const list = this.#list;
    list.append(toast);
    while (list.children.length > this.#options.maxToasts) {
      // The oldest that nobody is reading: a toast under the pointer or
      // holding the keyboard focus stays. If every older one is held, the
      // oldest goes anyway, so that the cap holds.
      const older = [...list.children].filter((t) => t !== toast) as HTMLElement[];
      const victim = older.find((t) => !t.matches(':hover, :focus-within')) ?? older[0] ?? toast;
      this.#remove(victim);
      if (victim.dataset.commandId) this.#left(victim.dataset.commandId, victim);
    }
  }

  #remove(toast: HTMLElement): void {
    // Focus moves on before the toast goes, else it falls to <body>. Before
    // the timer stops, too: the toast's focusout would arm it again.
    if (toast.contains(this.#root?.activeElement ?? null)) {
      const neighbour = (toast.nextElementSibling ?? toast.previousElementSibling)?.querySelector<HTMLElement>('.herald-close');
      if (neighbour) neighbour.focus();
      else this.#focusBack();
    }
    this.#stopTimer(toast);
    toast.remove();
  }

  /** Focus back to where it was before it entered the stack, if that is still on the page. */
  #focusBack(): void {
    const before = this.#focusBefore;
    this.#focusBefore = undefined;
    if (before?.isConnected) before.focus();
  }

  #stopTimer(toast: HTMLElement): void {
    clearTimeout(this.#timers.get(toast));
    this.#timers.delete(toast);
  }

  #autoDismiss(toast: HTMLElement, ms: number): void {
    // Past TIMER_MAX_MS (a sender's "30 days") a timer would fire at once: the toast stays instead.
    if (ms <= 0 || ms > TIMER_MAX_MS) return;
    // Reading takes time: hovering or focusing a toast holds it, and it is
    // held while either lasts. The pointer leaving must not start the clock
    // while the keyboard focus is still inside, and no second timer may run
    // beside one that a later hover stops.
    let hovered = false;
    let focused = false;
    const arm = () => {
      this.#stopTimer(toast);
      // A toast already taken out (pushed out, closed) gets no new timer from a late mouseleave.
      if (hovered || focused || toast.parentNode === null) return;
      this.#timers.set(toast, setTimeout(() => this.#remove(toast), ms));
    };
    toast.addEventListener('mouseenter', () => {
      hovered = true;
      arm();
    });
    toast.addEventListener('mouseleave', () => {
      hovered = false;
      arm();
    });
    toast.addEventListener('focusin', () => {
      focused = true;
      arm();
    });
    toast.addEventListener('focusout', (ev) => {
      // Focus moving from the link to the close button stays inside.
      focused = ev.relatedTarget instanceof Node && toast.contains(ev.relatedTarget);
      arm();
    });
    arm();
  }
}

/** Longest TITLE quoted in a close button's label, in characters. */
const LABEL_CHARS = 60;

/** A TITLE as part of an accessible name: one line, cut to LABEL_CHARS. */
function shortLabel(title: string): string {
  const line = title.replace(/\s+/g, ' ').trim();
  // By grapheme, so that an emoji (👩‍💻 is three code points joined) is not cut in two.
  const head: string[] = [];
  for (const symbol of graphemes(line)) {
    if (head.length === LABEL_CHARS) return `${head.slice(0, -1).join('').trimEnd()}…`;
    head.push(symbol);
  }
  return line;
}

/** The graphemes of `value` as the reader sees them; code points where Intl.Segmenter is missing. */
function* graphemes(value: string): Generator<string> {
  if (typeof Intl.Segmenter !== 'function') {
    yield* value;
    return;
  }
  for (const { segment } of new Intl.Segmenter(undefined, { granularity: 'grapheme' }).segment(value)) yield segment;
}

/**
 * The first symbol of an ICON as the reader sees it: a whole grapheme, so
 * that 👩‍💻 (three code points joined) or a flag is not cut in two; two code
 * points where Intl.Segmenter is missing. The caller bounds `value`
 * (MAX_ICON_CHARS): a grapheme's own length has none.
 */
function firstSymbol(value: string): string {
  if (typeof Intl.Segmenter === 'function') {
    for (const symbol of graphemes(value)) return symbol;
    return '';
  }
  return [...value].slice(0, 2).join('');
}
