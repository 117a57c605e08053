/**
 * Every error a client can see, and every close code the gateway uses, in one place with stable
 * codes. `message` and `reason` follow the Coinbase feed's error shape; `code` is our stable,
 * machine-readable extension and the label used in metrics.
 */

export interface ClientErrorSpec {
  readonly code: string;
  readonly message: string;
}

export const CLIENT_ERRORS = {
  malformedJson: { code: 'malformed_json', message: 'Malformed JSON' },
  notAnObject: { code: 'not_an_object', message: 'Message must be a JSON object' },
  unknownType: { code: 'unknown_type', message: 'Unknown message type' },
  invalidField: { code: 'invalid_field', message: 'Failed to subscribe' },
  unknownChannel: { code: 'unknown_channel', message: 'Failed to subscribe' },
  malformedProductId: { code: 'malformed_product_id', message: 'Failed to subscribe' },
  unknownProduct: { code: 'unknown_product', message: 'Failed to subscribe' },
  emptySubscription: { code: 'empty_subscription', message: 'Failed to subscribe' },
  binaryFrame: { code: 'binary_frame', message: 'Binary frames are not supported' },
  subscribeTimeout: { code: 'subscribe_timeout', message: 'Failed to subscribe' },
  tooManyProducts: { code: 'too_many_products', message: 'Failed to subscribe' },
  tooManySubscriptions: { code: 'too_many_subscriptions', message: 'Failed to subscribe' },
  rateLimited: { code: 'rate_limited', message: 'Too many subscribe requests' },
  /** The feed's documented name for a client that sends too fast. */
  flood: { code: 'flood', message: 'ErrSlowRead' },
  /** The feed's documented text for an oversized message. */
  messageTooBig: { code: 'message_too_big', message: 'Message too big' },
  /** The feed's documented name for a client that cannot keep up. */
  slowConsumer: { code: 'slow_consumer', message: 'ErrSlowConsume' },
} as const satisfies Record<string, ClientErrorSpec>;

/**
 * Refusals of plain HTTP requests on PORT, answered as `{"message", "code"}` (the Coinbase REST
 * shape plus our stable code, also the reason label of ws_http_rejected_total).
 */
export const HTTP_ERRORS = {
  /** Coinbase's text for its public REST limit (429). */
  rateLimited: { code: 'rate_limited', message: 'Public rate limit exceeded' },
  /** The REST limiter holds as many addresses as it may, all of them active (503). */
  tableFull: { code: 'table_full', message: 'Service Unavailable' },
  /** /metrics, /healthz or /readyz asked through a proxy: served to direct requests only (403). */
  privateEndpoint: { code: 'private_endpoint', message: 'Forbidden' },
} as const satisfies Record<string, ClientErrorSpec>;

/** The `reason` of an ErrSlowConsume, by why flow control cut the connection off. */
export const SLOW_CONSUMER_REASONS = {
  timeout: 'the connection stayed behind for too long',
  queue_overflow: 'too many messages queued for the connection',
  backpressure_limit: 'the connection fell behind by more than the gateway buffers for it',
} as const;

export interface ClientError {
  readonly spec: ClientErrorSpec;
  readonly reason: string;
}

export function clientError(spec: ClientErrorSpec, reason: string): ClientError {
  return { spec, reason };
}

/** Serialises the feed's error message, with our stable code as an extension field. */
export function encodeClientError(error: ClientError): string {
  return JSON.stringify({
    type: 'error',
    message: error.spec.message,
    reason: error.reason,
    code: error.spec.code,
  });
}

/** WebSocket close codes the gateway sends (also listed in docs/protocol.md). */
export const CLOSE_CODES = {
  /** Shutdown or drain: reconnect, possibly to another replica. */
  goingAway: 1001,
  /** No subscribe within SUBSCRIBE_TIMEOUT_MS. */
  subscribeTimeout: 4001,
  /** The client did not read fast enough (ErrSlowConsume): reconnect and resubscribe. */
  slowConsumer: 4002,
  /** The client sent messages faster than WS_MESSAGE_RATE allows (ErrSlowRead). */
  flood: 4003,
  /** WS_MAX_LIFETIME_MIN reached: reconnect at once (possibly to another replica). */
  maxLifetime: 4004,
  /** The gateway failed handling this connection (a bug): reconnect. */
  internalError: 1011,
  /** A frame larger than WS_MAX_PAYLOAD_BYTES. */
  messageTooBig: 1009,
} as const;

/** Why a connection ended, as counted in ws_disconnections_total{reason}. */
export const DISCONNECT_REASONS = [
  'client',
  'error',
  'idle',
  'shutdown',
  'subscribe_timeout',
  'slow_consumer',
  'flood',
  'message_too_big',
  'max_lifetime',
] as const;
export type DisconnectReason = (typeof DISCONNECT_REASONS)[number];
