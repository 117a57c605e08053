/**
 * Client IP addresses: strict parsing, canonical formatting, CIDR lists, and the X-Forwarded-For rule.
 *
 * Leaf module: no project imports, no dependencies. Parsing is hand-written over char codes straight
 * into bytes (no regular expressions, no `node:net`), so it is cheap enough for every upgrade request.
 *
 * Representation: every address is an {@link Address16}, 16 bytes in network order. IPv4 is stored
 * as the IPv4-mapped IPv6 address `::ffff:a.b.c.d`, so `1.2.3.4`, `::ffff:1.2.3.4`, `::ffff:102:304`
 * and uWS's 4-byte form of the same peer are byte-identical and compare, hash and match alike.
 */

/** 16 bytes in network order. IPv4 is held as IPv4-mapped IPv6 (`::ffff:a.b.c.d`). */
export type Address16 = Uint8Array;

/**
 * A network in the 128-bit space. `prefix` counts bits of the 16-byte form, so an IPv4 `/n` is held
 * as `/(96 + n)` over the mapped space; `network` has every bit after `prefix` cleared.
 */
export interface Cidr {
  readonly network: Address16;
  readonly prefix: number;
}

/** Text longer than this is refused before any parsing. The longest accepted form is 53 characters. */
export const MAX_ADDRESS_TEXT = 64;
/** X-Forwarded-For: at most this many (non-empty) entries are examined, right-most first. */
export const MAX_FORWARDED_ENTRIES = 32;
/** X-Forwarded-For: only the right-most this-many characters of the header are looked at. */
export const MAX_FORWARDED_CHARS = 2048;

const DOT = 0x2e;
const COLON = 0x3a;
const ZERO = 0x30;
const NINE = 0x39;
const LEFT_BRACKET = 0x5b;
const SPACE = 0x20;
const TAB = 0x09;

function hexValue(c: number): number {
  if (c >= ZERO && c <= NINE) return c - ZERO;
  const lower = c | 0x20; // folds A-F onto a-f; leaves no other character in a-f
  if (lower >= 0x61 && lower <= 0x66) return lower - 0x61 + 10;
  return -1;
}

/**
 * Strict dotted quad over text[start, end) into out[offset .. offset + 4): exactly four decimal
 * octets of 1-3 digits, each 0..255, and no leading zeros ('01' is refused: inet_aton reads it as
 * octal, so '010.0.0.1' is 8.0.0.1 to some software and 10.0.0.1 to other; we accept neither).
 * Shorthand ('127.1'), hex ('0x7f.0.0.1') and octal forms are refused.
 */
function parseV4(text: string, start: number, end: number, out: Uint8Array, offset: number): boolean {
  let i = start;
  for (let part = 0; part < 4; part++) {
    if (part > 0) {
      if (i >= end || text.charCodeAt(i) !== DOT) return false;
      i++;
    }
    const partStart = i;
    let value = 0;
    while (i < end) {
      const c = text.charCodeAt(i);
      if (c < ZERO || c > NINE) break;
      if (i - partStart === 3) return false;
      value = value * 10 + (c - ZERO);
      i++;
    }
    const length = i - partStart;
    if (length === 0 || value > 255) return false;
    if (length > 1 && text.charCodeAt(partStart) === ZERO) return false;
    out[offset + part] = value;
  }
  return i === end;
}

/**
 * IPv6 text over text[start, end) into `out` (16 zeroed bytes): groups of 1-4 hex digits in either
 * case, at most one '::' standing for one or more zero groups, an optional dotted-quad tail taking the
 * last two groups, eight groups in all. Zone ids ('fe80::1%eth0') are refused: a scope is meaningless
 * for a remote client, and stripping it would make distinct link-local peers look alike.
 */
