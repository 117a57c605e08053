/**
 * Whether a request came through a proxy, from its header names. Leaf module.
 *
 * /metrics, /healthz and /readyz on PORT are for direct, in-cluster callers (the kubelet's probes,
 * Prometheus, the runbook's `curl http://api:8080/metrics`), none of which sends these headers; a
 * request through the ingress always carries some (ingress-nginx sets X-Forwarded-For, X-Real-IP
 * and X-Forwarded-Host/-Port/-Proto/-Scheme on every request). A client cannot remove headers the
 * proxy adds, so any one of them marks the request as forwarded, whoever the peer is.
 */

/** Header names (lower case) that only a proxy adds: RFC 7239, RFC 9110's Via, and the de-facto ones. */
const FORWARDING_HEADERS: ReadonlySet<string> = new Set([
  'forwarded',
  'via',
  'x-real-ip',
  'x-original-forwarded-for',
  'x-client-ip',
  'true-client-ip',
  'cf-connecting-ip',
]);

/** Every X-Forwarded-* header (-For, -Host, -Proto, -Port, -Scheme, -Prefix, -Server...). */
const FORWARDED_PREFIX = 'x-forwarded-';

/** True for a header name (lower case, as uWS and node:http give them) that a proxy adds. */
export function isForwardingHeader(lowerCaseName: string): boolean {
  return FORWARDING_HEADERS.has(lowerCaseName) || lowerCaseName.startsWith(FORWARDED_PREFIX);
}
