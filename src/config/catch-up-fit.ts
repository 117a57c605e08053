import { CLIENT_ERRORS, clientError, encodeClientError, SLOW_CONSUMER_REASONS } from '../errors/catalogue.js';
import { largestQueuedMessage } from '../hub/largest-queued.js';
import { catchUpBudget } from '../server/flow-control.js';
import type { ProductSpec } from './products.js';

/** The longest WebSocket frame header a server writes (no mask, 64-bit length). */
const MAX_FRAME_HEADER = 10;

/** The longest ErrSlowConsume the gateway sends, framed. */
const SLOW_CONSUME_FRAME =
  Math.max(
    ...Object.values(SLOW_CONSUMER_REASONS).map(
      (reason) => encodeClientError(clientError(CLIENT_ERRORS.slowConsumer, reason)).length,
    ),
  ) + MAX_FRAME_HEADER;

export interface CatchUpFit {
  /** Half of WS_BACKPRESSURE_HIGH_BYTES: a catch-up piece starts only while less is buffered. */
  readonly sendBudget: number;
  /** The largest message a slow consumer's queue can hold for the configured products, framed. */
  readonly largestMessage: number;
  readonly slowConsumeFrame: number;
  /** What WS_MAX_BACKPRESSURE_BYTES must be at least. */
  readonly required: number;
}

/**
 * The catch-up's invariant (src/server/flow-control.ts): a piece goes out only while less than
 * half the high-water mark is buffered, and it ends with the first message that reaches that
 * budget, so after it less than the budget plus one message is buffered. uWS drops a message sent
 * while more than maxBackpressure is buffered; so that the ErrSlowConsume which may follow a piece
 * is never dropped, and the whole catch-up stays within the limit, the budget, the largest queued
 * message and an ErrSlowConsume must fit under WS_MAX_BACKPRESSURE_BYTES.
 */
export function catchUpFit(highWaterBytes: number, products: readonly ProductSpec[]): CatchUpFit {
  const sendBudget = catchUpBudget(highWaterBytes);
  const largestMessage = largestQueuedMessage(products) + MAX_FRAME_HEADER;
  return {
    sendBudget,
    largestMessage,
    slowConsumeFrame: SLOW_CONSUME_FRAME,
    required: sendBudget + largestMessage + SLOW_CONSUME_FRAME,
  };
}