function parseV6(text: string, start: number, end: number, out: Uint8Array): boolean {
  let i = start;
  let groups = 0;
  let compressAt = -1;
  if (i >= end) return false;
  if (text.charCodeAt(i) === COLON) {
    if (i + 1 >= end || text.charCodeAt(i + 1) !== COLON) return false;
    compressAt = 0;
    i += 2;
    if (i === end) return true; // '::'
  }
  for (;;) {
    if (groups === 8) return false;
    const groupStart = i;
    let value = 0;
    while (i < end) {
      const h = hexValue(text.charCodeAt(i));
      if (h < 0) break;
      if (i - groupStart === 4) return false; // a fifth digit: no hex group or octet has one
      value = (value << 4) | h;
      i++;
    }
    if (i < end && text.charCodeAt(i) === DOT) {
      // Embedded IPv4 tail ('::ffff:1.2.3.4', '64:ff9b::192.0.2.1'): last thing, two groups' worth.
      if (groups > 6 || !parseV4(text, groupStart, end, out, groups * 2)) return false;
      groups += 2;
      break;
    }
    if (i === groupStart) return false;
    out[groups * 2] = value >>> 8;
    out[groups * 2 + 1] = value & 0xff;
    groups++;
    if (i === end) break;
    if (text.charCodeAt(i) !== COLON) return false;
    i++;
    if (i < end && text.charCodeAt(i) === COLON) {
      if (compressAt >= 0) return false; // a second '::'
      compressAt = groups;
      i++;
      if (i === end) break;
    } else if (i === end) {
      return false; // trailing single ':'
    }
  }
  if (compressAt < 0) return groups === 8;
  if (groups > 7) return false; // '::' must stand for at least one group
  const tailStart = 16 - (groups - compressAt) * 2;
  out.copyWithin(tailStart, compressAt * 2, groups * 2);
  out.fill(0, compressAt * 2, tailStart);
  return true;
}

/** text[start, end) is a port: 1-5 decimal digits, 0..65535. */
function isPort(text: string, start: number, end: number): boolean {
  const length = end - start;
  if (length < 1 || length > 5) return false;
  let value = 0;
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c < ZERO || c > NINE) return false;
    value = value * 10 + (c - ZERO);
  }
  return value <= 65535;
}

function mappedV4(text: string, start: number, end: number): Address16 | undefined {
  const out = new Uint8Array(16);
  out[10] = 0xff;
  out[11] = 0xff;
  return parseV4(text, start, end, out, 12) ? out : undefined;
}

function v6(text: string, start: number, end: number): Address16 | undefined {
  const out = new Uint8Array(16);
  return parseV6(text, start, end, out) ? out : undefined;
}

/** A bare address: dotted-quad IPv4 or IPv6 text, no brackets, no port. */
function parseBareIp(text: string): Address16 | undefined {
  if (text.length === 0 || text.length > MAX_ADDRESS_TEXT) return undefined;
  return text.indexOf(':') < 0 ? mappedV4(text, 0, text.length) : v6(text, 0, text.length);
}

/**
 * Parses one address as it may appear in configuration or in an X-Forwarded-For entry. Accepted:
 *
 * - `a.b.c.d`: strict dotted quad (see the IPv4 rules: four octets, 0..255, no leading zeros);
 * - any RFC 4291 IPv6 text: `::` compression, upper or lower case hex, embedded IPv4 tail;
 * - `a.b.c.d:port`, `[v6]` and `[v6]:port` (port 0..65535, dropped).
 *
 * Refused (undefined): empty text, text over {@link MAX_ADDRESS_TEXT} characters (checked first),
 * any whitespace (callers trim), zone ids (`fe80::1%eth0`), IPv4 in brackets, bare IPv6 with a port
 * (`::1:80` is simply the IPv6 address ::1:80, as it must be), IPv4 shorthand/hex/octal forms, and
 * anything else. The result is a fresh array the caller may keep or modify.
 */
