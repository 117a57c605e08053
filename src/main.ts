#!/usr/bin/env node
import closeWithGrace from 'close-with-grace';
import { describeConfig, loadConfig } from './config/config.js';
import { startGateway } from './gateway.js';
import { createLogger } from './logging/logger.js';
import { nativeUws } from './server/uws.js';

/** Exit codes: 0 clean shutdown, 1 runtime failure or shutdown deadline, 2 bad configuration or platform. */
async function main(): Promise<void> {
  const result = loadConfig(process.env);
  if (!result.ok) {
    process.stderr.write(
      `matchbook-gateway: invalid configuration (${result.errors.length} problem${result.errors.length > 1 ? 's' : ''}):\n` +
        result.errors.map((e) => `  - ${e}\n`).join(''),
    );
    process.exit(2);
  }
  const config = result.config;
  let uws: ReturnType<typeof nativeUws>;
  try {
    uws = nativeUws();
  } catch (error) {
    process.stderr.write(`matchbook-gateway: ${(error as Error).message}\n`);
    process.exit(2);
  }

  const logger = createLogger(config.logLevel);
  logger.info({ config: describeConfig(config) }, 'starting matchbook-gateway');
  const gateway = await startGateway(config, logger, uws);

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
    { port: gateway.port, host: config.host, feed: config.feedSource, workerThreads: config.workerThreads },
    'listening',
  );
}

main().catch((error: unknown) => {
  process.stderr.write(`matchbook-gateway: failed to start: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
