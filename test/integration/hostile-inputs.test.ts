/**
 * Inputs that used to hang or crash isobuild: FIFOs and devices where a file belongs, unusable work
 * directories, out-of-range durations, half-valid store settings. Each must end promptly with a clear
 * message and a documented exit code, and start nothing (no run directory, no store).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI } from '../helpers/build-cli.js';
import { runProcess } from '../helpers/run-process.js';
import { linuxTemplate } from '../helpers/template-builders.js';

const run = promisify(execFile);
let work: string;
let template: string;

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs the CLI with a deadline: a hang is a failed test, not a stuck suite. */
function isobuild(
  args: string[],
  options: { killAfterMs?: number; signalAfterMs?: number } = {},
): Promise<Result> {
  return runProcess(process.execPath, [CLI, ...args], {
    deadlineMs: options.killAfterMs ?? 15_000,
    ...(options.signalAfterMs ? { signalAfter: { signal: 'SIGTERM', ms: options.signalAfterMs } } : {}),
  });
}

const build = (...args: string[]): string[] => [
  'build',
  ...args,
  '--host',
  '127.0.0.1',
  '--ssh-key-file',
  join(work, 'key'),
  '--local-logs-only',
];

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'isobuild-inputs-'));
  template = join(work, 'template.json');
  await writeFile(
    template,
    JSON.stringify(linuxTemplate({ customize: [{ type: 'Shell', inline: ['true'] }] })),
  );
  await writeFile(join(work, 'key'), 'not really a key\n');
  await run('mkfifo', [join(work, 'fifo')]);
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('files that are not regular files', () => {
  it.each([
    ['the template', (fifo: string) => ['validate', fifo], 'is a FIFO (named pipe), not a regular file'],
    ['the template of a build', (fifo: string) => build(fifo, '--work-dir', join(work, 'runs')), 'is a FIFO'],
    [
      '--param-file',
      (fifo: string) => ['validate', template, '--param-file', fifo],
      '(--param-file): it is a FIFO (named pipe), not a regular file',
    ],
    [
      '--ssh-key-file',
      (fifo: string) => [
        'build',
        template,
        '--host',
        '127.0.0.1',
        '--ssh-key-file',
        fifo,
        '--work-dir',
        join(work, 'runs'),
        '--local-logs-only',
      ],
      'the SSH key file',
    ],
  ])('refuses a FIFO as %s at once, with exit 2', async (_what, args, message) => {
    const result = await isobuild(args(join(work, 'fifo')));

    expect(result.code, result.stderr).toBe(2);
    expect(result.stderr).toContain(message);
    expect(result.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(result.ms).toBeLessThan(10_000);
  });

  it.each([['/dev/zero'], ['/dev/stdin'], ['/dev/tty']])(
    'refuses the device %s as a template',
    async (device) => {
      const result = await isobuild(['validate', device]);

      expect(result.code, result.stderr).toBe(2);
      expect(result.stderr).toMatch(
        /cannot read \/dev\/\w+: (it is a character device|it is a FIFO|it is a socket|no such|permission|it is a socket or a device)/,
      );
    },
  );
});

describe('unusable work directories', () => {
  it.each([
    ['a regular file', () => template, 'it, or a part of its path, is a file, not a directory'],
    ['/dev/null', () => '/dev/null', 'it, or a part of its path, is a file, not a directory'],
    [
      'a path under a file',
      () => join(template, 'runs'),
      'it, or a part of its path, is a file, not a directory',
    ],
    ['a path under /proc', () => '/proc/isobuild-runs', 'it is on proc, a kernel pseudo-filesystem'],
    ['a path under /sys', () => '/sys/isobuild-runs', 'it is on sysfs, a kernel pseudo-filesystem'],
  ])('refuses %s with exit 4, before anything starts', async (_what, dir, message) => {
    const result = await isobuild(build(template, '--work-dir', dir()));

    expect(result.code, result.stderr).toBe(4);
    expect(result.stderr).toContain(`the work directory ${dir()} cannot be used: ${message}`);
    expect(result.stderr).not.toMatch(/internal error|\n\s+at /);
  });

  it('refuses a directory the user may not write, and a read-only filesystem', async () => {
    const locked = join(work, 'locked');
    await mkdir(locked);
    await chmod(locked, 0o555);
    // As root permission bits do not apply: run as nobody, who may read the template but not write here.
    await chmod(work, 0o755);
    const asNobody = await new Promise<Result>((resolve) => {
      execFile(
        'setpriv',
        [
          '--reuid=65534',
          '--regid=65534',
          '--clear-groups',
          process.execPath,
          CLI,
          ...build(template, '--work-dir', join(locked, 'runs')),
        ],
        (error, stdout, stderr) =>
          resolve({ code: error ? (error.code as number) : 0, stdout, stderr, ms: 0 }),
      );
    });
    const readOnly = await new Promise<Result>((resolve) => {
      const script = `mount -t tmpfs -o ro tmpfs "$1" && exec "$2" "$3" ${build(
        template,
        '--work-dir',
        join(locked, 'runs'),
      )
        .map((a) => `'${a}'`)
        .join(' ')}`;
      execFile(
        'unshare',
        ['--mount', '--propagation', 'private', 'sh', '-c', script, 'sh', locked, process.execPath, CLI],
        (error, stdout, stderr) =>
          resolve({ code: error ? (error.code as number) : 0, stdout, stderr, ms: 0 }),
      );
    });

    expect(asNobody.code, asNobody.stderr).toBe(4);
    expect(asNobody.stderr).toContain('cannot be used: permission denied');
    expect(readOnly.code, readOnly.stderr).toBe(4);
    expect(readOnly.stderr).toContain('cannot be used: it is on a read-only filesystem');
  });
});

describe('settings out of range or half valid', () => {
  it('refuses a build timeout no timer can hold, with exit 2', async () => {
    const result = await isobuild(
      build(template, '--work-dir', join(work, 'runs'), '--build-timeout', '99999999999999h'),
    );

    expect(result.code, result.stderr).toBe(2);
    expect(result.stderr).toContain('is longer than the maximum of 7 days (168h)');
  });

  it('refuses an explicitly configured store that cannot work, before anything else happens', async () => {
    const runs = join(work, 'store-runs');
    const args = [
      'build',
      template,
      '--host',
      '127.0.0.1',
      '--ssh-key-file',
      join(work, 'key'),
      '--work-dir',
      runs,
      '--storage-connection-string',
      'AccountName=acct;AccountKey=this is not base64;BlobEndpoint=not-a-url',
    ];

    const result = await isobuild(args);

    expect(result.code, result.stderr).toBe(2);
    expect(result.stderr).toContain('AccountKey is not base64');
    expect(result.stderr).toContain('BlobEndpoint is not an http(s) URL');
    expect(result.stderr).not.toContain('this is not base64');
    expect(existsSync(runs) ? await readdir(runs) : []).toEqual([]);
  });

  it('refuses a run id already used in the work directory, before anything starts', async () => {
    const runs = join(work, 'dup-runs');
    await mkdir(join(runs, 'taken'), { recursive: true });

    const result = await isobuild(build(template, '--work-dir', runs, '--run-id', 'taken'));

    expect(result.code, result.stderr).toBe(2);
    expect(result.stderr).toContain(
      `the run directory ${join(runs, 'taken')} already exists: run ids must be unique`,
    );
    expect(await readdir(runs)).toEqual(['taken']);
  });
});