export function parseIp(text: string): Address16 | undefined {
  const n = text.length;
  if (n === 0 || n > MAX_ADDRESS_TEXT) return undefined;
  if (text.charCodeAt(0) === LEFT_BRACKET) {
    const close = text.indexOf(']', 1);
    if (close < 0) return undefined;
    if (close + 1 < n && (text.charCodeAt(close + 1) !== COLON || !isPort(text, close + 2, n))) {
      return undefined;
    }
    return v6(text, 1, close);
  }
  const colon = text.indexOf(':');
  if (colon < 0) return mappedV4(text, 0, n);
  if (text.indexOf(':', colon + 1) < 0) {
    // Exactly one colon: only 'a.b.c.d:port' has that shape (IPv6 text has at least two).
    return isPort(text, colon + 1, n) ? mappedV4(text, 0, colon) : undefined;
  }
  return v6(text, 0, n);
}

/**
 * uWS `getRemoteAddress()` bytes (4 for IPv4, 16 for IPv6, already mapped on dual-stack sockets) as
 * an {@link Address16}. Any other length (e.g. an empty buffer for a Unix socket) is undefined.
 */
export function fromUwsAddress(bytes: ArrayBuffer): Address16 | undefined {
  if (bytes.byteLength === 16) return new Uint8Array(bytes.slice(0));
  if (bytes.byteLength !== 4) return undefined;
  const out = new Uint8Array(16);
  out[10] = 0xff;
  out[11] = 0xff;
  out.set(new Uint8Array(bytes), 12);
  return out;
}

function isMapped(a: Address16): boolean {
  for (let i = 0; i < 10; i++) if (a[i] !== 0) return false;
  return a[10] === 0xff && a[11] === 0xff;
}

function checkLength(address: Address16, what: string): void {
  if (address.length !== 16)
    throw new RangeError(`${what}: expected 16 address bytes, got ${address.length}`);
}

/**
 * Canonical text. IPv4-mapped addresses print as plain dotted IPv4 (`::ffff:127.0.0.1` ->
 * `127.0.0.1`). Everything else follows RFC 5952: lower-case hex without leading zeros, the longest
 * run of two or more zero groups shortened to `::` (the left-most on a tie), a lone zero group
 * written `0`. Other IPv4-embedding prefixes (`::a.b.c.d`, `64:ff9b::/96`) print in hex.
 */
export function formatIp(address: Address16): string {
  checkLength(address, 'formatIp');
  if (isMapped(address)) return `${address[12]}.${address[13]}.${address[14]}.${address[15]}`;
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((address[i]! << 8) | address[i + 1]!);
  let bestStart = -1;
  let bestLength = 1; // a run must beat 1 to be compressed
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  if (bestStart < 0) return groups.map((g) => g.toString(16)).join(':');
  const head = groups.slice(0, bestStart).map((g) => g.toString(16));
  const tail = groups.slice(bestStart + bestLength).map((g) => g.toString(16));
  return `${head.join(':')}::${tail.join(':')}`;
}

/** `10.0.0.0/8` for mapped networks of prefix 96 and up, else `2001:db8::/32`. */
export function formatCidr(cidr: Cidr): string {
  if (cidr.prefix >= 96 && isMapped(cidr.network)) return `${formatIp(cidr.network)}/${cidr.prefix - 96}`;
  return `${formatIp(cidr.network)}/${cidr.prefix}`;
}

function describeEntry(entry: string): string {
  return JSON.stringify(entry.length > 80 ? `${entry.slice(0, 77)}...` : entry);
}

/** 1-3 decimal digits without a leading zero ('0' itself is fine). */
function parsePrefixLength(text: string): number | undefined {
  if (text.length < 1 || text.length > 3) return undefined;
  if (text.length > 1 && text.charCodeAt(0) === ZERO) return undefined;
  let value = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < ZERO || c > NINE) return undefined;
    value = value * 10 + (c - ZERO);
  }
  return value;
}

