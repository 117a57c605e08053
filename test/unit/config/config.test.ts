import { describe, expect, it } from 'vitest';
import { CONFIG_VARIABLES, describeConfig, loadConfig } from '../../../src/config/config.js';
import { config, errors } from '../../support/load-config.js';

describe('loadConfig defaults', () => {
  it('gives the documented defaults for an empty environment', () => {
    const c = config({});
    expect({ ...c, products: c.products.map((p) => p.id) }).toMatchObject({
      host: '0.0.0.0',
      port: 8080,
      logLevel: 'info',
      feedSource: 'simulator',
      products: ['BTC-USD', 'ETH-USD', 'SOL-USD', 'ETH-BTC'],
      simEventsPerSecond: 20,
      subscribeTimeoutMs: 5_000,
      statusIntervalMs: 10_000,
      shutdownTimeoutMs: 10_000,
      idleTimeoutSeconds: 120,
      maxPayloadBytes: 4_096,
    });
    expect(c.simSeed).toBeUndefined();
    expect('simSeed' in c).toBe(true);
  });

  it('has a default for every variable: an empty environment is valid', () => {
    expect(loadConfig({}).ok).toBe(true);
  });

  it('derives the products from their ids', () => {
    const [btc, , , ethBtc] = config({}).products;
    expect(btc).toEqual({
      id: 'BTC-USD',
      baseCurrency: 'BTC',
      quoteCurrency: 'USD',
      quoteDecimals: 2,
      baseDecimals: 8,
      quoteIncrement: '0.01',
      baseIncrement: '0.00000001',
      minMarketFunds: '1',
      referencePrice: 64_000,
      typicalOrderSize: 0.03125,
    });
    expect(ethBtc).toMatchObject({ quoteDecimals: 5, quoteIncrement: '0.00001', referencePrice: 0.05 });
  });

  it('treats an empty or blank variable as unset', () => {
    const blank = Object.fromEntries(Object.keys(CONFIG_VARIABLES).map((name) => [name, '']));
    expect(config(blank)).toEqual(config({}));
    const spaces = Object.fromEntries(Object.keys(CONFIG_VARIABLES).map((name) => [name, '   ']));
    expect(config(spaces)).toEqual(config({}));
  });

  it('ignores unrelated variables', () => {
    expect(config({ PATH: '/usr/bin', HOME: '/root', NODE_ENV: 'production' })).toEqual(config({}));
  });

  it('declares a default that its own schema accepts for every variable', () => {
    for (const [name, spec] of Object.entries(CONFIG_VARIABLES)) {
      expect(spec.schema.safeParse(spec.defaultValue).success, name).toBe(true);
      expect(spec.accepts.length, name).toBeGreaterThan(0);
      expect(spec.description.length, name).toBeGreaterThan(0);
    }
  });
});

