import { CLOSE_CODES } from '../errors/catalogue.js';

/**
 * What a client does after a close code (docs/protocol.md §11.3):
 * - `immediate`: routine closes (going away, service restart, maximum lifetime): reconnect after a
 *   short random delay, or with backoff if the connection before had not yet proved healthy;
 * - `backoff`: abnormal drops and server-side trouble, and any code this SDK does not know;
 * - `stop`: the client's own fault, which the same client retrying cannot fix.
 */
export type CloseClass = 'immediate' | 'backoff' | 'stop';

const SERVICE_RESTART = 1012;
const PROTOCOL_ERROR = 1002;
const UNSUPPORTED_DATA = 1003;
const INVALID_PAYLOAD = 1007;
const POLICY_VIOLATION = 1008;

const IMMEDIATE: ReadonlySet<number> = new Set([
  CLOSE_CODES.goingAway,
  SERVICE_RESTART,
  CLOSE_CODES.maxLifetime,
]);

const STOP: ReadonlySet<number> = new Set([
  PROTOCOL_ERROR,
  UNSUPPORTED_DATA,
  INVALID_PAYLOAD,
  POLICY_VIOLATION,
  CLOSE_CODES.messageTooBig,
  CLOSE_CODES.subscribeTimeout,
]);

export function classifyClose(code: number): CloseClass {
  if (IMMEDIATE.has(code)) return 'immediate';
  if (STOP.has(code)) return 'stop';
  return 'backoff';
}
