// Build-time: converts docs/openapi.yaml to the JSON the core serves.
import { readFileSync, writeFileSync } from 'node:fs';
import { parse } from 'yaml';

const [, , input, output] = process.argv;
const doc = parse(readFileSync(input, 'utf8'));
writeFileSync(output, JSON.stringify(doc));
