/**
 * Kiln's layering rules, checked by `npm run layers` and by test/layers.test.ts (so `npm test`
 * fails on a violation). Type-only imports count: a folder that needs another's types depends
 * on it as much as one that calls it.
 *
 * @type {import('dependency-cruiser').IConfiguration}
 */
module.exports = {
  forbidden: [
    {
      name: 'no-folder-cycles',
      comment:
        'A folder under src/ never imports a folder that imports it back (directly or around a loop): ' +
        'move the shared piece down into a folder both may import (src/util/, src/errors.ts, ...).',
      severity: 'error',
      scope: 'folder',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'no-module-cycles',
      comment: 'No module under src/ imports, through any chain, a module that imports it back.',
      severity: 'error',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'leaves-import-nothing-of-kiln',
      comment: 'schedule/ (cron math, fire planning) and util/ are pure leaves: they import nothing of Kiln\'s.',
      severity: 'error',
      from: { path: '^src/(schedule|util)/' },
      to: { path: '^src/', pathNot: '^src/$1/' },
    },
    {
      name: 'jobfile-stays-pure',
      comment: 'jobfile/ (the job-file pipeline: parse, lint, compile) imports only the leaves below it.',
      severity: 'error',
      from: { path: '^src/jobfile/' },
      to: { path: '^src/', pathNot: '^src/(jobfile|schedule|util)/' },
    },
    {
      name: 'no-undeclared-dependencies',
      comment:
        'A package imported from src/ is declared in package.json, not borrowed from what another ' +
        'package happens to install (kysely came that way once, through MikroORM).',
      severity: 'error',
      from: { path: '^src/' },
      to: { dependencyTypes: ['npm-no-pkg', 'npm-unknown'] },
    },
    {
      name: 'no-dev-dependencies-in-src',
      comment: 'What src/ imports ships: it is a dependency, not a devDependency.',
      severity: 'error',
      from: { path: '^src/' },
      to: { dependencyTypes: ['npm-dev'], dependencyTypesNot: ['type-only'] },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsConfig: { fileName: 'tsconfig.json' },
    tsPreCompilationDeps: true,
    // Folder-scope rules are judged on folder metrics, which are computed only with this on.
    metrics: true,
  },
};
