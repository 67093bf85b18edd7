// The negative corpus: every template under test/fixtures/invalid has exactly one defect. `isobuild validate`
// must reject each with exit code 2 and one error that names the JSON path of the defect, never with a stack
// trace. Needs a built dist/ (the Makefile runs `npm run build` before the tests).
import { readFileSync, readdirSync } from 'node:fs';
import { access, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runProcess } from '../helpers/run-process.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = join(ROOT, 'dist/agent/src/cli/main.js');
const FIXTURE_DIR = 'test/fixtures/invalid';
const STACK_TRACE = /\n\s+at .+:\d+:\d+/;

interface Expectation {
  /** A JSON path (or, for files that cannot be decoded, a file location) the error must name. */
  readonly path: string;
  readonly message?: string;
  readonly args?: readonly string[];
}

interface CliResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

const expectations = JSON.parse(readFileSync(join(ROOT, FIXTURE_DIR, 'expectations.json'), 'utf8')) as Record<
  string,
  Expectation
>;
const fixtures = readdirSync(join(ROOT, FIXTURE_DIR))
  .filter((name) => name !== 'expectations.json')
  .sort();

function runValidate(file: string, args: readonly string[] = []): Promise<CliResult> {
  const env = { ...process.env };
  delete env.ISOBUILD_DEBUG; // it would print stacks for internal errors on purpose
  return runProcess(process.execPath, [CLI, 'validate', file, ...args], {
    cwd: ROOT,
    env,
    deadlineMs: 30_000,
  });
}

