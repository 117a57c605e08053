import { isIP } from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type Address16,
  addressKey,
  appendForwardedLine,
  type Cidr,
  formatCidr,
  formatIp,
  fromUwsAddress,
  inCidrs,
  MAX_ADDRESS_TEXT,
  MAX_FORWARDED_CHARS,
  MAX_FORWARDED_ENTRIES,
  parseCidrList,
  parseIp,
  resolveClientAddress,
} from '../../../src/limits/client-address.js';

function ip(text: string): Address16 {
  const address = parseIp(text);
  if (address === undefined) throw new Error(`expected ${JSON.stringify(text)} to parse`);
  return address;
}

function bytes(...values: number[]): Address16 {
  expect(values).toHaveLength(16);
  return Uint8Array.from(values);
}

function mapped(a: number, b: number, c: number, d: number): Address16 {
  return bytes(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d);
}

function cidrs(text: string): Cidr[] {
  const result = parseCidrList(text);
  if (!result.ok) throw new Error(`expected a valid CIDR list: ${result.error}`);
  return result.cidrs;
}

function cidrError(text: string): string {
  const result = parseCidrList(text);
  if (result.ok) throw new Error(`expected ${JSON.stringify(text)} to be refused`);
  return result.error;
}

/** Deterministic PRNG (mulberry32) so randomized cases reproduce. */
function rng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomAddress(random: () => number): Address16 {
  // Zero-heavy, so compression runs of every length and position come up.
  const out = new Uint8Array(16);
  for (let g = 0; g < 8; g++) {
    const r = random();
    const value = r < 0.5 ? 0 : r < 0.6 ? 1 : Math.floor(random() * 0x10000);
    out[2 * g] = value >> 8;
    out[2 * g + 1] = value & 0xff;
  }
  if (random() < 0.15) out.set([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff], 0);
  return out;
}

describe('parseIp: IPv4', () => {
  it.each([
    ['0.0.0.0', [0, 0, 0, 0]],
    ['1.2.3.4', [1, 2, 3, 4]],
    ['10.0.0.0', [10, 0, 0, 0]],
    ['127.0.0.1', [127, 0, 0, 1]],
    ['192.168.100.200', [192, 168, 100, 200]],
    ['255.255.255.255', [255, 255, 255, 255]],
    ['9.99.199.250', [9, 99, 199, 250]],
  ])('parses %s into the IPv4-mapped form', (text, [a, b, c, d]) => {
    expect(parseIp(text)).toEqual(mapped(a!, b!, c!, d!));
  });

  it.each([
    '256.0.0.1',
    '1.2.3.256',
    '1.2.3.999',
    '1.2.3',
    '1.2',
    '1',
    '127.1', // inet_aton shorthand
    '1.2.3.4.5',
    '01.2.3.4', // leading zero: octal to inet_aton, so ambiguous
    '1.2.3.00',
    '1.2.3.010',
    '0x7f.0.0.1',
    '1.2.3.-1',
    '1.2.3.+1',
    '1..2.3',
    '.1.2.3',
    '1.2.3.4.',
    '1.2.3.a',
    '1234.1.1.1',
    '1.2.3.0004',
    ' 1.2.3.4',
    '1.2.3.4 ',
    '1.2.3.4\n',
    '1.2.3.4\u0000',
    '1. 2.3.4',
    '１.2.3.4', // full-width digit
    '',
  ])('refuses %j', (text) => {
    expect(parseIp(text)).toBeUndefined();
  });
});

