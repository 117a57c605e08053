import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CONFIG_VARIABLES } from '../../../src/config/config.js';

const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');

describe('README configuration table', () => {
  it.each(Object.entries(CONFIG_VARIABLES))('documents %s with its default', (name, variable) => {
    const row = readme.split('\n').find((line) => line.startsWith(`| \`${name}\` |`));
    expect(row, `README row for ${name}`).toBeDefined();
    // Machine-dependent defaults (CPU count) and empty ones are described in words.
    if (name === 'WS_WORKER_THREADS') expect(row).toContain('number of CPUs');
    else if (variable.defaultValue === '') expect(row).toContain('empty');
    else expect(row).toContain(`| \`${variable.defaultValue}\` |`);
  });
});
