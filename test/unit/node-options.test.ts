import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { GATEWAY_NODE_OPTIONS } from '../../src/node-options.js';

const read = (path: string) => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8');

describe('the V8 options the gateway runs with', () => {
  it('are passed by npm start', () => {
    const { scripts } = JSON.parse(read('package.json')) as { scripts: Record<string, string> };
    expect(scripts.start).toBe(`node ${GATEWAY_NODE_OPTIONS.join(' ')} dist/src/main.js`);
  });

  it("are passed by the bin's shebang", () => {
    expect(read('src/main.ts').split('\n')[0]).toBe(
      `#!/usr/bin/env -S node ${GATEWAY_NODE_OPTIONS.join(' ')}`,
    );
  });
});
