/**
 * `isobuild logs` against the default store (the embedded Azurite under the work directory): follow a
 * build live to its end, read it again afterwards, fetch its bundle, and leave nothing running.
 */
import { spawn } from 'node:child_process';
import { access, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openBlobStore } from '../../agent/src/logstore/blob-store.js';
import { Secret } from '../../agent/src/secret.js';
import { startTestVm, stopTestVm, type TestVm } from '../../agent/src/testvm/test-vm.js';
import { startAzuriteProcess } from '../helpers/azurite.js';
import { CLI, finished, startBuild, writeTemplate } from '../helpers/build-cli.js';
import { runProcess } from '../helpers/run-process.js';
import { linuxTemplate } from '../helpers/template-builders.js';

let vm: TestVm;
let work: string;

beforeAll(async () => {
  vm = await startTestVm();
  work = await mkdtemp(join(tmpdir(), 'isobuild-logs-cli-'));
});
afterAll(async () => {
  await stopTestVm(vm.id);
  await rm(work, { recursive: true, force: true });
});

function logsCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return logsCliIn(work, args);
}

function logsCliIn(
  workDir: string,
  args: string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return runProcess(process.execPath, [CLI, 'logs', ...args, '--work-dir', workDir]);
}

/** Azurite processes serving this test's work directory ("[a]" keeps pgrep from matching other pgreps). */
async function azuriteProcesses(): Promise<string[]> {
  const found = await execa('pgrep', ['-f', `[a]zurite.*--location ${join(work, '.azurite')}`], {
    reject: false,
  });
  return found.stdout.split('\n').filter(Boolean);
}

async function waitForFile(path: string, contains: string, timeoutMs = 10_000): Promise<void> {
  for (let i = 0; i < timeoutMs / 50; i++) {
    if ((await readFile(path, 'utf8').catch(() => '')).includes(contains)) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`${path} never contained ${contains}`);
}

