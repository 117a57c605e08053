import { describe, expect, it } from 'vitest';
import { CONFIG_VARIABLES, describeConfig, describeRedisTarget } from '../../../src/config/config.js';
import { config, errors } from '../../support/load-config.js';

const SENTINELS = 'sentinel-0.redis:26379, 10.0.0.7:26380,[fd00::1]:26379';

describe('REDIS_SENTINELS, REDIS_SENTINEL_MASTER, REDIS_SENTINEL_PASSWORD', () => {
  it('are off by default: REDIS_URL names the server', () => {
    expect(config({}).redis.sentinel).toBeUndefined();
    expect(describeRedisTarget(config({}).redis)).toBe('redis://127.0.0.1:6379 (REDIS_URL)');
  });

  it('read the Sentinel addresses (host names, IPv4, IPv6 in brackets), the master name and the password', () => {
    const c = config({
      REDIS_SENTINELS: SENTINELS,
      REDIS_SENTINEL_MASTER: 'matchbook',
      REDIS_SENTINEL_PASSWORD: 's3cret',
    });
    expect(c.redis.sentinel).toEqual({
      sentinels: [
        { host: 'sentinel-0.redis', port: 26379 },
        { host: '10.0.0.7', port: 26380 },
        { host: 'fd00::1', port: 26379 },
      ],
      masterName: 'matchbook',
      password: 's3cret',
    });
    expect(
      config({ REDIS_SENTINELS: 'a:1', REDIS_SENTINEL_MASTER: 'm' }).redis.sentinel?.password,
    ).toBeUndefined();
  });

  it('say at startup where the connections go and what REDIS_URL still supplies, without any password', () => {
    const c = config({
      REDIS_URL: 'rediss://app:hunter2@ignored.example:6380/3',
      REDIS_SENTINELS: SENTINELS,
      REDIS_SENTINEL_MASTER: 'matchbook',
      REDIS_SENTINEL_PASSWORD: 's3cret',
    });
    const described = JSON.stringify(describeConfig(c));
    expect(described).not.toContain('hunter2');
    expect(described).not.toContain('s3cret');
    expect(describeRedisTarget(c.redis)).toBe(
      'the primary of Sentinel master "matchbook" via sentinel-0.redis:26379,10.0.0.7:26380,[fd00::1]:26379; ' +
        'REDIS_URL supplies user, password, database and TLS, its host and port (ignored.example:6380) are not used',
    );
  });

  it('refuse a bad entry, naming it and what is wrong, and report every one', () => {
    const [error, ...rest] = errors({
      REDIS_SENTINELS: 'good:26379,nohost,:1,h:0,h:65536,h:x,bad_host!:1,[::zz]:1,h:1:2',
      REDIS_SENTINEL_MASTER: 'm',
    });
    expect(rest).toEqual([]);
    expect(error).toMatch(/^REDIS_SENTINELS="good:26379,nohost,.*" is invalid \(/);
    expect(error).toContain('"nohost" is not host:port');
    expect(error).toContain('":1" is not host:port');
    expect(error).toContain('"h:0": port "0" is not an integer from 1 to 65535');
    expect(error).toContain('"h:65536": port "65536" is not an integer from 1 to 65535');
    expect(error).toContain('"h:x": port "x" is not an integer from 1 to 65535');
    expect(error).toContain('"bad_host!:1": "bad_host!" is not a host name or IP address');
    expect(error).toContain('"[::zz]:1": "::zz" is not a host name or IP address');
    expect(error).toContain('"h:1:2" is not host:port');
    expect(error?.endsWith(`: expected ${CONFIG_VARIABLES.REDIS_SENTINELS.accepts}`)).toBe(true);
  });

  it('refuse duplicates, empty entries and more than 16 Sentinels', () => {
    expect(errors({ REDIS_SENTINELS: 'a:1,A:1', REDIS_SENTINEL_MASTER: 'm' })[0]).toContain(
      'a Sentinel is listed twice',
    );
    expect(errors({ REDIS_SENTINELS: 'a:1,,b:2', REDIS_SENTINEL_MASTER: 'm' })[0]).toContain(
      '"" is not host:port',
    );
    const many = Array.from({ length: 17 }, (_, i) => `s${i}:26379`).join(',');
    expect(errors({ REDIS_SENTINELS: many, REDIS_SENTINEL_MASTER: 'm' })[0]).toContain(
      'more than 16 Sentinels',
    );
  });

  it('refuse a master name Sentinel would not know', () => {
    for (const bad of ['my master', 'a'.repeat(129), 'm;x']) {
      const found = errors({ REDIS_SENTINELS: 'a:1', REDIS_SENTINEL_MASTER: bad });
      expect(found).toHaveLength(1);
      expect(found[0]).toMatch(
        /^REDIS_SENTINEL_MASTER=".*" is invalid \(not 1 to 128 of A-Z a-z 0-9 \. _ -\)/,
      );
    }
  });

  it('need each other: Sentinels without a master name, a master name or password without Sentinels', () => {
    expect(errors({ REDIS_SENTINELS: 'a:1' })).toEqual([
      `REDIS_SENTINEL_MASTER="" is invalid (REDIS_SENTINELS is set: the Sentinels need the master name): expected ${CONFIG_VARIABLES.REDIS_SENTINEL_MASTER.accepts}`,
    ]);
    expect(errors({ REDIS_SENTINEL_MASTER: 'm' })).toEqual([
      `REDIS_SENTINELS="" is invalid (REDIS_SENTINEL_MASTER is set: no Sentinel to ask for it): expected ${CONFIG_VARIABLES.REDIS_SENTINELS.accepts}`,
    ]);
    const [password] = errors({ REDIS_SENTINEL_PASSWORD: 'hunter2' });
    expect(password).toBe(
      `REDIS_SENTINEL_PASSWORD="[redacted]" is invalid (REDIS_SENTINELS is not set: no Sentinel to use it with): expected ${CONFIG_VARIABLES.REDIS_SENTINEL_PASSWORD.accepts}`,
    );
  });

  it('are reported together with every other bad variable', () => {
    const found = errors({ PORT: 'x', REDIS_SENTINELS: 'a:1', REDIS_URL: 'http://h', LIMITS_STORE: 'disk' });
    expect(found.map((e) => e.slice(0, e.indexOf('=')))).toEqual([
      'PORT',
      'REDIS_URL',
      'LIMITS_STORE',
      'REDIS_SENTINEL_MASTER',
    ]);
  });
});
