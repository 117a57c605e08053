import { readFileSync, writeFileSync } from 'node:fs';
import { withGeneratedEnv } from './values-schema.js';

/** `npm run chart:schema`: regenerates the `env` section of helm/values.schema.json in place. */
const file = new URL('../../helm/values.schema.json', import.meta.url);
const before = readFileSync(file, 'utf8');
const after = withGeneratedEnv(before);
writeFileSync(file, after);
console.log(
  before === after ? 'helm/values.schema.json: up to date' : 'helm/values.schema.json: env regenerated',
);
