/**
 * `isobuild build --resume RUN_ID` and `--from-step N` against a real test VM with real Packer: a build
 * fails at step 2, the script is fixed, and the resumed run runs steps 2–3 only (step 1's side effect
 * happened once on the VM); a changed earlier step is refused by name; --from-step 1 runs everything again;
 * a failed validator resumes at the validator. Every run is linked in status.json and in `isobuild logs`.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestVm, stopTestVm, type TestVm } from '../../agent/src/testvm/test-vm.js';
import { CLI, finished, writeTemplate, type BuildRun } from '../helpers/build-cli.js';
import { runProcess } from '../helpers/run-process.js';
import { sshExec } from '../helpers/ssh.js';
import { linuxTemplate } from '../helpers/template-builders.js';
import { spawn } from 'node:child_process';

let vm: TestVm;
let work: string;
beforeAll(async () => {
  vm = await startTestVm();
  work = await mkdtemp(join(tmpdir(), 'isobuild-resume-'));
}, 120_000);
afterAll(async () => {
  await stopTestVm(vm.id);
  await rm(work, { recursive: true, force: true });
});

/** One build: `--resume` runs get no --host, so the VM comes from the run they continue. */
function build(
  runId: string,
  templateFile: string,
  args: string[],
  withHost = true,
  store = false,
): Promise<BuildRun> {
  const child = spawn(
    process.execPath,
    [
      CLI,
      'build',
      templateFile,
      ...(withHost ? ['--host', vm.address, '--user', vm.user] : []),
      '--ssh-key-file',
      vm.keyFile,
      '--work-dir',
      work,
      '--run-id',
      runId,
      '--skip-deprovision',
      '--ready-timeout',
      '10s',
      ...(store ? [] : ['--local-logs-only']),
      ...args,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  return finished(child, join(work, runId));
}

/** Three steps: the first leaves a mark on the VM, the second fails until it is fixed. */
const threeSteps = (marker: string, secondExit: number, firstText = 'one') =>
  linuxTemplate({
    customize: [
      { type: 'Shell', name: 'mark', inline: [`echo ${firstText} >> ${marker}`] },
      { type: 'Shell', name: 'configure', inline: [`echo configuring; exit ${secondExit}`] },
      { type: 'Shell', name: 'finish', inline: [`echo three >> ${marker}`] },
    ],
  });

const marks = async (marker: string): Promise<string> => (await sshExec(vm, `cat ${marker}`)).stdout;

describe('isobuild build --resume', () => {
  it('runs only the failed step and those after it, linked to the failed run, on the same VM', async () => {
    const marker = `/tmp/resume-marker-${process.pid}`;
    const first = await build('r1', await writeTemplate(work, 'r1', threeSteps(marker, 3)), []);
    expect(first.code).toBe(1);
    expect(first.status.customizers.map((s) => s.outcome)).toEqual(['succeeded', 'failed', 'pending']);
    expect(first.status.target).toMatchObject({
      host: vm.address,
      port: 22,
      topology: 'direct',
      user: vm.user,
    });
    // The next moves are printed next to the log location.
    expect(first.stdout).toContain(`isobuild shell r1 --work-dir ${work}`);
    expect(first.stdout).toContain(`--resume r1 --work-dir ${work}`);

    const fixed = await writeTemplate(work, 'r2', threeSteps(marker, 0));
    // This one streams to the embedded store, so that `isobuild logs` can read it.
    const resumed = await build('r2', fixed, ['--resume', 'r1'], false, true);
    expect(resumed.stderr).toContain('[1/3] Shell "mark" skipped (done in r1)');
    expect(resumed.stderr).toContain('run r2 continues run r1 from step 2/3 Shell "configure"');
    expect(resumed.code).toBe(0);
    expect(resumed.status.runState).toBe('Succeeded');
    expect(resumed.status.resumedFrom).toEqual({ runId: 'r1', fromStep: 2, step: 'Shell "configure"' });
    expect(resumed.status.customizers.map((s) => [s.outcome, s.doneIn])).toEqual([
      ['skipped', 'r1'],
      ['succeeded', undefined],
      ['succeeded', undefined],
    ]);
    // Proved on the VM: step 1 ran once (in r1), step 3 once (in r2).
    expect(await marks(marker)).toBe('one\nthree\n');
    const log = await readFile(join(work, 'r2', 'customization.log'), 'utf8');
    expect(log).not.toContain(`echo one >> ${marker}`);

    const logs = await runProcess(process.execPath, [CLI, 'logs', 'r2', '--work-dir', work]);
    expect(logs.stderr).toContain('Run r2 continues run r1 from step 2 Shell "configure"');

    // A succeeded run has nothing to resume.
    const again = await build('r2b', fixed, ['--resume', 'r2'], false);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('cannot resume run r2: it succeeded');
  });

  it('refuses when an earlier step changed, naming it; --from-step 1 then runs everything again', async () => {
    const marker = `/tmp/resume-changed-${process.pid}`;
    const failed = await build('c1', await writeTemplate(work, 'c1', threeSteps(marker, 3)), []);
    expect(failed.code).toBe(1);

    const changed = await writeTemplate(work, 'c2', threeSteps(marker, 0, 'ONE'));
    const refused = await build('c2', changed, ['--resume', 'c1'], false);
    expect(refused.code).toBe(2);
    expect(refused.status.message).toContain(
      'cannot resume run c1: step 1 Shell "mark" changed since it ran there',
    );
    expect(refused.status.message).toContain('--from-step 1');
    expect(await marks(marker)).toBe('one\n'); // nothing ran on the VM

    const rerun = await build('c3', changed, ['--resume', 'c1', '--from-step', '1'], false);
    expect(rerun.code).toBe(0);
    expect(rerun.status.resumedFrom).toMatchObject({ runId: 'c1', fromStep: 1 });
    expect(await marks(marker)).toBe('one\nONE\nthree\n');
  });

  it('resumes at the first failed in-VM validator, skipping every customizer', async () => {
    const marker = `/tmp/resume-validator-${process.pid}`;
    const template = (validatorExit: number) =>
      linuxTemplate({
        customize: [{ type: 'Shell', name: 'mark', inline: [`echo built >> ${marker}`] }],
        validate: {
          inVMValidations: [
            { type: 'Shell', name: 'first check', inline: ['true'] },
            { type: 'Shell', name: 'second check', inline: [`exit ${validatorExit}`] },
          ],
        },
      });
    const failed = await build('v1', await writeTemplate(work, 'v1', template(4)), []);
    expect(failed.code).toBe(1);
    expect(failed.status.validators.map((s) => s.outcome)).toEqual(['succeeded', 'failed']);

    const resumed = await build(
      'v2',
      await writeTemplate(work, 'v2', template(0)),
      ['--resume', 'v1'],
      false,
    );
    expect(resumed.code).toBe(0);
    expect(resumed.status.resumedFrom).toEqual({ runId: 'v1', fromStep: 3, step: 'Shell "second check"' });
    expect(resumed.status.customizers[0]).toMatchObject({ outcome: 'skipped', doneIn: 'v1' });
    expect(resumed.status.validators.map((s) => s.outcome)).toEqual(['skipped', 'succeeded']);
    expect(await marks(marker)).toBe('built\n');
  });

  it('refuses another VM, and a run that does not exist', async () => {
    const marker = `/tmp/resume-other-${process.pid}`;
    const templateFile = await writeTemplate(work, 'o1', threeSteps(marker, 3));
    expect((await build('o1', templateFile, [])).code).toBe(1);
    const other = await runProcess(process.execPath, [
      CLI,
      'build',
      templateFile,
      '--resume',
      'o1',
      '--host',
      '10.0.0.99',
      '--ssh-key-file',
      vm.keyFile,
      '--work-dir',
      work,
      '--local-logs-only',
    ]);
    expect(other.code).toBe(2);
    expect(other.stderr).toContain(
      `cannot resume run o1: it ran on the build VM ${vm.address}, not 10.0.0.99`,
    );

    const missing = await runProcess(process.execPath, [
      CLI,
      'build',
      templateFile,
      '--resume',
      'no-such-run',
      '--ssh-key-file',
      vm.keyFile,
      '--work-dir',
      work,
    ]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain(`there is no run no-such-run in ${join(work, 'no-such-run')}`);
  });
});
