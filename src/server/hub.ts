import type { Principal, PrincipalKind } from '../protocol/principal.js';

/** Which stream a delivered frame belongs to, for per-tab de-duplication at the replay seam. */
export interface FrameOrigin {
  /** `own` for the person's stream, `broadcast` for the kind's broadcast stream. */
  readonly stream: 'own' | 'broadcast';
  readonly seq: number;
  /** When the notification expires, ms since the epoch: a tab that held the frame during its replay does not send it after that. */
  readonly expiresAt: number;
}

/** A text frame: a string, or its UTF-8 bytes when it goes to many tabs (encoded once, not once per tab). */
export type Frame = string | Buffer;

/** One open browser tab, as the Hub sees it. The Gateway implements it over a WebSocket. */
export interface Tab {
  readonly id: string;
  readonly principal: Principal;
  /** Queues a ready-made text frame (UTF-8 bytes or a string); `origin` is set for tracked notifications. */
  deliver(frame: Frame, origin?: FrameOrigin): void;
  /**
   * Sends `{"TYPE":"close",...}`, then closes with `code`: an orderly close
   * (a kick, a session that ended), so the tab may first acknowledge what
   * it was shown (the Gateway's tabs wait up to a second for that).
   */
  close(code: number, reason: string): void;
}

type PresenceListener = (principal: Principal, localTabs: number) => void;

/**
 * The registry of tabs open on this node, by person. It delivers a frame to
 * every tab of a person (or of a kind) and answers presence for this node;
 * the Broker turns that into cluster-wide presence.
 */
export class Hub {
  /**
   * Per kind, by person id (a number key, so a send builds no `admin:7`
   * string to find the tabs): the person's one tab, or a Set of them when
   * there are more. Most people have one tab, and a Set each was about
   * 300 bytes more to allocate and keep per connect (docs/bench-history.md,
   * forty-fifth round).
   */
  readonly #byPerson: Record<PrincipalKind, Map<number, Tab | Set<Tab>>> = { admin: new Map(), user: new Map() };
  readonly #byKind: Record<PrincipalKind, Set<Tab>> = { admin: new Set(), user: new Set() };
  /** People (not tabs) of each kind with a tab here. */
  readonly #people: Record<PrincipalKind, number> = { admin: 0, user: 0 };
  #onPresence: PresenceListener | undefined;

  /** Called whenever a person's number of local tabs changes (0 when the last one closed). */
  onPresenceChange(listener: PresenceListener): void {
    this.#onPresence = listener;
  }

  add(tab: Tab): void {
    const { kind, id } = tab.principal;
    const people = this.#byPerson[kind];
    const held = people.get(id);
    let tabs: number;
    if (held === undefined) {
      people.set(id, tab);
      this.#people[kind]++;
      tabs = 1;
    } else if (held instanceof Set) {
      held.add(tab);
      tabs = held.size;
    } else if (held === tab) {
      tabs = 1;
    } else {
      people.set(id, new Set([held, tab]));
      tabs = 2;
    }
    this.#byKind[kind].add(tab);
    this.#onPresence?.(tab.principal, tabs);
  }

  remove(tab: Tab): void {
    const { kind, id } = tab.principal;
    const people = this.#byPerson[kind];
    const held = people.get(id);
    let tabs: number;
    if (held instanceof Set) {
      if (!held.delete(tab)) return;
      tabs = held.size;
      // Back to the one tab itself: the Set is not kept for a person who had two tabs once.
      if (tabs === 1) people.set(id, held.values().next().value as Tab);
    } else if (held === tab) {
      people.delete(id);
      this.#people[kind]--;
      tabs = 0;
    } else {
      return;
    }
    this.#byKind[kind].delete(tab);
    this.#onPresence?.(tab.principal, tabs);
  }

  tabsOf(principal: Principal): ReadonlySet<Tab> {
    const held = this.#byPerson[principal.kind].get(principal.id);
    if (held === undefined) return new Set();
    return held instanceof Set ? held : new Set([held]);
  }

  count(principal: Principal): number {
    const held = this.#byPerson[principal.kind].get(principal.id);
    if (held === undefined) return 0;
    return held instanceof Set ? held.size : 1;
  }

  /** How many people of `kind` have at least one tab here. */
  onlineCount(kind: PrincipalKind): number {
    return this.#people[kind];
  }

  /** Ids of the people of `kind` with at least one tab here, ascending. */
  online(kind: PrincipalKind): number[] {
    return [...this.#byPerson[kind].keys()].sort((a, b) => a - b);
  }

  /** Every tab of a kind, or of everyone. */
  all(kind?: PrincipalKind): Tab[] {
    return kind ? [...this.#byKind[kind]] : [...this.#byKind.admin, ...this.#byKind.user];
  }

  /** How many tabs of `kind`, or of every kind, are open here. */
  tabCount(kind?: PrincipalKind): number {
    return kind ? this.#byKind[kind].size : this.size;
  }

  get size(): number {
    return this.#byKind.admin.size + this.#byKind.user.size;
  }

  /** Delivers to every tab of one person; returns how many tabs. */
  deliverTo(principal: Principal, frame: string, origin?: FrameOrigin): number {
    const held = this.#byPerson[principal.kind].get(principal.id);
    if (held === undefined) return 0;
    if (!(held instanceof Set)) {
      held.deliver(frame, origin);
      return 1;
    }
    // Encoded once for all of them (a Set holds two tabs or more).
    const data = Buffer.from(frame);
    for (const tab of held) tab.deliver(data, origin);
    return held.size;
  }

  /** Delivers one frame, serialised once, to every tab of a kind. */
  deliverToKind(kind: PrincipalKind, frame: string, origin?: FrameOrigin): number {
    const tabs = this.#byKind[kind];
    const data = tabs.size > 1 ? Buffer.from(frame) : frame;
    for (const tab of tabs) tab.deliver(data, origin);
    return tabs.size;
  }

  /** Closes every tab of one person; returns how many. */
  disconnect(principal: Principal, code: number, reason: string): number {
    const tabs = [...this.tabsOf(principal)];
    for (const tab of tabs) tab.close(code, reason);
    return tabs.length;
  }
}