describe('isobuild logs with the embedded store', () => {
  it('follows a build live to its end across rollovers, then reads it again and fetches its bundle', async () => {
    const runId = `follow-${process.pid}`;
    const templateFile = await writeTemplate(
      work,
      runId,
      linuxTemplate({
        customize: [
          {
            type: 'Shell',
            name: 'count',
            inline: ['for i in $(seq 1 10); do echo "tick $i"; sleep 0.5; done'],
          },
          { type: 'Shell', name: 'fails', inline: ['echo "about to fail"; exit 7'] },
        ],
      }),
    );
    // Any --storage-* flag keeps the store on in the test helper; the container is the default one.
    // A block limit of one makes the log roll over with every append while it is followed (even on a
    // loaded machine, where the store may open late and take the first lines in one block).
    const build = startBuild(vm, work, templateFile, runId, [
      '--storage-container',
      'packerlogs',
      '--log-max-blocks',
      '1',
    ]);
    const built = finished(build, join(work, runId));
    // Started before the build has stored anything: --follow waits for the run to appear.
    const following = logsCli([runId, '--follow', '--interval', '100ms']);

    const follow = await following;
    const run = await built;

    expect(run.code).toBe(1);
    expect(run.status.message).toMatch(
      /Run follow-\d+, full log: http:\/\/127\.0\.0\.1:\d+\/devstoreaccount1\/packerlogs\/follow-\d+\/customization\.log/,
    );
    expect(run.stdout).toContain(`read it with: isobuild logs ${runId} --work-dir ${work}`);
    const local = await readFile(join(work, runId, 'customization.log'), 'utf8');
    expect(follow.stdout).toBe(local);
    expect(follow.stdout).toContain('PACKER ERR (telemetry) Starting provisioner shell');
    expect(follow.stderr).toMatch(/Run follow-\d+: Running\//);
    expect(follow.stderr).toMatch(/Run follow-\d+: Failed\/Customizing: customizer 2 Shell "fails" failed/);
    expect(follow.code).toBe(1);

    // After the build: its Azurite is gone, `logs` starts one over the same data and finds everything.
    const again = await logsCli([runId]);
    expect(again.code).toBe(0);
    expect(again.stdout).toBe(local);
    // The embedded Azurite is gone; look at its data with an Azurite of the test's own.
    const azurite = await startAzuriteProcess(join(work, '.azurite'));
    try {
      const store = await openBlobStore({
        kind: 'connection-string',
        connectionString: new Secret(azurite.connectionString),
      });
      const names: string[] = [];
      for await (const blob of store.container.listBlobsFlat({ prefix: `${runId}/customization` }))
        names.push(blob.name);
      expect(names).toContain(`${runId}/customization.2.log`);
    } finally {
      await azurite.stop();
    }

    const bundleDir = join(work, 'bundle');
    const bundle = await logsCli([runId, '--bundle', bundleDir]);
    expect(bundle.code, bundle.stderr).toBe(0);
    expect((await readdir(join(bundleDir, 'packer'))).sort()).toEqual(
      ['artifacts', 'customization.pkr.hcl', 'effective-config.json', 'isobuild-render.json'].sort(),
    );
    const config = JSON.parse(await readFile(join(bundleDir, 'packer', 'effective-config.json'), 'utf8')) as {
      runId: string;
    };
    expect(config.runId).toBe(runId);

    // Nothing of the store is left running.
    expect(await azuriteProcesses()).toEqual([]);
  });

  it('stops the embedded Azurite when the build is killed outright', async () => {
    const runId = `killed-${process.pid}`;
    const templateFile = await writeTemplate(
      work,
      runId, // Long enough for the embedded store to open on a loaded machine; the build is killed anyway.
      JSON.stringify(linuxTemplate({ customize: [{ type: 'Shell', inline: ['sleep 15'] }] })),
    );
    const build = startBuild(vm, work, templateFile, runId, ['--storage-container', 'packerlogs']);
    const built = finished(build, join(work, runId));
    await waitForFile(join(work, runId, 'status.json'), '"state": "streaming"', 30_000);
    expect(await azuriteProcesses()).not.toEqual([]);

    build.kill('SIGKILL');
    await built;

    for (let i = 0; i < 100 && (await azuriteProcesses()).length > 0; i++)
      await new Promise((resolve) => setTimeout(resolve, 100));
    expect(await azuriteProcesses()).toEqual([]);
  });

  it('lets concurrent builds share one embedded Azurite, never two on the same data', async () => {
    const templateFile = join(work, 'concurrent.json');
    await writeFile(
      templateFile,
      JSON.stringify(linuxTemplate({ customize: [{ type: 'Shell', inline: ['echo concurrent; sleep 1'] }] })),
    );
    let most = 0;
    const sampler = setInterval(
      () => void azuriteProcesses().then((found) => (most = Math.max(most, found.length))),
      50,
    );
    const runIds = [`concurrent-a-${process.pid}`, `concurrent-b-${process.pid}`];
    const runs = await Promise.all(
      runIds.map((runId) =>
        finished(
          startBuild(vm, work, templateFile, runId, ['--storage-container', 'packerlogs']),
          join(work, runId),
        ),
      ),
    );
    clearInterval(sampler);

    for (const run of runs) {
      expect(run.code, run.stderr).toBe(0);
      expect(run.status.logStore?.state).toBe('stored');
    }
    expect(most).toBe(1);
    for (const runId of runIds) {
      const stored = await logsCli([runId]);
      expect(stored.stdout).toBe(await readFile(join(work, runId, 'customization.log'), 'utf8'));
    }
    expect(await azuriteProcesses()).toEqual([]);
  });

  it('ends the embedded Azurite when its work directory is removed and its last user dies', async () => {
    const other = await mkdtemp(join(tmpdir(), 'isobuild-logs-cli-gone-'));
    const running = async (): Promise<string[]> =>
      (
        await execa('pgrep', ['-f', `[a]zurite.*--location ${join(other, '.azurite')}`], { reject: false })
      ).stdout
        .split('\n')
        .filter(Boolean);
    // A work directory a build has used; two followers of a run that never starts: the first starts
    // Azurite, the second reuses it.
    await mkdir(join(other, '.azurite'));
    const follow = () =>
      spawn(process.execPath, [CLI, 'logs', 'never', '--follow', '--work-dir', other], { stdio: 'ignore' });
    const starter = follow();
    await waitForFile(join(other, '.azurite', 'endpoint.json'), 'url');
    const reuser = follow();
    for (let i = 0; i < 100 && (await readdir(join(other, '.azurite', 'users'))).length < 2; i++)
      await new Promise((resolve) => setTimeout(resolve, 50));
    starter.kill('SIGKILL');
    // Azurite may still be writing into it: retry as rm -rf would have to (ENOTEMPTY while it races).
    await rm(other, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 });
    reuser.kill('SIGKILL');

    for (let i = 0; i < 100 && (await running()).length > 0; i++)
      await new Promise((resolve) => setTimeout(resolve, 100));
    expect(await running()).toEqual([]);
  });

  it('says clearly when a run is not in the store', async () => {
    await mkdir(join(work, '.azurite'), { recursive: true }); // a store the builds above have used
    const missing = await logsCli(['no-such-run']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('no run "no-such-run" in the embedded store');
    expect(missing.stderr).not.toMatch(/\n\s+at /);
  });
});

describe('isobuild logs input', () => {
  it.each(['../../etc', '..', 'a/b', 'run id', `${'a'.repeat(65)}`, 'ü'])(
    'refuses the run id %j as invalid input (exit 2), before touching any store',
    async (runId) => {
      const dir = await mkdtemp(join(tmpdir(), 'isobuild-logs-input-'));
      try {
        const result = await logsCliIn(dir, [runId]);

        expect(result.code, result.stderr).toBe(2);
        expect(result.stderr).toMatch(/is not a run id: run ids are 1–64 letters, digits, -, _ or \./);
        expect(result.stderr).not.toMatch(/HTTP 400|InvalidResourceName|\n\s+at /);
        expect(await readdir(dir)).toEqual([]);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  );

  it('never creates a --work-dir that does not exist, and says there are no runs in it', async () => {
    const missing = join(tmpdir(), `isobuild-logs-nonexistent-${process.pid}`);

    const result = await logsCliIn(missing, ['some-run']);

    expect(result.code, result.stderr).toBe(2);
    expect(result.stderr).toContain(`no runs in ${missing}: the directory does not exist`);
    await expect(access(missing)).rejects.toThrow();
  });

  it('waits with --follow for a build to use a work directory without creating it, and ends on SIGTERM with 143', async () => {
    const missing = join(tmpdir(), `isobuild-logs-follow-nonexistent-${process.pid}`);
    const child = spawn(process.execPath, [CLI, 'logs', 'later', '--follow', '--work-dir', missing], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
    for (let i = 0; i < 100 && !stderr.includes('waiting for run later'); i++)
      await new Promise((resolve) => setTimeout(resolve, 50));
    await new Promise((resolve) => setTimeout(resolve, 500));

    child.kill('SIGTERM');
    const code = await exited;

    expect(stderr).toContain('isobuild logs: waiting for run later to start (up to 10 min)');
    expect(code, stderr).toBe(143);
    expect(stderr).toContain('interrupted by SIGTERM');
    expect(stderr).not.toMatch(/internal error|\n\s+at /);
    await expect(access(missing)).rejects.toThrow();
  });

  it('creates no store in a work directory no build has used', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'isobuild-logs-empty-'));
    try {
      const result = await logsCliIn(empty, ['some-run']);

      expect(result.code, result.stderr).toBe(2);
      expect(result.stderr).toContain(`no runs in ${empty}: no build has stored logs there`);
      expect(await readdir(empty)).toEqual([]);
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });
});