describe('loadConfig values', () => {
  it('reads every variable', () => {
    const c = config({
      HOST: '127.0.0.1',
      PORT: '0',
      LOG_LEVEL: 'debug',
      FEED_SOURCE: 'simulator',
      PRODUCTS: ' ETH-EUR , DOGE-USD ',
      SIM_EVENTS_PER_SEC: '0.5',
      SIM_SEED: '4294967295',
      SUBSCRIBE_TIMEOUT_MS: '100',
      STATUS_INTERVAL_MS: '3600000',
      SHUTDOWN_TIMEOUT_MS: '300000',
      WS_IDLE_TIMEOUT_S: '960',
      WS_MAX_PAYLOAD_BYTES: '1048576',
    });
    expect(describeConfig(c)).toMatchObject({
      host: '127.0.0.1',
      port: 0,
      logLevel: 'debug',
      feedSource: 'simulator',
      products: ['ETH-EUR', 'DOGE-USD'],
      simEventsPerSecond: 0.5,
      simSeed: 4_294_967_295,
      subscribeTimeoutMs: 100,
      statusIntervalMs: 3_600_000,
      shutdownTimeoutMs: 300_000,
      idleTimeoutSeconds: 960,
      maxPayloadBytes: 1_048_576,
    });
  });

  it('accepts host names and IPv6 addresses', () => {
    expect(config({ HOST: 'gateway.internal' }).host).toBe('gateway.internal');
    expect(config({ HOST: '::' }).host).toBe('::');
    expect(config({ HOST: ' localhost ' }).host).toBe('localhost');
  });

  it('accepts REDIS_URL with credentials, IPv6 hosts, ports 1-65535 and database numbers', () => {
    for (const url of [
      'redis://127.0.0.1:6379',
      'redis://redis.internal',
      'rediss://user:secret@redis.internal:6380/3',
      'redis://:secret@[::1]:1/0',
      'redis://h:65535/',
      'redis://h/2147483647',
    ])
      expect(config({ REDIS_URL: url }).redis.url, url).toBe(url);
  });

  it('refuses a REDIS_URL ioredis would choke on later, saying what is wrong', () => {
    const why = (url: string) => {
      const found = errors({ REDIS_URL: url });
      expect(found).toHaveLength(1);
      expect(found[0]?.startsWith('REDIS_URL='), found[0]).toBe(true);
      expect(found[0]?.endsWith(`: expected ${CONFIG_VARIABLES.REDIS_URL.accepts}`), found[0]).toBe(true);
      return found[0]!.slice(found[0]!.indexOf('is invalid ('));
    };
    expect(why('redis://127.0.0.1:99999')).toContain('port out of range (1-65535)');
    expect(why('redis://127.0.0.1:65536/0')).toContain('port out of range (1-65535)');
    expect(why('redis://127.0.0.1:0')).toContain('port out of range (1-65535)');
    expect(why('redis://host:6379/abc')).toContain('database "abc" is not an integer from 0 to 2147483647');
    expect(why('redis://host:6379/-1')).toContain('database "-1" is not an integer');
    expect(why('redis://host/1.5')).toContain('database "1.5"');
    expect(why('redis://host/2147483648')).toContain('database "2147483648"');
    expect(why('redis://host/0/extra')).toContain('database "0/extra"');
    expect(why('redis://host/01')).toContain('database "01"');
    expect(why('redis://host:6379?db=2')).toContain('query or fragment not accepted');
    expect(why('redis://host:6379#x')).toContain('query or fragment not accepted');
    expect(why('redis://:6379')).toContain('not a valid URL');
    expect(why('redis://host:port')).toContain('not a valid URL');
    expect(why('redis:///0')).toMatch(/no host|not a valid URL/);
    expect(why('http://host:6379')).toContain('not a redis:// or rediss:// URL');
    expect(why('host:6379')).toContain('not a redis:// or rediss:// URL');
  });

  it('never quotes a REDIS_URL password back in an error', () => {
    const [error] = errors({ REDIS_URL: 'redis://user:hunter2@host:99999' });
    expect(error).not.toContain('hunter2');
    expect(error).toContain('REDIS_URL="redis://[redacted]@host:99999" is invalid (port out of range');
  });

  it('accepts SIM_SEED 0', () => {
    expect(config({ SIM_SEED: '0' }).simSeed).toBe(0);
  });

  it('accepts WS_IDLE_TIMEOUT_S 0 (off) and 8 to 960 only', () => {
    for (const ok of [0, 8, 9, 120, 959, 960]) {
      expect(config({ WS_IDLE_TIMEOUT_S: String(ok) }).idleTimeoutSeconds).toBe(ok);
    }
    for (const bad of ['1', '7', '961', '-8', '8.5', 'off']) {
      const [error, ...rest] = errors({ WS_IDLE_TIMEOUT_S: bad });
      expect(rest).toEqual([]);
      expect(error).toMatch(new RegExp(`^WS_IDLE_TIMEOUT_S="${bad.replace('.', '\\.')}" is invalid \\(`));
      expect(error).toMatch(/: expected 0 \(off\) or an integer from 8 to 960$/);
    }
    expect(errors({ WS_IDLE_TIMEOUT_S: '7' })).toEqual([
      'WS_IDLE_TIMEOUT_S="7" is invalid (uWS accepts 0 or 8 to 960): expected 0 (off) or an integer from 8 to 960',
    ]);
  });

  it('checks the bounds of the other integers', () => {
    expect(config({ PORT: '65535' }).port).toBe(65_535);
    expect(errors({ PORT: '65536' })).toHaveLength(1);
    expect(errors({ PORT: '-1' })).toHaveLength(1);
    expect(errors({ SUBSCRIBE_TIMEOUT_MS: '99' })).toHaveLength(1);
    expect(errors({ SUBSCRIBE_TIMEOUT_MS: '600001' })).toHaveLength(1);
    expect(errors({ STATUS_INTERVAL_MS: '999' })).toHaveLength(1);
    expect(errors({ SHUTDOWN_TIMEOUT_MS: '99' })).toHaveLength(1);
    expect(errors({ WS_MAX_PAYLOAD_BYTES: '511' })).toHaveLength(1);
    expect(errors({ WS_MAX_PAYLOAD_BYTES: '1048577' })).toHaveLength(1);
    expect(errors({ SIM_SEED: '4294967296' })).toHaveLength(1);
    expect(errors({ SIM_EVENTS_PER_SEC: '0.09' })).toHaveLength(1);
    expect(errors({ SIM_EVENTS_PER_SEC: '10001' })).toHaveLength(1);
    expect(config({ SIM_EVENTS_PER_SEC: '10000' }).simEventsPerSecond).toBe(10_000);
  });
});

