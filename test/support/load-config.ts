import { type GatewayConfig, loadConfig } from '../../src/config/config.js';

/** The configuration `env` yields; throws with every error if it is refused. */
export function config(env: Record<string, string | undefined>): GatewayConfig {
  const result = loadConfig(env);
  if (!result.ok) throw new Error(`expected a valid configuration: ${result.errors.join('\n')}`);
  return result.config;
}

/** The errors a refused `env` yields; throws if it is accepted. */
export function errors(env: Record<string, string | undefined>): readonly string[] {
  const result = loadConfig(env);
  if (result.ok) throw new Error('expected the configuration to be refused');
  return result.errors;
}
