import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CHART_OWNED, withGeneratedEnv } from '../../scripts/values-schema.js';
import { CONFIG_VARIABLES } from '../../src/config/config.js';
import { CHART } from '../support/k8s-tools.js';

const file = readFileSync(join(CHART, 'values.schema.json'), 'utf8');

describe('helm/values.schema.json', () => {
  it('has the env section generated from the current configuration schema (run `npm run chart:schema` if not)', () => {
    expect(file).toBe(withGeneratedEnv(file));
  });

  it('accepts every gateway variable under env except those the chart sets from other values', () => {
    const env = (JSON.parse(file) as { properties: { env: { properties: Record<string, unknown> } } })
      .properties.env.properties;
    const expected = Object.keys(CONFIG_VARIABLES).filter((name) => !(name in CHART_OWNED));
    expect(Object.keys(env).sort()).toEqual(expected.sort());
  });
});
