// Ends the process with one line naming the Node.js Kiln needs when this one is older. Imported
// first by bin/kiln.js, and run first by `npm start` (prestart): the build that comes before
// Kiln there runs tsc and vite, which on an older Node would fail with errors of their own.
import { nodeVersionProblem } from './nodeVersion.js';

const problem = nodeVersionProblem(process.versions.node);
if (problem !== null) {
  process.stderr.write(`kiln: ${problem}\n`);
  process.exit(1);
}