function parseCidr(entry: string): Cidr | string {
  const slash = entry.indexOf('/');
  const addressText = slash < 0 ? entry : entry.slice(0, slash);
  const network = parseBareIp(addressText);
  if (network === undefined) return 'not an IPv4 or IPv6 address (no brackets, ports or zone ids)';
  const isV4 = addressText.indexOf(':') < 0;
  if (slash < 0) return { network, prefix: 128 };
  const prefixText = entry.slice(slash + 1);
  const max = isV4 ? 32 : 128;
  const bits = parsePrefixLength(prefixText);
  if (bits === undefined || bits > max) return `prefix length must be a whole number 0..${max}`;
  const prefix = isV4 ? bits + 96 : bits;
  const masked = network.slice();
  maskInPlace(masked, prefix);
  if (!masked.every((byte, i) => byte === network[i])) {
    return `host bits are set after /${bits} (the network is ${formatCidr({ network: masked, prefix })})`;
  }
  return { network, prefix };
}

function maskInPlace(bytes: Uint8Array, prefix: number): void {
  const full = prefix >>> 3;
  const rem = prefix & 7;
  if (rem !== 0) bytes[full] = bytes[full]! & ((0xff00 >>> rem) & 0xff);
  bytes.fill(0, rem === 0 ? full : full + 1);
}

/**
 * Parses a comma-separated list of CIDRs or bare addresses, as configured for trusted proxies.
 *
 * - Whitespace around entries is ignored; empty entries (`a,,b`, a trailing comma) are skipped; a
 *   blank string is the empty list.
 * - A bare address is a single host: `/32` for IPv4, `/128` for IPv6.
 * - An IPv4 prefix is 0..32 and applies to the mapped space (`10.0.0.0/8` is `::ffff:10.0.0.0/104`,
 *   so `0.0.0.0/0` is all of IPv4 and nothing else); IPv6 text takes 0..128 (`::/0` is everything).
 * - Refused: brackets, ports, zone ids, leading zeros in the prefix, and host bits set after the
 *   prefix (`10.0.0.1/8` is almost always a typo for `/32`, so it is an error, not silently `/8`).
 *
 * The error names the first bad entry.
 */
export function parseCidrList(text: string): { ok: true; cidrs: Cidr[] } | { ok: false; error: string } {
  const cidrs: Cidr[] = [];
  for (const raw of text.split(',')) {
    const entry = raw.trim();
    if (entry === '') continue;
    const parsed = parseCidr(entry);
    if (typeof parsed === 'string')
      return { ok: false, error: `invalid CIDR ${describeEntry(entry)}: ${parsed}` };
    cidrs.push(parsed);
  }
  return { ok: true, cidrs };
}

function inCidr(address: Address16, cidr: Cidr): boolean {
  const network = cidr.network;
  const full = cidr.prefix >>> 3;
  for (let i = 0; i < full; i++) if (address[i] !== network[i]) return false;
  const rem = cidr.prefix & 7;
  if (rem === 0) return true;
  return ((address[full]! ^ network[full]!) & (0xff00 >>> rem) & 0xff) === 0;
}

/** Whether the address lies in any of the networks. An array that is not 16 bytes is in none. */
export function inCidrs(address: Address16, cidrs: readonly Cidr[]): boolean {
  if (address.length !== 16) return false;
  for (const cidr of cidrs) if (inCidr(address, cidr)) return true;
  return false;
}

function isOws(c: number): boolean {
  return c === SPACE || c === TAB;
}

