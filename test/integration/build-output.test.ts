/**
 * What a build tells its user, in which order: where the logs stream has a fixed place (after the VM's
 * readiness, before the first step), and a run cancelled in its first second is still a run that
 * `isobuild logs` finds in the same work directory.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestVm, stopTestVm, type TestVm } from '../../agent/src/testvm/test-vm.js';
import { startAzurite, type AzuriteInstance } from '../helpers/azurite.js';
import { CLI, finished, startBuild } from '../helpers/build-cli.js';
import { runProcess } from '../helpers/run-process.js';
import { linuxTemplate } from '../helpers/template-builders.js';

let vm: TestVm;
let azurite: AzuriteInstance;
let work: string;
let template: string;

beforeAll(async () => {
  vm = await startTestVm();
  azurite = await startAzurite();
  work = await mkdtemp(join(tmpdir(), 'isobuild-output-'));
  template = join(work, 'template.json');
  await writeFile(
    template,
    JSON.stringify(
      linuxTemplate({
        customize: [
          { type: 'Shell', name: 'one', inline: ['echo one'] },
          { type: 'Shell', name: 'two', inline: ['echo two'] },
        ],
      }),
    ),
  );
});
afterAll(async () => {
  await stopTestVm(vm.id);
  await azurite.close();
  await rm(work, { recursive: true, force: true });
});

function isobuild(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return runProcess(process.execPath, [CLI, ...args], { deadlineMs: 60_000 });
}

describe('build output', () => {
  it('says where the logs stream right after the VM is ready and before the first step, every time', async () => {
    for (const runId of ['order-1', 'order-2', 'order-3']) {
      const run = await finished(
        startBuild(vm, work, template, runId, ['--storage-connection-string', azurite.connectionString]),
        join(work, runId),
      );

      expect(run.code, run.stderr).toBe(0);
      const lines = run.stderr.split('\n');
      const ready = lines.findIndex((l) => l.includes('accepts SSH'));
      const stream = lines.findIndex((l) => l.startsWith('logs stream to '));
      const first = lines.findIndex((l) => l.startsWith('[1/'));
      expect([ready, stream, first], run.stderr).toEqual([ready, ready + 1, ready + 2]);
      expect(lines[stream]).toContain(`/packerlogs/${runId}/customization.log`);
    }
  });

  it('keeps a run cancelled while the embedded store starts: isobuild logs finds it as Canceled', async () => {
    // The embedded Azurite takes a second or two to start; a cancel anywhere in that window must not
    // abort the store's opening, or the cancelled run never reaches it.
    for (const delayMs of [0, 400, 800, 1200]) {
      const runs = join(work, `early-cancel-${delayMs}`);
      const child = spawn(
        process.execPath,
        [
          CLI,
          'build',
          template,
          '--host',
          vm.address,
          '--user',
          vm.user,
          '--ssh-key-file',
          vm.keyFile,
          '--work-dir',
          runs,
          '--run-id',
          'early',
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let stderr = '';
      let timer: NodeJS.Timeout | undefined;
      child.stderr.on('data', (c: Buffer) => {
        stderr += c.toString();
        // Once the run exists; only once, since a second SIGINT means "stop now".
        if (stderr.includes('validate template') && !timer)
          timer = setTimeout(() => child.kill('SIGINT'), delayMs);
      });
      const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
      clearTimeout(timer);

      const logs = await isobuild(['logs', 'early', '--work-dir', runs]);

      expect(code, stderr).toBe(130);
      expect(logs.code, `cancel ${delayMs} ms in: ${logs.stderr}\n--- build:\n${stderr}`).toBe(0);
      expect(logs.stderr).toMatch(/Run early: Canceled\/\w+: the build was cancelled/);
    }
  }, 120_000);
});
