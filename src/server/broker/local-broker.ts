import type { Principal, PrincipalKind } from '../../protocol/principal.js';
import type { Hub } from '../hub.js';
import type { Broker, Envelope, EnvelopeHandler } from './broker.js';

/** One process: publishing is a direct call, presence is the Hub's own. */
export class LocalBroker implements Broker {
  readonly name = 'local';
  readonly #hub: Hub;
  #handler: EnvelopeHandler | undefined;

  constructor(hub: Hub) {
    this.#hub = hub;
  }

  async start(handler: EnvelopeHandler): Promise<void> {
    this.#handler = handler;
  }

  /** Delivers here, now; the person's tabs (the kind's people) still open once it was written to them. */
  publish(envelope: Envelope): number {
    this.#handler?.(envelope);
    return envelope.type === 'kind' ? this.#hub.onlineCount(envelope.kind) : this.#hub.count(envelope.to);
  }

  setLocalPresence(): void {
    // The Hub is the source of truth in one process.
  }

  tabs(principal: Principal): number {
    return this.#hub.count(principal);
  }

  onlineCount(kind: PrincipalKind): number {
    return this.#hub.onlineCount(kind);
  }

  async online(kind: PrincipalKind): Promise<number[]> {
    return this.#hub.online(kind);
  }

  async close(): Promise<void> {
    this.#handler = undefined;
  }
}
