#!/usr/bin/env -S node --max-semi-space-size=4
import closeWithGrace from 'close-with-grace';
import { describeConfig, type GatewayConfig, loadConfig } from './config/config.js';
import { startPublisher } from './feeds/redis/publisher.js';
import { type Gateway, startGateway } from './gateway.js';
import { readOpenFilesLimit, readSomaxconn } from './limits/open-descriptors.js';
import { createLogger } from './logging/logger.js';
import { nativeUws } from './server/uws.js';

const USAGE = `usage: matchbook-gateway [serve]    run the gateway (default)
       matchbook-gateway publish    run the market simulator as an upstream publisher into Redis
       matchbook-gateway tail ...   show live tickers and a book from a gateway (tail --help)
Configuration comes from environment variables: see README.md.
`;

/** Exit codes: 0 clean shutdown, 1 runtime failure or shutdown deadline, 2 bad usage, configuration or platform. */
async function main(): Promise<void> {
  const command = process.argv[2] ?? 'serve';
  if (command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(USAGE);
    return;
  }
  if (command === 'tail') {
    await tail(process.argv.slice(3));
    return;
  }
  if (command !== 'serve' && command !== 'publish') {
    process.stderr.write(`matchbook-gateway: unknown command ${JSON.stringify(command)}\n${USAGE}`);
    process.exit(2);
  }
  const result = loadConfig(process.env, {
    openFilesLimit: readOpenFilesLimit(),
    somaxconn: readSomaxconn(),
  });
  if (!result.ok) {
    process.stderr.write(
      `matchbook-gateway: invalid configuration (${result.errors.length} problem${result.errors.length > 1 ? 's' : ''}):\n` +
        result.errors.map((e) => `  - ${e}\n`).join(''),
    );
    process.exit(2);
  }
  const config = result.config;
  if (command === 'publish') {
    await publish(config);
    return;
  }
  let uws: ReturnType<typeof nativeUws>;
  try {
    uws = nativeUws();
  } catch (error) {
    process.stderr.write(`matchbook-gateway: ${(error as Error).message}\n`);
    process.exit(2);
  }

  const logger = createLogger(config.logLevel);
  logger.info({ config: describeConfig(config) }, 'starting matchbook-gateway');
  let gateway: Gateway;
  try {
    gateway = await startGateway(config, logger, uws);
  } catch (error) {
    // startGateway has closed whatever it had started, so exiting now cannot abort natively.
    logger.fatal({ err: error }, 'failed to start');
    process.stderr.write(`matchbook-gateway: failed to start: ${(error as Error).message}\n`);
    process.exit(1);
  }

  // close-with-grace arms the deadline before the drain starts; a second signal exits 1 at once.
  closeWithGrace(
    {
      delay: config.shutdownTimeoutMs,
      logger: { error: (message: unknown) => logger.error({ detail: message }, 'shutdown') },
      // close-with-grace exits 1 right after these return: close every uWS app first, or the exit aborts.
      onTimeout: (delay) => {
        logger.error({ delayMs: delay }, 'shutdown deadline passed, closing remaining connections');
        gateway.closeNow();
      },
      onSecondSignal: (signal) => {
        logger.error({ signal }, 'second signal, closing remaining connections');
        gateway.closeNow();
      },
    },
    async ({ signal, err }) => {
      if (err) logger.error({ err }, 'fatal error, shutting down');
      logger.info({ signal, connections: 'draining' }, 'shutting down');
      await gateway.drain();
      logger.info('shutdown complete');
    },
  );
  // Logged only once signals are handled: whoever waits for this line may stop us right away.
  logger.info(
    {
      port: gateway.port,
      adminPort: gateway.adminPort,
      host: config.host,
      feed: config.feedSource,
      workerThreads: config.workerThreads,
      maxConnections: config.limits.maxConnections,
      workerThreadsFrom: config.workerThreadsFrom,
    },
    'listening',
  );
}

main().catch((error: unknown) => {
  process.stderr.write(`matchbook-gateway: failed to start: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});

/** The client CLI needs no gateway configuration: only its arguments. */
async function tail(argv: string[]): Promise<void> {
  const { parseTailArgs, TAIL_USAGE } = await import('./cli/tail-args.js');
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(TAIL_USAGE);
    return;
  }
  const parsed = parseTailArgs(argv);
  if (!parsed.ok) {
    process.stderr.write(`matchbook-gateway tail: ${parsed.error}\n${TAIL_USAGE}`);
    process.exit(2);
  }
  const { runTail } = await import('./cli/tail.js');
  await runTail(parsed.args);
  process.exit(0);
}

async function publish(config: GatewayConfig): Promise<void> {
  const logger = createLogger(config.logLevel, { role: 'publisher' });
  logger.info({ config: describeConfig(config) }, 'starting matchbook-gateway publish');
  const publisher = await startPublisher(
    {
      redis: config.redis,
      products: config.products,
      eventsPerSecond: config.simEventsPerSecond,
      seed: config.simSeed,
      maxLen: config.publish.maxLen,
      snapshotIntervalMs: config.publish.snapshotIntervalMs,
    },
    logger,
  );
  closeWithGrace({ delay: config.shutdownTimeoutMs, logger: false }, async () => {
    await publisher.stop();
    logger.info('publisher stopped');
  });
  logger.info({ products: config.products.map((p) => p.id) }, 'publishing');
}
