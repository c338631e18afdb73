// Two entries, one pipeline: the dashboard (index.html, served at /) and GraphiQL
// (graphiql.html, served at /graphql to browsers), built into the Python package that serves
// them (schema/static), so `pip install` users need no Node and nothing comes from a CDN.
// Paths are relative to this folder (npm runs the build here).
import { defineConfig } from 'vitest/config'

export default defineConfig({
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: '../schema/static',
    emptyOutDir: true,
    manifest: true, // .vite/manifest.json: what each entry loads (the bench sizes the dashboard's)
    assetsInlineLimit: 0, // every asset is a file under /assets/ (the CSP allows 'self' only)
    chunkSizeWarningLimit: 2000, // GraphiQL's entry is large, and loaded only by /graphql
    rollupOptions: {
      input: { dashboard: 'index.html', graphiql: 'graphiql.html' },
      // GraphiQL's React libraries mark modules "use client", which means nothing here.
      onwarn(warning, warn) {
        if (warning.code !== 'MODULE_LEVEL_DIRECTIVE') warn(warning)
      },
    },
  },
  test: { environment: 'node', include: ['src/**/*.test.ts'] },
})