describe('loadConfig errors', () => {
  it('reports every bad variable at once, naming it, its value and what it accepts', () => {
    const env = {
      HOST: 'bad host',
      PORT: 'eighty',
      LOG_LEVEL: 'loud',
      FEED_SOURCE: 'coinbase',
      PRODUCTS: 'BTC-XYZ',
      SIM_EVENTS_PER_SEC: '0',
      SIM_SEED: '-1',
      SUBSCRIBE_TIMEOUT_MS: '1e3',
      STATUS_INTERVAL_MS: '1.5',
      SHUTDOWN_TIMEOUT_MS: '300001',
      WS_IDLE_TIMEOUT_S: '7',
      WS_MAX_PAYLOAD_BYTES: '511',
    };
    const found = errors(env);
    expect(found).toHaveLength(Object.keys(env).length);
    for (const [name, value] of Object.entries(env)) {
      const matching = found.filter((e) => e.startsWith(`${name}=`));
      expect(matching, name).toHaveLength(1);
      const error = matching[0] ?? '';
      expect(error.startsWith(`${name}=${JSON.stringify(value)} is invalid (`), error).toBe(true);
      const accepts = CONFIG_VARIABLES[name as keyof typeof CONFIG_VARIABLES].accepts;
      expect(error.endsWith(`: expected ${accepts}`), error).toBe(true);
    }
    expect(found).toContain(
      'PORT="eighty" is invalid (not an integer): expected an integer from 0 to 65535 (0 picks a free port)',
    );
    expect(found.find((e) => e.startsWith('LOG_LEVEL='))).toContain(
      'expected one of fatal, error, warn, info, debug, trace, silent',
    );
    expect(found.find((e) => e.startsWith('FEED_SOURCE='))).toContain('expected one of simulator');
  });

  it('reports all variables, in declaration order, when every one is bad', () => {
    // A password can be any text: it has no bad value.
    const passwords = ['REDIS_PASSWORD', 'REDIS_SENTINEL_PASSWORD'];
    const names = Object.keys(CONFIG_VARIABLES).filter((name) => !passwords.includes(name));
    const found = errors(Object.fromEntries(names.map((name) => [name, '?!'])));
    expect(found.map((e) => e.slice(0, e.indexOf('=')))).toEqual(names);
    for (const [i, name] of names.entries()) {
      const accepts = CONFIG_VARIABLES[name as keyof typeof CONFIG_VARIABLES].accepts;
      expect(found[i]).toMatch(/^[A-Z0-9_]+="\?!" is invalid \(.+\): expected /);
      expect(found[i]?.endsWith(`: expected ${accepts}`), name).toBe(true);
    }
  });

  it('keeps good variables out of the report', () => {
    expect(errors({ PORT: '8081', LOG_LEVEL: 'nope', HOST: 'localhost' })).toEqual([
      expect.stringMatching(/^LOG_LEVEL="nope" is invalid/),
    ]);
  });

  it('names an unknown currency in PRODUCTS and lists the known ones', () => {
    const [error, ...rest] = errors({ PRODUCTS: 'BTC-USD,BTC-XYZ' });
    expect(rest).toEqual([]);
    expect(error).toBe(
      'PRODUCTS="BTC-USD,BTC-XYZ" is invalid ("BTC-XYZ" uses unknown currency XYZ ' +
        '(known: USD, EUR, GBP, USDC, USDT, BTC, ETH, SOL, LTC, DOGE)): ' +
        'expected 1 to 100 distinct comma-separated BASE-QUOTE ids of known currencies',
    );
    expect(errors({ PRODUCTS: 'FOO-BAR' })[0]).toContain('"FOO-BAR" uses unknown currency FOO, BAR');
  });

  it('refuses malformed, duplicate, same-currency and empty product lists', () => {
    expect(errors({ PRODUCTS: 'btc-usd' })[0]).toContain(
      '"btc-usd" is not of the form BASE-QUOTE (e.g. BTC-USD)',
    );
    expect(errors({ PRODUCTS: 'BTCUSD' })[0]).toContain('is not of the form BASE-QUOTE');
    expect(errors({ PRODUCTS: 'BTC-BTC' })[0]).toContain('"BTC-BTC" has the same base and quote currency');
    expect(errors({ PRODUCTS: 'BTC-USD, BTC-USD' })[0]).toContain('duplicate product id');
    expect(errors({ PRODUCTS: ' , ,' })).toHaveLength(1);
    const many = Array.from({ length: 101 }, (_, i) => `BTC-USD${i}`).join(',');
    expect(errors({ PRODUCTS: many })).toHaveLength(1);
  });

  it('refuses non-numeric and signed numbers where integers are expected', () => {
    for (const bad of ['8080.0', '0x1f90', '+8080', '8 080', 'Infinity']) {
      expect(errors({ PORT: bad }), bad).toHaveLength(1);
    }
    expect(errors({ SIM_EVENTS_PER_SEC: '-5' })).toHaveLength(1);
    expect(errors({ SIM_EVENTS_PER_SEC: '1e3' })).toHaveLength(1);
  });
});

