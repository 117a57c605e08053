import { describe, expect, it } from 'vitest';
import { isForwardingHeader } from '../../../src/limits/forwarded-request.js';

describe('isForwardingHeader', () => {
  it('marks every header ingress-nginx sets on the way in, and the standard ones', () => {
    for (const name of [
      'x-forwarded-for',
      'x-real-ip',
      'x-forwarded-host',
      'x-forwarded-port',
      'x-forwarded-proto',
      'x-forwarded-scheme',
      'x-original-forwarded-for',
      'forwarded',
      'via',
    ])
      expect(isForwardingHeader(name), name).toBe(true);
  });

  it('leaves what direct callers (kubelet, Prometheus, curl) send alone', () => {
    for (const name of [
      'host',
      'user-agent',
      'accept',
      'accept-encoding',
      'x-prometheus-scrape-timeout-seconds',
      'connection',
    ])
      expect(isForwardingHeader(name), name).toBe(false);
  });
});
