/**
 * The delivery status of a stored notification, as `GET /api/v1/messages/:id`
 * answers it: what every MessageStore reports and what the SDK returns.
 */
export interface MessageStatus {
  id: string;
  stream: string;
  seq: number;
  epoch: string;
  expiresAt: number;
  /** Highest SEQ acknowledged in that stream by any tab is ≥ this seq. */
  acknowledged: boolean;
  expired: boolean;
}
