/** The integration project's dist/ check, on a small real TypeScript project built by npm and tsc. */
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ensureDistFresh, staleReason } from '../setup/dist-freshness.js';

let root: string;

/** The global types tsc needs when it loads no standard library. */
const LIB = ['Array<T>', 'Boolean', 'CallableFunction', 'Function', 'IArguments', 'NewableFunction']
  .concat(['Number', 'Object', 'RegExp', 'String'])
  .map((name) => `interface ${name} {}\n`)
  .join('');

function write(path: string, text: string): void {
  mkdirSync(dirname(join(root, path)), { recursive: true });
  writeFileSync(join(root, path), text);
}

/** Makes every file of dist/ a minute old, as if the build happened before the edit that follows. */
function ageDist(): void {
  const old = Date.now() / 1000 - 60;
  for (const entry of readdirSync(join(root, 'dist'), { recursive: true, withFileTypes: true }))
    if (entry.isFile()) utimesSync(join(entry.parentPath, entry.name), old, old);
}

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'isobuild-dist-fresh-'));
  write('package.json', JSON.stringify({ type: 'module', scripts: { build: 'tsc -p tsconfig.build.json' } }));
  write(
    'tsconfig.json',
    JSON.stringify({
      compilerOptions: {
        target: 'ES2022',
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        strict: true,
        types: [],
        outDir: 'dist',
        rootDir: '.',
        sourceMap: true,
        noLib: true, // with the tiny lib below, tsc starts in a fraction of the time
      },
      include: ['agent/src', 'proxy/src'],
    }),
  );
  write('tsconfig.build.json', JSON.stringify({ extends: './tsconfig.json' }));
  symlinkSync(resolve('node_modules'), join(root, 'node_modules'));
  write('agent/src/lib.d.ts', LIB);
  write('agent/src/main.ts', 'export const answer: number = 42;\n');
  write('agent/src/old/gone.ts', 'export const gone = true;\n');
  write('proxy/src/main.ts', 'export const proxy = "up";\n');
});
afterEach(() => {
  rmSync(root, { recursive: true, force: true });
});

describe('ensureDistFresh', { timeout: 30_000 }, () => {
  it('builds a missing dist/, then leaves the fresh one alone', async () => {
    expect(staleReason(root)).toBe('dist/agent/src/main.js is missing');

    expect(await ensureDistFresh(root)).toBe('rebuilt');
    const builtAt = readdirSync(join(root, 'dist/agent/src'));
    expect(await ensureDistFresh(root)).toBe('fresh');

    expect(staleReason(root)).toBeUndefined();
    expect(readFileSync(join(root, 'dist/agent/src/main.js'), 'utf8')).toContain('answer = 42');
    expect(readdirSync(join(root, 'dist/agent/src'))).toEqual(builtAt);
  });

  it('rebuilds when a source changed after the build', async () => {
    await ensureDistFresh(root);
    ageDist();
    write('agent/src/main.ts', 'export const answer: number = 43;\n');

    expect(staleReason(root)).toBe('agent/src/main.ts is newer than dist/agent/src/main.js');
    expect(await ensureDistFresh(root)).toBe('rebuilt');
    expect(readFileSync(join(root, 'dist/agent/src/main.js'), 'utf8')).toContain('answer = 43');
  });

  it('rebuilds when a build configuration changed after the build', async () => {
    await ensureDistFresh(root);
    ageDist();
    write('tsconfig.build.json', JSON.stringify({ extends: './tsconfig.json' }));

    expect(staleReason(root)).toMatch(/^tsconfig\.build\.json is newer than dist\//);
    expect(await ensureDistFresh(root)).toBe('rebuilt');
  });

  it('removes what a deleted source left in dist/, so no test can import it', async () => {
    await ensureDistFresh(root);
    rmSync(join(root, 'agent/src/old'), { recursive: true });

    expect(staleReason(root)).toMatch(/^dist\/agent\/src\/old\/gone\.js(\.map)? has no source any more$/);
    expect(await ensureDistFresh(root)).toBe('rebuilt');
    expect(existsSync(join(root, 'dist/agent/src/old'))).toBe(false);
    expect(existsSync(join(root, 'dist/agent/src/main.js'))).toBe(true);
    expect(staleReason(root)).toBeUndefined();
  });

  it('fails with the compiler output when the build fails, and stays stale though tsc emitted', async () => {
    write('agent/src/main.ts', 'export const answer: number = "forty-two";\n');

    const failed = ensureDistFresh(root);

    await expect(failed).rejects.toThrow(/`npm run --silent build` failed \(exit 2\); integration tests run/);
    await expect(failed).rejects.toThrow(/agent\/src\/main\.ts.*not assignable to type 'number'/);
    expect(existsSync(join(root, 'dist/agent/src/main.js'))).toBe(true);
    expect(staleReason(root)).toBe('the last build failed');
    write('agent/src/main.ts', 'export const answer: number = 42;\n');
    expect(await ensureDistFresh(root)).toBe('rebuilt');
  });

  it('kills a build that misses its deadline and says so', async () => {
    const hung = [process.execPath, '-e', 'setTimeout(() => {}, 30000)'];

    const started = Date.now();
    const failed = ensureDistFresh(root, { command: hung, deadlineMs: 300 });

    await expect(failed).rejects.toThrow(/did not finish within 0\.3 s/);
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});
