#!/usr/bin/env node
// The version check runs before Kiln itself is loaded: on an older Node, importing it fails with a
// riddle about a missing export (issue 11), so that import is dynamic and comes second.
import './checkNode.js';

// The compiled program lives in dist/ (`npm run build`); decorators need tsc's metadata.
await import('../dist/src/main.js');
