#!/usr/bin/env node
// The version check runs before Kiln itself is loaded: on an older Node, importing it fails with a
// riddle about a missing export (issue 11), so that import is dynamic and comes second.
import { nodeVersionProblem } from './nodeVersion.js';

const problem = nodeVersionProblem(process.versions.node);
if (problem !== null) {
  process.stderr.write(`kiln: ${problem}\n`);
  process.exit(1);
}
// The compiled program lives in dist/ (`npm run build`); decorators need tsc's metadata.
await import('../dist/src/main.js');