describe('slow-consumer limits', () => {
  it('accepts a slow queue far larger than the hard limit: it is delivered in pieces (issue 13.2)', () => {
    const flow = config({
      WS_BACKPRESSURE_HIGH_BYTES: '16384',
      WS_MAX_BACKPRESSURE_BYTES: '262144',
      WS_SLOW_QUEUE_MAX_MESSAGES: '100000',
      WS_SLOW_CONSUMER_TIMEOUT_MS: '30000',
    }).flowControl;
    expect(flow.slowQueueMaxMessages).toBe(100_000);
    expect(flow.maxBackpressureBytes).toBe(262_144);
  });

  it('refuses a hard limit under twice the high-water mark, where a piece and ErrSlowConsume might not fit', () => {
    expect(
      config({ WS_BACKPRESSURE_HIGH_BYTES: '32768', WS_MAX_BACKPRESSURE_BYTES: '65536' }).flowControl,
    ).toMatchObject({
      highWaterBytes: 32_768,
      maxBackpressureBytes: 65_536,
    });
    expect(errors({ WS_BACKPRESSURE_HIGH_BYTES: '32769', WS_MAX_BACKPRESSURE_BYTES: '65536' })).toEqual([
      'WS_MAX_BACKPRESSURE_BYTES="65536" is invalid (below twice WS_BACKPRESSURE_HIGH_BYTES=32769): ' +
        `expected ${CONFIG_VARIABLES.WS_MAX_BACKPRESSURE_BYTES.accepts}`,
    ]);
  });
});

