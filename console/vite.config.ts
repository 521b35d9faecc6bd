import vue from '@vitejs/plugin-vue';
import { defineConfig } from 'vitest/config';

// The build goes to dist/, which the server embeds; file names carry content
// hashes, so a changed asset never hides behind a cached one.
export default defineConfig({
  plugins: [vue()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    assetsInlineLimit: 0,
    chunkSizeWarningLimit: 1200,
  },
  test: {
    include: ['src/**/*.test.ts'],
  },
});
