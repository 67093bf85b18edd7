// Whether dist/ was built from the sources as they are now, and a rebuild when it was not. Integration tests run
// dist/, so a stale one would silently test old code. `tsc` (not incremental) rewrites every output on each
// build, so dist/ is fresh when its oldest output is newer than every input and it holds an output for each
// source and nothing else (a module deleted from the sources must not linger there for a test to import).
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { runProcess } from '../helpers/run-process.js';

/** Folders compiled by tsconfig.build.json; dist/ mirrors them (rootDir is the repository). */
export const SOURCE_DIRS = ['agent/src', 'proxy/src'];
/** Files that change what tsc emits (or how), besides the sources. */
export const CONFIG_FILES = ['tsconfig.json', 'tsconfig.build.json', 'package.json'];
export const OUT_DIR = 'dist';
/** Written when a rebuild failed, so the next run tries again instead of trusting what tsc emitted anyway. */
export const FAILED_MARKER = '.build-failed';

export const BUILD_COMMAND: readonly string[] = ['npm', 'run', '--silent', 'build'];

/** Why dist/ under `root` is stale (one reason, naming a file), or undefined when it is fresh. */
export function staleReason(root: string): string | undefined {
  const out = join(root, OUT_DIR);
  if (existsSync(join(out, FAILED_MARKER))) return 'the last build failed';
  const inputs = SOURCE_DIRS.flatMap((dir) => filesUnder(root, dir));
  const sources = inputs.filter(isCompiled);
  let newestInput = { path: '', ms: 0 };
  for (const path of [...inputs, ...CONFIG_FILES.filter((file) => existsSync(join(root, file)))]) {
    const ms = statSync(join(root, path)).mtimeMs;
    if (ms > newestInput.ms) newestInput = { path, ms };
  }
  let oldestOutput = { path: '', ms: Infinity };
  for (const source of sources) {
    const output = outputOf(source);
    if (!existsSync(join(root, output))) return `${output} is missing`;
    const ms = statSync(join(root, output)).mtimeMs;
    if (ms < oldestOutput.ms) oldestOutput = { path: output, ms };
  }
  const orphan = orphans(root)[0];
  if (orphan) return `${orphan} has no source any more`;
  if (newestInput.ms > oldestOutput.ms) return `${newestInput.path} is newer than ${oldestOutput.path}`;
  return undefined;
}

/** Files in dist/ (relative to `root`) that no current source compiles to. */
export function orphans(root: string): string[] {
  return SOURCE_DIRS.flatMap((dir) => filesUnder(root, join(OUT_DIR, dir))).filter((output) => {
    const source = sourceOf(output);
    return source === undefined || !existsSync(join(root, source));
  });
}

export interface EnsureOptions {
  /** The build; run in `root` (default `npm run --silent build`). */
  readonly command?: readonly string[];
  /** How long the build may take before it is killed and reported (default 5 minutes). */
  readonly deadlineMs?: number;
  /** Told what happens (default: nothing). */
  readonly log?: (line: string) => void;
}

/**
 * Rebuilds dist/ under `root` when it is stale, then removes outputs whose sources are gone. Returns what it
 * did. Throws with the build's output when the build fails or misses its deadline.
 */
export async function ensureDistFresh(
  root: string,
  options: EnsureOptions = {},
): Promise<'fresh' | 'rebuilt'> {
  const reason = staleReason(root);
  if (reason === undefined) return 'fresh';
  const [file = '', ...args] = options.command ?? BUILD_COMMAND;
  const shown = (options.command ?? BUILD_COMMAND).join(' ');
  options.log?.(`dist/ is stale (${reason}): running ${shown}`);
  const deadlineMs = options.deadlineMs ?? 300_000;
  const out = join(root, OUT_DIR);
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, FAILED_MARKER), `${shown} started ${new Date().toISOString()}\n`);
  const result = await runProcess(file, args, { cwd: root, deadlineMs });
  if (result.timedOut || result.code !== 0) {
    const how = result.timedOut
      ? `did not finish within ${deadlineMs / 1000} s`
      : `failed (exit ${result.code})`;
    throw new Error(
      `dist/ is stale (${reason}) and \`${shown}\` ${how}; integration tests run dist/, so fix the build ` +
        `first:\n${tail(result.stdout + result.stderr)}`,
    );
  }
  // force: another test run may be rebuilding (and cleaning) at the same time.
  for (const orphan of orphans(root)) rmSync(join(root, orphan), { force: true });
  removeEmptyDirs(
    root,
    SOURCE_DIRS.map((dir) => join(OUT_DIR, dir)),
  );
  rmSync(join(out, FAILED_MARKER), { force: true });
  return 'rebuilt';
}

/** Files below `dir` (relative to `root`), as paths relative to `root`; none when `dir` does not exist. */
function filesUnder(root: string, dir: string): string[] {
  if (!existsSync(join(root, dir))) return [];
  return readdirSync(join(root, dir), { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => relative(root, join(entry.parentPath, entry.name)));
}

function isCompiled(path: string): boolean {
  return path.endsWith('.ts') && !path.endsWith('.d.ts');
}

function outputOf(source: string): string {
  return join(OUT_DIR, source.replace(/\.ts$/, '.js'));
}

/** The source an output of dist/ comes from (its .js or source map), or undefined for any other file. */
function sourceOf(output: string): string | undefined {
  const match = /^(.*)\.js(\.map)?$/.exec(relative(OUT_DIR, output));
  return match ? `${match[1]}.ts` : undefined;
}

function removeEmptyDirs(root: string, dirs: readonly string[]): void {
  for (const dir of dirs) {
    if (!existsSync(join(root, dir))) continue;
    const nested = readdirSync(join(root, dir), { recursive: true, withFileTypes: true })
      .filter((entry) => entry.isDirectory())
      .map((entry) => join(entry.parentPath, entry.name))
      .sort((a, b) => b.length - a.length); // deepest first, so a parent is empty once its children go
    for (const path of nested)
      if (readdirSync(path).length === 0) rmSync(path, { recursive: true, force: true });
  }
}

function tail(text: string, lines = 40): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}