describe('ADMIN_PORT and the open-files limit', () => {
  const withLimit = (env: Record<string, string>, openFilesLimit: number) =>
    loadConfig(env, { openFilesLimit });

  it('ADMIN_PORT defaults to 9091 and may not be the same as a non-zero PORT', () => {
    expect(config({}).adminPort).toBe(9091);
    expect(config({ PORT: '0', ADMIN_PORT: '0' }).adminPort).toBe(0);
    expect(errors({ PORT: '9091' })).toEqual([
      'ADMIN_PORT="" is invalid (the same as PORT=9091): expected an integer from 0 to 65535 (0 picks a free port), not the same as a non-zero PORT',
    ]);
  });

  it('WS_MAX_CONNECTIONS unset: lowered to what the limit fits; unknown limit: taken as given', () => {
    const fitted = withLimit({ WS_WORKER_THREADS: '2' }, 20_000);
    expect(fitted.ok && fitted.config.limits.maxConnections).toBe(18_462);
    expect(fitted.ok && fitted.config.descriptors?.pauseAt).toBe(18_910);
    // The kernel's somaxconn, when below uSockets' backlog, shortens each accept queue to reserve for.
    const shallow = loadConfig({ WS_WORKER_THREADS: '2' }, { openFilesLimit: 20_000, somaxconn: 128 });
    expect(shallow.ok && shallow.config.descriptors?.reserve).toBe(2 * 129 + 64);
    const roomy = withLimit({ WS_WORKER_THREADS: '2' }, 1_048_576);
    expect(roomy.ok && roomy.config.limits.maxConnections).toBe(20_000);
    const unknown = loadConfig({ WS_MAX_CONNECTIONS: '900000' });
    expect(unknown.ok && unknown.config.limits.maxConnections).toBe(900_000);
    expect(unknown.ok && unknown.config.descriptors).toBeUndefined();
  });

  it('WS_MAX_CONNECTIONS set above what fits is reported with the other errors', () => {
    const result = withLimit(
      { WS_WORKER_THREADS: '2', WS_MAX_CONNECTIONS: '20000', LOG_LEVEL: 'loud' },
      20_000,
    );
    expect(result.ok).toBe(false);
    expect(!result.ok && result.errors).toHaveLength(2);
    expect(!result.ok && result.errors[1]).toBe(
      'WS_MAX_CONNECTIONS="20000" is invalid (the open-files limit is 20000 and the process keeps 1538 of them ' +
        'for itself with WS_WORKER_THREADS=2: a reserve of 1090 for what can be accepted between two readings of ' +
        'the accept guard (2 listen sockets × 513, a full accept queue each, and 64 for the admin listener, Redis ' +
        'and logs), 400 between pausing and reopening and 48 for Node and its threads; at most 18462 fit): ' +
        'expected an integer from 1 to 1000000 that fits the open-files limit (README: Operations)',
    );
    const fits = withLimit({ WS_WORKER_THREADS: '2', WS_MAX_CONNECTIONS: '18462' }, 20_000);
    expect(fits.ok).toBe(true);
  });

  it('a limit too low for any connection is a configuration error even with the default', () => {
    const result = withLimit({ WS_WORKER_THREADS: '4' }, 128);
    expect(!result.ok && result.errors[0]).toMatch(
      /^WS_MAX_CONNECTIONS="" is invalid \(the open-files limit is 128 .*no connection fits; raise the limit or lower WS_WORKER_THREADS\)/,
    );
  });
});

describe('REST rate limit (issue 16)', () => {
  it("defaults to Coinbase's public REST limit, 10 requests per second in bursts of 15", () => {
    expect(config({}).restRateLimit).toEqual({ perSecond: 10, burst: 15 });
  });

  it('REST_RATE_LIMIT_PER_SEC=0 turns it off; fractions are accepted', () => {
    expect(config({ REST_RATE_LIMIT_PER_SEC: '0' }).restRateLimit).toBeUndefined();
    expect(config({ REST_RATE_LIMIT_PER_SEC: '0.5', REST_RATE_LIMIT_BURST: '3' }).restRateLimit).toEqual({
      perSecond: 0.5,
      burst: 3,
    });
  });

  it('refuses bad values and a burst below the rate, naming the variable and what it accepts', () => {
    expect(errors({ REST_RATE_LIMIT_PER_SEC: '-1', REST_RATE_LIMIT_BURST: '0' })).toEqual([
      'REST_RATE_LIMIT_PER_SEC="-1" is invalid (not a number): expected a number from 0 (off) to 100000; fractions allowed (0.5 = one request every 2 s)',
      'REST_RATE_LIMIT_BURST="0" is invalid (Too small: expected number to be >=1): expected an integer from 1 to 100000, at least REST_RATE_LIMIT_PER_SEC',
    ]);
    expect(errors({ REST_RATE_LIMIT_PER_SEC: '20', REST_RATE_LIMIT_BURST: '15' })).toEqual([
      'REST_RATE_LIMIT_BURST="15" is invalid (below REST_RATE_LIMIT_PER_SEC=20): expected an integer from 1 to 100000, at least REST_RATE_LIMIT_PER_SEC',
    ]);
  });
});
