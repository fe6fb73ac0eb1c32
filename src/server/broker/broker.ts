import type { Principal, PrincipalKind } from '../../protocol/principal.js';
import type { FrameOrigin } from '../hub.js';

/**
 * What travels between nodes. A frame is serialised once by the sender and
 * delivered as the same string to every tab on every node.
 */
export type Envelope =
  | { readonly type: 'person'; readonly to: Principal; readonly frame: string; readonly origin?: FrameOrigin }
  | { readonly type: 'kind'; readonly kind: PrincipalKind; readonly frame: string; readonly origin?: FrameOrigin }
  | { readonly type: 'disconnect'; readonly to: Principal; readonly code: number; readonly reason: string };

/** Receives envelopes on this node (the composition root wires it to the Hub). */
export type EnvelopeHandler = (envelope: Envelope) => void;

/**
 * How a send reaches the nodes that hold the tabs, and how presence is known
 * cluster-wide (DESIGN.md). Fan-out to tabs, acks and replay live above it;
 * a broker implements transport and presence storage only.
 */
export interface Broker {
  readonly name: string;
  /** Starts receiving envelopes for this node. */
  start(handler: EnvelopeHandler): Promise<void>;
  /**
   * Sends an envelope to every node, this one included. A broker that hands
   * it to the Hub at once (a local one) answers how many it reached, read
   * once it was written: a person's tabs, or a kind's people, still open
   * then. A tab that began to close before (while the store wrote the send)
   * is not among them, nor one closed by this very write (a slow consumer).
   * A broker that publishes over a network answers a promise of the
   * publish; the sender then reports the presence it read when it planned
   * the send.
   */
  publish(envelope: Envelope): number | Promise<void>;
  /** This node's tab count for a person changed. */
  setLocalPresence(principal: Principal, tabs: number): void;
  /** Tabs of a person across the cluster; a number when known at once (a local broker). */
  tabs(principal: Principal): number | Promise<number>;
  /** Ids of people of a kind with at least one tab anywhere, ascending. */
  online(kind: PrincipalKind): Promise<number[]>;
  /** How many people of a kind have a tab anywhere (a broadcast's reach, without listing them). */
  onlineCount(kind: PrincipalKind): number | Promise<number>;
  close(): Promise<void>;
}