/**
 * The address to attribute a connection to, given the TCP peer and the X-Forwarded-For header.
 *
 * 1. A peer outside `trusted` is the client; the header is ignored entirely (anyone can send one).
 * 2. Otherwise the header is walked from the right. Each entry was appended by the hop to its right
 *    (the right-most by the peer), so it is only believable while every hop so far is trusted:
 *    - an entry that is itself in `trusted` is another of our proxies: step past it and go on;
 *    - the first entry not in `trusted` is the client, returned as is;
 *    - an entry that does not parse (see {@link parseIp}; `unknown`, obfuscated or quoted values,
 *      zone ids, anything) stops the walk: the last trusted hop examined is returned (the peer, if
 *      it was the right-most entry), so garbage never makes us believe anything to its left;
 *    - empty entries (`a,,b`, joined empty headers, stray OWS) are skipped, as RFC 9110 requires
 *      for list headers, and do not count as entries.
 * 3. If the header is absent or empty, or every examined entry is trusted, the left-most trusted hop
 *    examined (at worst the peer) is returned: we can only vouch for our own proxies.
 *
 * Work is bounded: only the right-most {@link MAX_FORWARDED_CHARS} characters are looked at (the
 * entry the cut lands in is dropped, never parsed from its tail, so '11.2.3.4' cannot be read as
 * '1.2.3.4'), and at most {@link MAX_FORWARDED_ENTRIES} entries; running out of either ends the walk
 * like an all-trusted header does. Entries are split on ',' and trimmed of spaces and tabs; multiple
 * X-Forwarded-For lines must be joined with ',' in order, as HTTP requires ({@link appendForwardedLine}).
 *
 * The result is `peer` itself or a fresh array.
 */
export function resolveClientAddress(
  peer: Address16,
  forwardedFor: string | undefined,
  trusted: readonly Cidr[],
): Address16 {
  if (!inCidrs(peer, trusted)) return peer;
  if (forwardedFor === undefined || forwardedFor.length === 0) return peer;
  const header = forwardedFor;
  let start = 0;
  if (header.length > MAX_FORWARDED_CHARS) {
    const cut = header.length - MAX_FORWARDED_CHARS;
    // The window starts at the first entry boundary at or after the cut (a comma just before it counts).
    const comma = header.indexOf(',', cut - 1);
    if (comma < 0) return peer; // one over-long entry: garbage
    start = comma + 1;
  }
  let hop = peer;
  let examined = 0;
  let end = header.length;
  for (;;) {
    const found = end > start ? header.lastIndexOf(',', end - 1) : -1;
    const comma = found >= start ? found : -1;
    let s = comma < 0 ? start : comma + 1;
    let e = end;
    while (s < e && isOws(header.charCodeAt(s))) s++;
    while (e > s && isOws(header.charCodeAt(e - 1))) e--;
    if (e > s) {
      if (examined === MAX_FORWARDED_ENTRIES) return hop;
      examined++;
      const address = e - s > MAX_ADDRESS_TEXT ? undefined : parseIp(header.slice(s, e));
      if (address === undefined) return hop;
      if (!inCidrs(address, trusted)) return address;
      hop = address;
    }
    if (comma < 0) return hop;
    end = comma;
  }
}

/**
 * Appends one X-Forwarded-For header line to the lines before it (undefined before the first), as
 * HTTP requires of repeated list headers: one list, joined with ',' in order. A proxy that appends a
 * line of its own (HAProxy's `option forwardfor`) leaves the client it saw in the last line, so every
 * line must be read. Only the right-most MAX_FORWARDED_CHARS + 1 characters are kept: one more than
 * {@link resolveClientAddress} examines, so it still sees that the list was cut and drops the entry
 * the cut lands in, and a request with many long lines builds no long string.
 */
export function appendForwardedLine(joined: string | undefined, line: string): string {
  const whole = joined === undefined ? line : `${joined},${line}`;
  const keep = MAX_FORWARDED_CHARS + 1;
  return whole.length > keep ? whole.slice(whole.length - keep) : whole;
}

/**
 * The 16 bytes as four little-endian int32s, e.g. to hash or to store in an Int32Array-backed table.
 * Equal addresses give equal keys. Written into `into` (a fresh array by default; never `address`).
 */
export function addressKey(address: Address16, into = new Int32Array(4)): Int32Array {
  checkLength(address, 'addressKey');
  for (let i = 0; i < 4; i++) {
    const at = i * 4;
    into[i] = address[at]! | (address[at + 1]! << 8) | (address[at + 2]! << 16) | (address[at + 3]! << 24);
  }
  return into;
}
