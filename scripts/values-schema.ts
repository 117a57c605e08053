import { z } from 'zod';
import { CONFIG_VARIABLES } from '../src/config/config.js';

/**
 * The `env` section of helm/values.schema.json, derived from the gateway's own configuration schema
 * (src/config/config.ts), so the chart accepts exactly the ranges and choices the gateway does.
 * `npm run chart:schema` writes it; a test fails while the committed file differs.
 */

/** Variables the chart sets itself, from other values: they are refused under `env`. */
export const CHART_OWNED: Readonly<Record<string, string>> = {
  HOST: 'always 0.0.0.0 in a pod',
  PORT: 'ports.http',
  ADMIN_PORT: 'ports.admin',
  REDIS_PASSWORD: 'redisPassword (from a Secret)',
  REDIS_SENTINEL_PASSWORD: 'redisSentinelPassword (from a Secret)',
};

type JsonSchema = Record<string, unknown>;

/**
 * The variable's value as JSON Schema. The gateway parses text into numbers and lists; where the
 * parsed value has a JSON Schema form (numbers with their ranges, enums) that is what values.yaml
 * holds, otherwise (lists and seeds turned into objects) the text the gateway reads.
 */
function valueSchema(schema: z.ZodType): JsonSchema {
  let derived: JsonSchema;
  try {
    derived = z.toJSONSchema(schema, { io: 'output', unrepresentable: 'throw' }) as JsonSchema;
  } catch {
    derived = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'throw' }) as JsonSchema;
  }
  const { $schema: _, ...rest } = derived;
  return rest;
}

export function envSchema(): JsonSchema {
  const properties: Record<string, JsonSchema> = {};
  for (const [name, variable] of Object.entries(CONFIG_VARIABLES)) {
    if (name in CHART_OWNED) continue;
    properties[name] = {
      description: `${variable.description} Accepts ${variable.accepts}; null: the gateway's default.`,
      anyOf: [{ type: 'null' }, valueSchema(variable.schema)],
    };
  }
  return {
    type: 'object',
    description:
      "The gateway's environment variables (README, Configuration), each a container env entry. " +
      `Set by the chart instead: ${Object.entries(CHART_OWNED)
        .map(([name, from]) => `${name} (${from})`)
        .join(', ')}.`,
    additionalProperties: false,
    properties,
  };
}

/** The committed values.schema.json with its `env` section regenerated, as the file is written. */
export function withGeneratedEnv(currentFile: string): string {
  const schema = JSON.parse(currentFile) as { properties: Record<string, unknown> };
  schema.properties.env = envSchema();
  return `${JSON.stringify(schema, null, 2)}\n`;
}
