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
    {
      name: 'sdk-through-its-package',
      comment:
        'The server, its tests and tools reach the typed SDK as its users do, by the package name ' +
        '`@kiln/sdk` (node_modules/@kiln/sdk links to sdk/), never by a path into sdk/src.',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^sdk/src/' },
    },
    {
      name: 'sdk-stands-alone',
      comment: 'sdk/ is a package of its own (docs/design.md#sdk-package): it imports nothing of the server.',
      severity: 'error',
      from: { path: '^sdk/src/' },
      to: { path: '^(src|test|bench|chaos|migrations|web)/' },
    },
    {
      name: 'sdk-runs-anywhere',
      comment: "The SDK runs in browsers too: no Node built-ins, and only the packages sdk/package.json declares.",
      severity: 'error',
      from: { path: '^sdk/src/' },
      to: {
        dependencyTypesNot: ['local', 'type-only'],
        pathNot: '(^|node_modules/)(graphql|graphql-ws|@graphql-typed-document-node/core)(/|$)',
      },
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
