import { fileURLToPath } from 'node:url';
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));

// The web app (docs/design.md#web-app): built by `npm run build` into dist/web, which Kiln serves
// at `/` (src/http/webApp.ts). Nothing is fetched from anywhere but Kiln's own origin.
export default defineConfig({
  root: here('./'),
  base: '/',
  publicDir: here('./public'),
  plugins: [react()],
  build: {
    outDir: here('../dist/web'),
    emptyOutDir: true,
    // The CSP forbids inline scripts: never inline the module-preload helper or small assets as data: scripts.
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    reportCompressedSize: true,
  },
});
