#!/usr/bin/env node
// The compiled program lives in dist/ (`npm run build`); decorators need tsc's metadata.
import '../dist/src/main.js';