/** Runs `task` over `items` with at most `limit` at a time, keeping the results in order. */
async function mapLimited<T, R>(
  items: readonly T[],
  limit: number,
  task: (item: T) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await task(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * The error lines of stderr that name `where` as a whole path: not a prefix of a longer path
 * (`customize` must not match `customize[1]`) and not inside a warning.
 */
function errorLinesNaming(stderr: string, where: string): string[] {
  const token = new RegExp(`(^|[\\s(/])${escapeRegExp(where)}($|[\\s:)])`);
  return stderr
    .split('\n')
    .filter((line) => line.startsWith('isobuild validate: ') || /^\s+error\s/.test(line))
    .filter((line) => token.test(line));
}

function expectCleanFailure(result: CliResult): void {
  expect(result.signal).toBeNull();
  expect(result.code, result.stderr).toBe(2);
  expect(result.stderr).not.toMatch(STACK_TRACE);
  expect(result.stdout).not.toMatch(STACK_TRACE);
  expect(result.stderr).not.toMatch(/internal error/i);
  expect(result.stderr).not.toMatch(/RangeError|Maximum call stack/);
}

beforeAll(async () => {
  await access(CLI).catch(() => {
    throw new Error(`${CLI} is missing: run "npm run build" before the integration tests.`);
  });
});

describe('negative corpus (test/fixtures/invalid)', () => {
  const results = new Map<string, CliResult>();

  beforeAll(async () => {
    const limit = Math.max(2, Math.min(8, availableParallelism()));
    const runs = await mapLimited(fixtures, limit, (file) =>
      runValidate(`${FIXTURE_DIR}/${file}`, expectations[file]?.args ?? []),
    );
    fixtures.forEach((file, i) => results.set(file, runs[i]!));
  });

  it('has at least 60 fixtures', () => {
    expect(fixtures.length).toBeGreaterThanOrEqual(60);
  });

  it('has an expectation for every fixture and a fixture for every expectation', () => {
    expect(Object.keys(expectations).sort()).toEqual(fixtures);
  });

  it('names fixtures NN-short-name.json and writes well-formed expectations', () => {
    const badNames = fixtures.filter((file) => !/^\d\d-[a-z0-9]+(-[a-z0-9]+)*\.json$/.test(file));
    expect(badNames).toEqual([]);
    const wellFormed = (e: Expectation): boolean =>
      typeof e.path === 'string' &&
      e.path !== '' &&
      (e.message === undefined || (typeof e.message === 'string' && e.message !== '')) &&
      (e.args === undefined || (Array.isArray(e.args) && e.args.every((a) => typeof a === 'string')));
    const malformed = Object.entries(expectations).filter(([, e]) => !wellFormed(e));
    expect(malformed.map(([file]) => file)).toEqual([]);
  });

  it.each(fixtures)('%s exits 2 with one error that names the path', (file) => {
    const result = results.get(file);
    const expectation = expectations[file];
    expect(result, `no run for ${file}`).toBeDefined();
    expect(expectation, `no expectation for ${file}`).toBeDefined();
    if (!result || !expectation) return;

    expectCleanFailure(result);
    const naming = errorLinesNaming(result.stderr, expectation.path);
    expect(naming, `no error names ${expectation.path}:\n${result.stderr}`).not.toHaveLength(0);
    if (expectation.message !== undefined) {
      expect(
        naming.some((line) => line.includes(expectation.message!)),
        `no error naming ${expectation.path} says "${expectation.message}":\n${result.stderr}`,
      ).toBe(true);
    }

    // One defect, one error: follow-on noise would hide the real problem.
    const problemErrors = result.stderr.split('\n').filter((line) => /^\s+error\s/.test(line));
    const counted = /: (\d+) errors?(?: \(and \d+ warnings?\))? found;/.exec(result.stderr);
    if (counted) {
      expect(counted[1], result.stderr).toBe('1');
      expect(problemErrors, result.stderr).toHaveLength(1);
    } else {
      // Files that cannot be read or parsed fail with a single message and no problem list.
      expect(problemErrors, result.stderr).toHaveLength(0);
      expect(result.stderr.trim().split('\n'), result.stderr).toHaveLength(1);
    }
  });

  it.each([
    '17-timeout-is-string.json',
    '49-scripturi-and-inline.json',
    '84-arm-parameter-without-value.json',
  ])('%s with --json still fails with exit 2 and reports the path on stderr', async (file) => {
    const expectation = expectations[file];
    expect(expectation, `no expectation for ${file}`).toBeDefined();
    if (!expectation) return;
    const result = await runValidate(`${FIXTURE_DIR}/${file}`, [...(expectation.args ?? []), '--json']);
    expectCleanFailure(result);
    expect(errorLinesNaming(result.stderr, expectation.path)).not.toHaveLength(0);
    // Failures are reported on stderr only; if stdout ever carries a result, it must be JSON saying so.
    if (result.stdout.trim() !== '') {
      const parsed = JSON.parse(result.stdout) as { ok?: unknown };
      expect(parsed.ok).toBe(false);
    }
  });
});

describe('generated hostile inputs', () => {
  let dir = '';

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'isobuild-invalid-'));
  });

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** A small valid bare-properties template; `artifactTags` is where tests put their payload. */
  function template(artifactTags: string): string {
    return `{
  "source": { "type": "PlatformImage", "publisher": "Canonical", "offer": "0001-com-ubuntu-server-jammy", "sku": "22_04-lts-gen2", "version": "latest" },
  "customize": [{ "type": "Shell", "name": "apt-upgrade", "inline": ["sudo apt-get update"] }],
  "distribute": [{ "type": "VHD", "runOutputName": "ubuntu2204-vhd", "artifactTags": ${artifactTags} }]
}
`;
  }

  it('the template used below is valid without a payload', async () => {
    const file = join(dir, 'baseline.json');
    await writeFile(file, template('{ "source": "isobuild" }'));
    const result = await runValidate(file);
    expect(result.stderr).not.toMatch(STACK_TRACE);
    expect(result.code, result.stderr).toBe(0);
  });

  it('rejects a file over 4 MiB before parsing it', async () => {
    const file = join(dir, 'huge.json');
    const padding = 'x'.repeat(4 * 1024 * 1024 + 1);
    await writeFile(file, template(`{ "padding": "${padding}" }`));
    const result = await runValidate(file);
    expectCleanFailure(result);
    expect(errorLinesNaming(result.stderr, file)).not.toHaveLength(0);
    expect(result.stderr).toContain('templates are limited to 4194304 bytes');
  });

  it('rejects arrays nested 10,000 deep without overflowing the stack', async () => {
    const file = join(dir, 'deep-array.json');
    await writeFile(file, `${'['.repeat(10_000)}${']'.repeat(10_000)}\n`);
    const result = await runValidate(file);
    expectCleanFailure(result);
    expect(result.stderr).toContain('nesting is deeper than 64 levels');
    expect(errorLinesNaming(result.stderr, `${file}:1:65`)).not.toHaveLength(0);
  });

  it('rejects objects nested 10,000 deep inside a template and names where', async () => {
    const file = join(dir, 'deep-object.json');
    await writeFile(file, template(`${'{ "k": '.repeat(10_000)}"v"${' }'.repeat(10_000)}`));
    const result = await runValidate(file);
    expectCleanFailure(result);
    expect(result.stderr).toContain('nesting is deeper than 64 levels');
    expect(result.stderr).toContain('(inside distribute[0].artifactTags.k.k.k.');
  });

  it('rejects 200-deep nesting with the JSON path of the container that goes too deep', async () => {
    const file = join(dir, 'deep-200.json');
    await writeFile(file, template(`${'{ "k": '.repeat(200)}"v"${' }'.repeat(200)}`));
    const result = await runValidate(file);
    expectCleanFailure(result);
    // The path reaches 65 segments: distribute, [0], artifactTags and 62 times k.
    const deepest = `distribute[0].artifactTags${'.k'.repeat(61)}`;
    expect(errorLinesNaming(result.stderr, deepest), result.stderr).not.toHaveLength(0);
    expect(result.stderr).toContain('nesting is deeper than 64 levels');
  });
});
