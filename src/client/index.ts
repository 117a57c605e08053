/** The matchbook-gateway client SDK: `import { MatchbookClient } from 'matchbook-gateway/client'`. */
export { Backoff, type BackoffOptions } from './backoff.js';
export {
  type ClientEvents,
  type ClientOptions,
  type ClientState,
  type DisconnectedEvent,
  MatchbookClient,
} from './client.js';
export { type CloseClass, classifyClose } from './close-codes.js';
export { Emitter } from './emitter.js';
export {
  type BookLevel,
  type BookOutcome,
  type BookView,
  OrderBook,
  type StaleReason,
} from './order-book.js';
export type * from './protocol.js';
export type { WebSocketConstructor, WebSocketLike } from './socket.js';
export { type OverflowPolicy, Subscription, SubscriptionOverflowError } from './subscription.js';