describe('parseIp: IPv6', () => {
  it.each([
    ['::', bytes(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)],
    ['::1', bytes(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1)],
    ['1::', bytes(0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)],
    ['2001:db8::1', bytes(0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1)],
    ['2001:DB8::A:b', bytes(0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0a, 0, 0x0b)],
    ['1:2:3:4:5:6:7:8', bytes(0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8)],
    ['1:2:3:4:5:6:7::', bytes(0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 0)],
    ['::2:3:4:5:6:7:8', bytes(0, 0, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8)],
    ['1:2:3::6:7:8', bytes(0, 1, 0, 2, 0, 3, 0, 0, 0, 0, 0, 6, 0, 7, 0, 8)],
    ['0000:0000::0001', bytes(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1)],
    ['ffff:FFFF:fFfF:ffff:ffff:ffff:ffff:ffff', new Uint8Array(16).fill(0xff)],
    ['fe80::abcd:1', bytes(0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xab, 0xcd, 0, 1)],
    ['::1.2.3.4', bytes(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4)],
    ['64:ff9b::192.0.2.33', bytes(0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0, 192, 0, 2, 33)],
    ['1:2:3:4:5:6:1.2.3.4', bytes(0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 1, 2, 3, 4)],
    ['1::5:6:255.255.255.255', bytes(0, 1, 0, 0, 0, 0, 0, 0, 0, 5, 0, 6, 255, 255, 255, 255)],
  ])('parses %s', (text, expected) => {
    expect(parseIp(text)).toEqual(expected);
  });

  it('gives IPv4-mapped text the same bytes as the dotted quad, in every spelling', () => {
    const v4 = ip('1.2.3.4');
    for (const text of [
      '::ffff:1.2.3.4',
      '::FFFF:1.2.3.4',
      '::ffff:102:304',
      '::ffff:0102:0304',
      '0:0:0:0:0:ffff:1.2.3.4',
      '0000:0000:0000:0000:0000:ffff:0102:0304',
      '[::ffff:1.2.3.4]',
      '[::ffff:1.2.3.4]:443',
    ]) {
      expect(parseIp(text), text).toEqual(v4);
    }
  });

  it.each([
    ':',
    ':::',
    '1:::2',
    '1::2::3',
    '::1::',
    '1:2:3:4:5:6:7', // seven groups, no '::'
    '1:2:3:4:5:6:7:8:9',
    '1:2:3:4:5:6:7:8::', // '::' with nothing to stand for
    '::1:2:3:4:5:6:7:8',
    '1:2:3:4::5:6:7:8',
    ':1::',
    ':1:2:3:4:5:6:7:8',
    '1::2:',
    '1:2:3:4:5:6:7:8:',
    '12345::',
    '::12345',
    '00000::1',
    'g::1',
    '::1g',
    '1:2:3:4:5:6:7:1.2.3.4', // IPv4 tail needs two groups
    '::1:2:3:4:5:6:1.2.3.4',
    '::ffff:1.2.3',
    '::ffff:1.2.3.4.5',
    '::ffff:256.1.1.1',
    '::ffff:01.2.3.4',
    '::1.2.3.4:5',
    '::1.2.3.4::',
    '1.2.3.4::',
    '1.2.3.4::1',
    '::ffff:1.2.3.4:80', // a port needs brackets
    '1:2:3:4:5:6:1.2.3.4:1',
    '::-1',
    ': :',
    ':: ',
    ' ::1',
    '::1\t',
  ])('refuses %j', (text) => {
    expect(parseIp(text)).toBeUndefined();
  });

  it('refuses zone ids rather than stripping them', () => {
    for (const text of [
      'fe80::1%eth0',
      'fe80::1%1',
      'fe80::1%',
      '[fe80::1%eth0]',
      '[fe80::1%25eth0]:80',
      '::1%lo',
    ]) {
      expect(parseIp(text), text).toBeUndefined();
    }
  });

  it('reads a bare IPv6 address ending in digits as an address, never as address:port', () => {
    expect(parseIp('::1:80')).toEqual(ip('0:0:0:0:0:0:1:80'));
    expect(formatIp(ip('::1:80'))).toBe('::1:80');
  });
});

describe('parseIp: brackets and ports', () => {
  it.each([
    ['[::1]', '::1'],
    ['[::1]:8080', '::1'],
    ['[::1]:0', '::1'],
    ['[::1]:65535', '::1'],
    ['[2001:db8::1]:443', '2001:db8::1'],
    ['[2001:DB8::1]:00443', '2001:db8::1'],
    ['1.2.3.4:80', '1.2.3.4'],
    ['1.2.3.4:0', '1.2.3.4'],
    ['1.2.3.4:65535', '1.2.3.4'],
    ['[::ffff:10.0.0.1]:9', '10.0.0.1'],
  ])('parses %s as %s', (text, canonical) => {
    expect(formatIp(ip(text))).toBe(canonical);
  });

  it.each([
    '[::1]:65536',
    '[::1]:123456',
    '[::1]:',
    '[::1]:x',
    '[::1]:-1',
    '[::1]: 80',
    '[::1]x',
    '[::1]]',
    '[::1]:80:80',
    '[::1',
    '::1]',
    '[]',
    '[]:80',
    '[[::1]]',
    '[1.2.3.4]', // brackets are for IPv6 only
    '[1.2.3.4]:80',
    '1.2.3.4:',
    '1.2.3.4:65536',
    '1.2.3.4:123456',
    '1.2.3.4:-1',
    '1.2.3.4:8a',
    '1.2.3.4: 80',
    '1.2.3.4:80:80',
    '01.2.3.4:80',
    ':80',
    '[ ::1]',
  ])('refuses %j', (text) => {
    expect(parseIp(text)).toBeUndefined();
  });
});

describe('parseIp: garbage and bounds', () => {
  it.each([
    'unknown',
    'localhost',
    '_hidden',
    '"1.2.3.4"',
    "'::1'",
    'for=1.2.3.4',
    'null',
    'undefined',
    '\u0000',
    '1.2.3.4, 5.6.7.8',
    '-',
    '.',
    '/',
    '1.2.3.4/32',
    '::1/128',
  ])('refuses %j', (text) => {
    expect(parseIp(text)).toBeUndefined();
  });

  it(`refuses anything longer than ${MAX_ADDRESS_TEXT} characters before parsing`, () => {
    const longest = '[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:65535';
    expect(longest.length).toBeLessThanOrEqual(MAX_ADDRESS_TEXT);
    expect(formatIp(ip(longest))).toBe('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff');
    expect(parseIp('1'.repeat(MAX_ADDRESS_TEXT + 1))).toBeUndefined();
    expect(parseIp(`${' '.repeat(MAX_ADDRESS_TEXT)}::1`)).toBeUndefined();
    const huge = `1.2.3.4${'0'.repeat(10_000_000)}`;
    const started = performance.now();
    for (let i = 0; i < 1000; i++) expect(parseIp(huge)).toBeUndefined();
    expect(performance.now() - started).toBeLessThan(1000);
  });

  it('returns a fresh array each time', () => {
    const a = ip('10.1.2.3');
    a[15] = 99;
    expect(ip('10.1.2.3')).toEqual(mapped(10, 1, 2, 3));
    expect(ip('::1')).not.toBe(ip('::1'));
  });

  it('agrees with node:net isIP on generated near-miss text (no ports, brackets or zones)', () => {
    const random = rng(0x1f2e3d4c);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
    const hexGroup = () => {
      const length = 1 + Math.floor(random() * 5); // sometimes a fifth digit
      let out = '';
      for (let i = 0; i < length; i++) out += pick([...'0123456789abcdefABCDEF0']);
      return out;
    };
    const octet = () =>
      pick(['0', '1', '9', '10', '99', '100', '199', '255', '256', '00', '01', '300', '1000']);
    const v4 = () => Array.from({ length: pick([3, 4, 4, 4, 5]) }, octet).join('.');
    const piece = () => {
      const r = random();
      return r < 0.6 ? hexGroup() : r < 0.8 ? '' : r < 0.95 ? '0' : v4();
    };
    let valid = 0;
    for (let n = 0; n < 20_000; n++) {
      let text: string;
      if (random() < 0.2) {
        text = v4();
      } else {
        const parts = Array.from({ length: 1 + Math.floor(random() * 10) }, piece);
        text = parts.join(':');
        if (random() < 0.3) text = text.replace(pick([':', '::']), '::');
      }
      const colons = text.split(':').length - 1;
      if (colons === 1 || text.length > MAX_ADDRESS_TEXT) continue;
      const ours = parseIp(text) !== undefined;
      if (ours !== (isIP(text) !== 0)) throw new Error(`disagree with node:net on ${JSON.stringify(text)}`);
      if (ours) {
        valid++;
        if (colons >= 2) {
          // WHATWG URL canonicalises IPv6; re-parsing its output must give the same bytes.
          const hostname = new URL(`http://[${text}]/`).hostname.slice(1, -1);
          expect(parseIp(hostname), text).toEqual(parseIp(text));
        }
      }
    }
    expect(valid).toBeGreaterThan(500);
  });
});

