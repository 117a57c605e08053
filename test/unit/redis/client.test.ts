import { describe, expect, it } from 'vitest';
import type { RedisConfig } from '../../../src/config/config.js';
import { reconnectDelayMs, reconnectOnReadonly, redisClientOptions } from '../../../src/redis/client.js';

const role = { name: 'test-connection', maxRetriesPerRequest: 0 };

describe('redisClientOptions: one way to build every Redis connection', () => {
  it('REDIS_URL alone: host, port, user, password, database and TLS from it', () => {
    const options = redisClientOptions(
      { url: 'rediss://app:p%40ss@[::1]:6380/3', password: undefined },
      role,
    );
    expect(options).toMatchObject({
      host: '::1',
      port: 6380,
      username: 'app',
      password: 'p@ss',
      db: 3,
      tls: {},
      protocol: 2,
      connectionName: 'test-connection',
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
    });
    expect(options.sentinels).toBeUndefined();
    const plain = redisClientOptions({ url: 'redis://h', password: undefined }, role);
    expect(plain).toMatchObject({ host: 'h', port: 6379, db: 0 });
    expect(plain.tls).toBeUndefined();
    expect(plain.password).toBeUndefined();
  });

  it('REDIS_PASSWORD replaces the password in the URL', () => {
    const config: RedisConfig = { url: 'redis://:old@h:1/0', password: 'new' };
    expect(redisClientOptions(config, role).password).toBe('new');
  });

  it('with Sentinels: the master name, the Sentinels and their password; REDIS_URL supplies the rest but no host', () => {
    const config: RedisConfig = {
      url: 'rediss://app:secret@ignored:6380/2',
      password: undefined,
      sentinel: {
        sentinels: [
          { host: 's1', port: 26379 },
          { host: 'fd00::1', port: 26380 },
        ],
        masterName: 'matchbook',
        password: 'sentinel-secret',
      },
    };
    const options = redisClientOptions(config, role);
    expect(options).toMatchObject({
      name: 'matchbook',
      role: 'master',
      sentinels: [
        { host: 's1', port: 26379 },
        { host: 'fd00::1', port: 26380 },
      ],
      sentinelPassword: 'sentinel-secret',
      username: 'app',
      password: 'secret',
      db: 2,
      failoverDetector: true,
      enableTLSForSentinelMode: true,
      tls: {},
      sentinelTLS: {},
    });
    expect(options.host).toBeUndefined();
    expect(options.port).toBeUndefined();
    expect(options.sentinelRetryStrategy?.(3)).toBe(reconnectDelayMs(3));
  });

  it('one retry policy for every connection and for the Sentinels: 50 ms doubling to 1 s', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 50].map(reconnectDelayMs)).toEqual([
      50, 100, 200, 400, 800, 1000, 1000, 1000,
    ]);
    const options = redisClientOptions({ url: 'redis://h', password: undefined }, role);
    expect(options.retryStrategy?.(2)).toBe(100);
  });

  it('reconnects (without resending) on READONLY, from a primary demoted to a replica, and on nothing else', () => {
    expect(reconnectOnReadonly(new Error("READONLY You can't write against a read only replica."))).toBe(1);
    expect(reconnectOnReadonly(new Error('ERR unknown command'))).toBe(false);
    expect(redisClientOptions({ url: 'redis://h', password: undefined }, role).reconnectOnError).toBe(
      reconnectOnReadonly,
    );
  });

  it('roles choose retries, resending, timeouts and lazy connection', () => {
    const options = redisClientOptions(
      { url: 'redis://h', password: undefined },
      {
        name: 'r',
        maxRetriesPerRequest: 1,
        resendUnfulfilled: false,
        connectTimeoutMs: 1000,
        commandTimeoutMs: 500,
        lazyConnect: true,
      },
    );
    expect(options).toMatchObject({
      maxRetriesPerRequest: 1,
      autoResendUnfulfilledCommands: false,
      connectTimeout: 1000,
      commandTimeout: 500,
      lazyConnect: true,
    });
  });
});