describe('fromUwsAddress', () => {
  it('maps 4 raw IPv4 bytes', () => {
    expect(fromUwsAddress(Uint8Array.from([127, 0, 0, 1]).buffer)).toEqual(mapped(127, 0, 0, 1));
    expect(fromUwsAddress(Uint8Array.from([127, 0, 0, 1]).buffer)).toEqual(ip('127.0.0.1'));
  });

  it('copies 16 raw IPv6 bytes, including the mapped form a dual-stack socket reports', () => {
    const raw = ip('2001:db8::42').slice();
    const address = fromUwsAddress(raw.buffer)!;
    expect(address).toEqual(ip('2001:db8::42'));
    raw[15] = 0;
    expect(formatIp(address)).toBe('2001:db8::42'); // not aliased to uWS's buffer
    expect(fromUwsAddress(mapped(10, 0, 0, 2).slice().buffer)).toEqual(ip('10.0.0.2'));
  });

  it('refuses any other length (e.g. the empty buffer of a Unix socket)', () => {
    for (const length of [0, 1, 3, 5, 8, 15, 17, 32]) {
      expect(fromUwsAddress(new ArrayBuffer(length)), String(length)).toBeUndefined();
    }
  });
});

describe('formatIp', () => {
  it.each([
    // RFC 5952 section 4 examples and friends
    ['2001:db8:0:0:0:0:2:1', '2001:db8::2:1'],
    ['2001:0db8:0000:0000:0000:0000:0002:0001', '2001:db8::2:1'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // a lone zero group is not compressed
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'], // the longest run
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // the left-most on a tie
    ['1:0:0:2:0:0:0:3', '1:0:0:2::3'],
    ['0:1:0:1:0:1:0:1', '0:1:0:1:0:1:0:1'],
    ['2001:DB8::AAAA', '2001:db8::aaaa'],
    ['2001:db8::0001', '2001:db8::1'],
    ['0:0:0:0:0:0:0:0', '::'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['1:0:0:0:0:0:0:0', '1::'],
    ['1:0:0:0:0:0:0:1', '1::1'],
    ['0:0:1:0:0:0:0:0', '0:0:1::'],
    ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
    ['1:2:3:4:5:6:7:0', '1:2:3:4:5:6:7:0'],
    ['fe80:0:0:0:0:0:0:0', 'fe80::'],
    ['FFFF:0:0:0:0:0:0:FFFF', 'ffff::ffff'],
    ['::1.2.3.4', '::102:304'], // IPv4-compatible is not mapped
    ['64:ff9b::192.0.2.1', '64:ff9b::c000:201'],
    ['::fffe:1.2.3.4', '::fffe:102:304'],
    ['0:0:0:0:1:ffff:1.2.3.4', '::1:ffff:102:304'],
    ['ffff::1.2.3.4', 'ffff::102:304'],
  ])('formats %s as %s', (text, canonical) => {
    expect(formatIp(ip(text))).toBe(canonical);
  });

  it('prints IPv4-mapped addresses as plain IPv4', () => {
    expect(formatIp(ip('::ffff:127.0.0.1'))).toBe('127.0.0.1');
    expect(formatIp(ip('::ffff:7f00:1'))).toBe('127.0.0.1');
    expect(formatIp(ip('::ffff:0:0'))).toBe('0.0.0.0');
    expect(formatIp(ip('255.255.255.255'))).toBe('255.255.255.255');
    expect(formatIp(mapped(10, 20, 30, 40))).toBe('10.20.30.40');
  });

  it('refuses an array that is not 16 bytes', () => {
    expect(() => formatIp(new Uint8Array(4))).toThrow(RangeError);
  });

  it('round-trips: parse(format(a)) = a, format is idempotent, and matches WHATWG URL for IPv6', () => {
    const random = rng(42);
    for (let n = 0; n < 5000; n++) {
      const address = randomAddress(random);
      const text = formatIp(address);
      expect(parseIp(text), text).toEqual(address);
      expect(formatIp(ip(text))).toBe(text);
      if (text.includes(':')) {
        // WHATWG's serializer is RFC 5952 (it prints mapped addresses in hex, so those are skipped).
        expect(new URL(`http://[${text}]/`).hostname).toBe(`[${text}]`);
      } else {
        expect(isIP(text)).toBe(4);
      }
    }
  });
});

describe('parseCidrList', () => {
  it('gives the empty list for empty or blank text', () => {
    expect(cidrs('')).toEqual([]);
    expect(cidrs('   ')).toEqual([]);
    expect(cidrs(' , ,, ')).toEqual([]);
  });

  it('parses CIDRs and bare addresses, tolerating whitespace and empty entries', () => {
    const list = cidrs(' 10.0.0.0/8 ,192.168.1.1,,\tfd00::/8 , 2001:db8::1 ,::ffff:172.16.0.0/108,');
    expect(list.map((c) => c.prefix)).toEqual([104, 128, 8, 128, 108]);
    expect(list.map(formatCidr)).toEqual([
      '10.0.0.0/8',
      '192.168.1.1/32',
      'fd00::/8',
      '2001:db8::1/128',
      '172.16.0.0/12',
    ]);
    expect(list[0]!.network).toEqual(ip('10.0.0.0'));
  });

  it('puts IPv4 prefixes into the mapped space', () => {
    expect(cidrs('0.0.0.0/0')[0]).toEqual({ network: ip('::ffff:0:0'), prefix: 96 });
    expect(cidrs('1.2.3.4/32')[0]).toEqual({ network: ip('1.2.3.4'), prefix: 128 });
    expect(cidrs('::/0')[0]).toEqual({ network: new Uint8Array(16), prefix: 0 });
    expect(formatCidr(cidrs('::ffff:0:0/96')[0]!)).toBe('0.0.0.0/0');
    expect(formatCidr(cidrs('::fffe:0:0/95')[0]!)).toBe('::fffe:0:0/95');
    expect(cidrError('::ffff:0:0/95')).toContain('the network is ::fffe:0:0/95');
  });

  it.each([
    ['10.0.0.0/33', 'prefix length must be a whole number 0..32'],
    ['::/129', 'prefix length must be a whole number 0..128'],
    ['::ffff:0:0/200', '0..128'],
    ['10.0.0.0/', '0..32'],
    ['10.0.0.0/-1', '0..32'],
    ['10.0.0.0/+8', '0..32'],
    ['10.0.0.0/08', '0..32'],
    ['10.0.0.0/8.0', '0..32'],
    ['10.0.0.0/8/8', '0..32'],
    ['10.0.0.0/1000', '0..32'],
    ['10.0.0.0 /8', 'not an IPv4 or IPv6 address'],
    ['10.0.0.0/ 8', '0..32'],
    ['10.0.0.1/8', 'host bits are set after /8 (the network is 10.0.0.0/8)'],
    ['192.168.1.129/25', 'the network is 192.168.1.128/25'],
    ['2001:db8::1/32', 'the network is 2001:db8::/32'],
    ['fe80::1/10', 'the network is fe80::/10'],
    ['[::1]', 'not an IPv4 or IPv6 address'],
    ['[::1]/128', 'not an IPv4 or IPv6 address'],
    ['10.0.0.1:80', 'not an IPv4 or IPv6 address'],
    ['fe80::%eth0/64', 'not an IPv4 or IPv6 address'],
    ['fe80::1%eth0', 'not an IPv4 or IPv6 address'],
    ['/8', 'not an IPv4 or IPv6 address'],
    ['banana', 'not an IPv4 or IPv6 address'],
    ['010.0.0.0/8', 'not an IPv4 or IPv6 address'],
    ['10.0.0.0/8 10.0.0.1', '0..32'],
  ])('refuses %j', (text, message) => {
    const error = cidrError(text);
    expect(error).toContain(JSON.stringify(text));
    expect(error).toContain(message);
  });

  it('names the first bad entry, trimmed', () => {
    expect(cidrError('10.0.0.0/8,  bogus , also-bogus')).toBe(
      'invalid CIDR "bogus": not an IPv4 or IPv6 address (no brackets, ports or zone ids)',
    );
  });

  it('keeps the error readable for a huge entry', () => {
    const error = cidrError('x'.repeat(100_000));
    expect(error.length).toBeLessThan(200);
    expect(error).toContain('...');
  });
});

describe('inCidrs', () => {
  const check = (list: string, address: string) => inCidrs(ip(address), cidrs(list));

  it('matches IPv4 networks', () => {
    expect(check('10.0.0.0/8', '10.0.0.0')).toBe(true);
    expect(check('10.0.0.0/8', '10.255.255.255')).toBe(true);
    expect(check('10.0.0.0/8', '11.0.0.0')).toBe(false);
    expect(check('10.0.0.0/8', '9.255.255.255')).toBe(false);
    expect(check('172.16.0.0/12', '172.31.255.255')).toBe(true);
    expect(check('172.16.0.0/12', '172.32.0.0')).toBe(false);
    expect(check('172.16.0.0/12', '172.15.255.255')).toBe(false);
    expect(check('192.168.1.128/25', '192.168.1.128')).toBe(true);
    expect(check('192.168.1.128/25', '192.168.1.127')).toBe(false);
    expect(check('192.168.1.1', '192.168.1.1')).toBe(true);
    expect(check('192.168.1.1/32', '192.168.1.2')).toBe(false);
    expect(check('128.0.0.0/1', '200.1.1.1')).toBe(true);
    expect(check('128.0.0.0/1', '127.255.255.255')).toBe(false);
  });

  it('treats IPv4 /0 as all of IPv4 and nothing else, and ::/0 as everything', () => {
    for (const address of ['0.0.0.0', '1.2.3.4', '255.255.255.255']) {
      expect(check('0.0.0.0/0', address), address).toBe(true);
      expect(check('::/0', address), address).toBe(true);
    }
    for (const address of ['::', '::1', '2001:db8::1', '::1.2.3.4', '::fffe:1.2.3.4']) {
      expect(check('0.0.0.0/0', address), address).toBe(false);
      expect(check('::/0', address), address).toBe(true);
    }
  });

  it('matches IPv6 networks', () => {
    expect(check('2001:db8::/32', '2001:db8:ffff:ffff::1')).toBe(true);
    expect(check('2001:db8::/32', '2001:db9::')).toBe(false);
    expect(check('2001:db8::/33', '2001:db8:7fff::')).toBe(true);
    expect(check('2001:db8::/33', '2001:db8:8000::')).toBe(false);
    expect(check('fd00::/8', 'fdff::1')).toBe(true);
    expect(check('fd00::/8', 'fc00::1')).toBe(false);
    expect(check('fe80::/10', 'febf::1')).toBe(true);
    expect(check('fe80::/10', 'fec0::1')).toBe(false);
    expect(check('::1', '::1')).toBe(true);
    expect(check('::1/128', '::2')).toBe(false);
    expect(check('2001:db8::1', '2001:DB8:0::0:1')).toBe(true);
  });

  it('matches IPv4 against the mapped space, whichever way either side is written', () => {
    expect(check('::ffff:10.0.0.0/104', '10.1.2.3')).toBe(true);
    expect(check('10.0.0.0/8', '::ffff:10.1.2.3')).toBe(true);
    expect(check('10.0.0.0/8', '::ffff:a01:203')).toBe(true);
    expect(inCidrs(fromUwsAddress(Uint8Array.from([10, 1, 2, 3]).buffer)!, cidrs('10.0.0.0/8'))).toBe(true);
    expect(check('10.0.0.0/8', '::10.1.2.3')).toBe(false); // IPv4-compatible is another address
    expect(check('10.0.0.0/8', '64:ff9b::10.1.2.3')).toBe(false);
  });

  it('matches any entry of a list, and nothing for the empty list or a malformed array', () => {
    const list = cidrs('10.0.0.0/8, 2001:db8::/32, 192.168.1.1');
    expect(inCidrs(ip('192.168.1.1'), list)).toBe(true);
    expect(inCidrs(ip('2001:db8::5'), list)).toBe(true);
    expect(inCidrs(ip('192.168.1.2'), list)).toBe(false);
    expect(inCidrs(ip('10.0.0.1'), [])).toBe(false);
    expect(inCidrs(new Uint8Array(4), cidrs('::/0'))).toBe(false);
  });

  it('agrees with a bit-by-bit reference for random networks and addresses', () => {
    const random = rng(7);
    const bit = (a: Address16, i: number) => (a[i >> 3]! >> (7 - (i & 7))) & 1;
    for (let n = 0; n < 3000; n++) {
      const base = randomAddress(random);
      const prefix = Math.floor(random() * 129);
      const network = base.slice();
      for (let i = prefix; i < 128; i++) network[i >> 3] = network[i >> 3]! & ~(0x80 >> (i & 7));
      const text = formatIp(network);
      if (!text.includes(':') && prefix < 96) continue; // dotted text only takes /0../32
      const list = cidrs(`${text}/${text.includes(':') ? prefix : prefix - 96}`);
      const address = base.slice();
      if (random() < 0.5) {
        const flip = Math.floor(random() * 128);
        address[flip >> 3] = address[flip >> 3]! ^ (0x80 >> (flip & 7));
      }
      let expected = true;
      for (let i = 0; i < prefix; i++) if (bit(address, i) !== bit(network, i)) expected = false;
      expect(inCidrs(address, list), `${formatIp(address)} in ${formatCidr(list[0]!)}`).toBe(expected);
    }
  });
});

describe('resolveClientAddress', () => {
  const trusted = cidrs('10.0.0.0/8, 192.168.1.1, fd00::/8');
  const proxy = ip('10.0.0.2');
  const resolve = (peer: Address16, header: string | undefined, list: readonly Cidr[] = trusted) =>
    formatIp(resolveClientAddress(peer, header, list));

  describe('an untrusted peer', () => {
    it('is the client: a forged X-Forwarded-For is ignored entirely', () => {
      const attacker = ip('203.0.113.5');
      expect(resolve(attacker, '1.1.1.1')).toBe('203.0.113.5');
      expect(resolve(attacker, '10.0.0.3')).toBe('203.0.113.5');
      expect(resolve(attacker, '1.1.1.1, 10.0.0.3, 192.168.1.1')).toBe('203.0.113.5');
      expect(resolveClientAddress(attacker, '1.1.1.1', trusted)).toBe(attacker);
    });

    it('does no work on the header at all', () => {
      const attacker = ip('203.0.113.5');
      const header = '10.0.0.1,'.repeat(1_000_000);
      const started = performance.now();
      for (let i = 0; i < 1000; i++) resolveClientAddress(attacker, header, trusted);
      expect(performance.now() - started).toBeLessThan(500);
    });

    it('is the client when nothing is trusted', () => {
      expect(resolve(proxy, '1.1.1.1', [])).toBe('10.0.0.2');
    });
  });

  describe('a trusted peer', () => {
    it('is returned itself when the header is absent or empty', () => {
      expect(resolveClientAddress(proxy, undefined, trusted)).toBe(proxy);
      expect(resolveClientAddress(proxy, '', trusted)).toBe(proxy);
      expect(resolveClientAddress(proxy, ' ', trusted)).toBe(proxy);
      expect(resolveClientAddress(proxy, ',,', trusted)).toBe(proxy);
      expect(resolveClientAddress(proxy, ' , \t,, ', trusted)).toBe(proxy);
    });

    it('vouches for the entry it appended: "client" and "client, proxy1"', () => {
      expect(resolve(proxy, '198.51.100.7')).toBe('198.51.100.7');
      expect(resolve(proxy, '198.51.100.7, 10.0.0.3')).toBe('198.51.100.7');
      expect(resolve(proxy, '198.51.100.7,10.0.0.3,192.168.1.1')).toBe('198.51.100.7');
    });

    it('takes the right-most untrusted entry; client claims further left are ignored', () => {
      // The attacker at 198.51.100.7 sent "X-Forwarded-For: 6.6.6.6" to our edge proxy.
      expect(resolve(proxy, '6.6.6.6, 198.51.100.7')).toBe('198.51.100.7');
      expect(resolve(proxy, '6.6.6.6, 198.51.100.7, 10.0.0.3')).toBe('198.51.100.7');
      // ...or claimed to be one of our proxies, or to have come through them.
      expect(resolve(proxy, '10.0.0.9, 198.51.100.7')).toBe('198.51.100.7');
      expect(resolve(proxy, '6.6.6.6, 10.0.0.9, 198.51.100.7, 10.0.0.3')).toBe('198.51.100.7');
      expect(resolve(proxy, '192.168.1.1, 198.51.100.7')).toBe('198.51.100.7');
    });

    it('returns the left-most trusted hop when every entry is trusted', () => {
      expect(resolve(proxy, '10.0.0.3')).toBe('10.0.0.3');
      expect(resolve(proxy, '192.168.1.1, 10.0.0.3')).toBe('192.168.1.1');
      expect(resolve(proxy, 'fd00::7, 10.0.0.3')).toBe('fd00::7');
    });

    it('stops at garbage and returns the last trusted hop examined', () => {
      expect(resolve(proxy, 'unknown')).toBe('10.0.0.2');
      expect(resolve(proxy, '1.2.3.4, unknown')).toBe('10.0.0.2');
      expect(resolve(proxy, '1.2.3.4, garbage, 10.0.0.3')).toBe('10.0.0.3');
      expect(resolve(proxy, '1.2.3.4, 10.0.0.9, 1.2.3, 10.0.0.3')).toBe('10.0.0.3');
      expect(resolve(proxy, '1.2.3.4, 01.2.3.4')).toBe('10.0.0.2');
      expect(resolve(proxy, '1.2.3.4, "5.6.7.8"')).toBe('10.0.0.2');
      expect(resolve(proxy, '1.2.3.4, fe80::1%eth0')).toBe('10.0.0.2');
      expect(resolve(proxy, '1.2.3.4, 5.6.7.8 9.9.9.9')).toBe('10.0.0.2');
      expect(resolve(proxy, '1.2.3.4, _hidden, 10.0.0.3')).toBe('10.0.0.3');
      expect(resolve(proxy, `1.2.3.4, ${'9'.repeat(5000)}`)).toBe('10.0.0.2');
    });

    it('skips empty entries without counting them', () => {
      expect(resolve(proxy, ',,198.51.100.7,,')).toBe('198.51.100.7');
      expect(resolve(proxy, '6.6.6.6,, ,198.51.100.7, ,10.0.0.3,')).toBe('198.51.100.7');
      expect(resolve(proxy, ' ,\t,10.0.0.3')).toBe('10.0.0.3');
      expect(resolve(proxy, '\t198.51.100.7\t')).toBe('198.51.100.7');
      const trustedHops = Array.from({ length: MAX_FORWARDED_ENTRIES - 1 }, (_, i) => `10.0.1.${i}`);
      expect(resolve(proxy, `198.51.100.7${','.repeat(100)}${trustedHops.join(', ,')}`)).toBe('198.51.100.7');
    });

    it('understands IPv6 entries, brackets and ports', () => {
      expect(resolve(proxy, '2001:db8::1')).toBe('2001:db8::1');
      expect(resolve(proxy, '2001:DB8:0::1, fd00::1')).toBe('2001:db8::1');
      expect(resolve(proxy, '[2001:db8::1]:4711, [fd00::1]:443')).toBe('2001:db8::1');
      expect(resolve(proxy, '198.51.100.7:5555, 10.0.0.3:80')).toBe('198.51.100.7');
      expect(resolve(ip('fd00::5'), '::ffff:198.51.100.7')).toBe('198.51.100.7');
      expect(resolve(ip('fd00::5'), '2001:db8::1, ::ffff:10.0.0.3')).toBe('2001:db8::1');
      expect(resolve(ip('2001:db8::5'), '1.1.1.1')).toBe('2001:db8::5');
    });

    it('trusts an IPv4-mapped peer through an IPv4 CIDR (and the reverse)', () => {
      const fromDualStack = fromUwsAddress(mapped(10, 0, 0, 2).slice().buffer)!;
      const fromV4Socket = fromUwsAddress(Uint8Array.from([10, 0, 0, 2]).buffer)!;
      expect(resolve(fromDualStack, '198.51.100.7')).toBe('198.51.100.7');
      expect(resolve(fromV4Socket, '198.51.100.7')).toBe('198.51.100.7');
      expect(resolve(ip('10.0.0.2'), '198.51.100.7', cidrs('::ffff:10.0.0.0/104'))).toBe('198.51.100.7');
      expect(resolve(ip('10.0.0.2'), '198.51.100.7', cidrs('::ffff:0:0/96'))).toBe('198.51.100.7');
      // IPv4 /0 covers IPv4 peers only.
      expect(resolve(ip('2001:db8::5'), '198.51.100.7', cidrs('0.0.0.0/0'))).toBe('2001:db8::5');
    });

    it(`examines at most the right-most ${MAX_FORWARDED_ENTRIES} entries`, () => {
      const hops = (n: number) => Array.from({ length: n }, (_, i) => `10.0.${i >> 8}.${i & 0xff}`);
      // Exactly at the limit: the client is the 32nd entry from the right.
      const within = hops(MAX_FORWARDED_ENTRIES - 1);
      expect(resolve(proxy, ['198.51.100.7', ...within].join(','))).toBe('198.51.100.7');
      // One past: the walk ends on the left-most trusted hop examined.
      const over = hops(MAX_FORWARDED_ENTRIES);
      expect(resolve(proxy, ['198.51.100.7', ...over].join(','))).toBe(over[0]);
    });

    it('copes with a header of 1000 entries', () => {
      const hops = Array.from({ length: 1000 }, (_, i) => `10.${i >> 8}.${i & 0xff}.1`);
      // All trusted: the 32nd from the right.
      expect(resolve(proxy, hops.join(', '))).toBe(hops[1000 - MAX_FORWARDED_ENTRIES]);
      // A client claim at the far left is never reached.
      expect(resolve(proxy, ['6.6.6.6', ...hops].join(', '))).toBe(hops[1000 - MAX_FORWARDED_ENTRIES]);
      // An untrusted entry near the right is found.
      const withClient = [...hops.slice(0, 990), '198.51.100.7', ...hops.slice(990)];
      expect(resolve(proxy, withClient.join(','))).toBe('198.51.100.7');
      // 1000 garbage or client entries: the right-most decides.
      expect(
        resolve(proxy, Array.from({ length: 1000 }, (_, i) => `198.51.${i >> 8}.${i & 0xff}`).join(',')),
      ).toBe('198.51.3.231');
      expect(resolve(proxy, 'x,'.repeat(1000))).toBe('10.0.0.2');
    });

    it(`looks at only the right-most ${MAX_FORWARDED_CHARS} characters, dropping the entry the cut lands in`, () => {
      // `,   ...   10.0.0.3` of the given total length: one trusted entry after a lot of OWS.
      const tail = (length: number) => `,${' '.repeat(length - 9)}10.0.0.3`;
      // The cut lands inside "11.2.3.4": its tail "1.2.3.4" must not be read as an address.
      const cutInside = `6.6.6.6,11.2.3.4${tail(MAX_FORWARDED_CHARS - 7)}`;
      expect(cutInside.slice(cutInside.length - MAX_FORWARDED_CHARS)).toMatch(/^1\.2\.3\.4, /);
      expect(resolve(proxy, cutInside)).toBe('10.0.0.3');
      // The cut lands exactly at the start of an entry: that entry is whole and examined.
      const cutAtStart = `6.6.6.6,198.51.100.7${tail(MAX_FORWARDED_CHARS - 12)}`;
      expect(cutAtStart.slice(cutAtStart.length - MAX_FORWARDED_CHARS)).toMatch(/^198\.51\.100\.7, /);
      expect(resolve(proxy, cutAtStart)).toBe('198.51.100.7');
      // The cut lands on the comma after an entry: that entry is outside.
      const cutOnComma = `6.6.6.6,198.51.100.7${tail(MAX_FORWARDED_CHARS)}`;
      expect(cutOnComma.charAt(cutOnComma.length - MAX_FORWARDED_CHARS)).toBe(',');
      expect(resolve(proxy, cutOnComma)).toBe('10.0.0.3');
      // The cut lands on the comma before an entry: the entry is whole and examined.
      expect(resolve(proxy, `6.6.6.6,198.51.100.7${tail(MAX_FORWARDED_CHARS - 13)}`)).toBe('198.51.100.7');
      // A single entry longer than the window is garbage.
      expect(resolve(proxy, `${'1'.repeat(MAX_FORWARDED_CHARS + 1)}`)).toBe('10.0.0.2');
      expect(resolve(proxy, `${' '.repeat(MAX_FORWARDED_CHARS)}1.2.3.4`)).toBe('10.0.0.2');
      // A long header whose right end names the client works as usual.
      expect(resolve(proxy, `${'6.6.6.6,'.repeat(10_000)}198.51.100.7, 10.0.0.3`)).toBe('198.51.100.7');
    });

    it('returns fresh addresses for clients, and the peer itself otherwise', () => {
      const header = '198.51.100.7';
      const a = resolveClientAddress(proxy, header, trusted);
      const b = resolveClientAddress(proxy, header, trusted);
      expect(a).toEqual(b);
      expect(a).not.toBe(b);
      expect(resolveClientAddress(proxy, 'garbage', trusted)).toBe(proxy);
    });

    it('lets everything through when everything is trusted, bounded all the same', () => {
      const all = cidrs('::/0');
      expect(resolve(ip('203.0.113.5'), '1.1.1.1, 2.2.2.2')).toBe('203.0.113.5');
      expect(resolve(ip('203.0.113.5'), '1.1.1.1, 2.2.2.2', all)).toBe('1.1.1.1');
      expect(resolve(ip('203.0.113.5'), 'junk, 2.2.2.2', all)).toBe('2.2.2.2');
    });
  });
});

describe('appendForwardedLine', () => {
  const trusted = cidrs('10.0.0.0/8');
  const proxy = ip('10.0.0.2');
  const joinAll = (lines: readonly string[]) =>
    lines.reduce<string | undefined>((joined, line) => appendForwardedLine(joined, line), undefined);

  it('joins the lines in order with commas, as one list', () => {
    expect(joinAll(['1.1.1.1'])).toBe('1.1.1.1');
    expect(joinAll(['1.1.1.1', '203.0.113.9'])).toBe('1.1.1.1,203.0.113.9');
    expect(joinAll(['1.1.1.1, 2.2.2.2', '', '203.0.113.9', '10.0.0.3'])).toBe(
      '1.1.1.1, 2.2.2.2,,203.0.113.9,10.0.0.3',
    );
    // The proxy-appended last line decides, not the client's first.
    expect(formatIp(resolveClientAddress(proxy, joinAll(['6.6.6.6', '203.0.113.9']), trusted))).toBe(
      '203.0.113.9',
    );
  });

  it(`keeps at most ${MAX_FORWARDED_CHARS + 1} characters however many lines come`, () => {
    let joined: string | undefined;
    for (let i = 0; i < 10_000; i++) {
      joined = appendForwardedLine(joined, '6.6.6.6, '.repeat(50));
      expect(joined.length).toBeLessThanOrEqual(MAX_FORWARDED_CHARS + 1);
    }
    expect(resolveClientAddress(proxy, appendForwardedLine(joined, '203.0.113.9'), trusted)).toEqual(
      ip('203.0.113.9'),
    );
  });

  it('still drops the entry the cut lands in when the cut falls in an earlier line', () => {
    // The right-most MAX_FORWARDED_CHARS characters start inside "11.2.3.4": "1.2.3.4" must not be read.
    const lines = ['6.6.6.6,11.2.3.4', `${' '.repeat(MAX_FORWARDED_CHARS - 16)}10.0.0.3`];
    expect(lines.join(',').slice(-MAX_FORWARDED_CHARS)).toMatch(/^1\.2\.3\.4,/);
    expect(formatIp(resolveClientAddress(proxy, joinAll(lines), trusted))).toBe('10.0.0.3');
  });

  it('resolves every set of lines exactly as the whole joined header, cut anywhere', () => {
    const entry = fc.oneof(
      fc.constantFrom('10.0.0.3', '10.1.2.3', '203.0.113.9', '198.51.100.20', '11.2.3.4', 'junk', '', ' '),
      fc.stringMatching(/^[0-9., ]{0,40}$/),
    );
    const line = fc.array(entry, { maxLength: 8 }).map((entries) => entries.join(','));
    // Long padding lines put the MAX_FORWARDED_CHARS cut at every position relative to an entry.
    const padding = fc.nat({ max: 3 * MAX_FORWARDED_CHARS }).map((n) => ' '.repeat(n));
    const lines = fc.array(fc.oneof(line, padding), { minLength: 1, maxLength: 12 });
    fc.assert(
      fc.property(lines, (ls) => {
        const whole = resolveClientAddress(proxy, ls.join(','), trusted);
        expect(resolveClientAddress(proxy, joinAll(ls), trusted)).toEqual(whole);
      }),
      { numRuns: 2_000 },
    );
  });
});

describe('addressKey', () => {
  it('is four little-endian int32s of the 16 bytes', () => {
    const key = addressKey(ip('1.2.3.4'));
    expect(key).toBeInstanceOf(Int32Array);
    expect(Array.from(key)).toEqual([0, 0, 0xffff0000 | 0, 0x04030201]);
    expect(Array.from(addressKey(ip('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff')))).toEqual([-1, -1, -1, -1]);
    expect(Array.from(addressKey(ip('8000::')))).toEqual([0x80, 0, 0, 0]);
  });

  it('writes into the array it is given, and returns it', () => {
    const into = new Int32Array(4);
    expect(addressKey(ip('1.2.3.4'), into)).toBe(into);
    expect(Array.from(into)).toEqual([0, 0, 0xffff0000 | 0, 0x04030201]);
    addressKey(ip('8000::'), into);
    expect(Array.from(into)).toEqual([0x80, 0, 0, 0]);
  });

  it('is equal for equal addresses and differs for different ones', () => {
    expect(addressKey(ip('10.0.0.1'))).toEqual(addressKey(ip('::ffff:10.0.0.1')));
    expect(addressKey(ip('10.0.0.1'))).not.toEqual(addressKey(ip('10.0.0.2')));
    expect(addressKey(ip('::1'))).not.toEqual(addressKey(ip('::100')));
  });

  it('copies, and reads a view at any offset', () => {
    const address = ip('2001:db8::1');
    const key = addressKey(address);
    key[0] = 0;
    expect(formatIp(address)).toBe('2001:db8::1');
    address[15] = 2;
    expect(key[3]).toBe(0x01000000);
    const backing = new Uint8Array(21);
    backing.set(ip('2001:db8::1'), 5);
    expect(addressKey(backing.subarray(5))).toEqual(addressKey(ip('2001:db8::1')));
  });

  it('refuses an array that is not 16 bytes', () => {
    expect(() => addressKey(new Uint8Array(4))).toThrow(RangeError);
  });
});
