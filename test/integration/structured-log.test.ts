/**
 * `--log-format json`: container logs as pino JSON lines on stdout, with the run id on every line, the
 * phase and step on log lines, one event per relay connection, and the outcome last.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestVm, stopTestVm, type TestVm } from '../../agent/src/testvm/test-vm.js';
import { runBuildCli } from '../helpers/build-cli.js';
import { linuxTemplate } from '../helpers/template-builders.js';

let vm: TestVm;
let work: string;
beforeAll(async () => {
  vm = await startTestVm();
  work = await mkdtemp(join(tmpdir(), 'isobuild-structured-'));
});
afterAll(async () => {
  await stopTestVm(vm.id);
  await rm(work, { recursive: true, force: true });
});

interface Line {
  level: string;
  msg: string;
  runId?: string;
  phase?: string;
  step?: number;
  stepName?: string;
  source?: string;
  connId?: number;
  hop?: string;
  exitCode?: number;
  runState?: string;
}

describe('structured logs', () => {
  it('writes one JSON line per event with run, phase, step and connection fields', async () => {
    const run = await runBuildCli(
      vm,
      work,
      linuxTemplate({
        customize: [
          { type: 'Shell', name: 'greet', inline: ['echo "hello from the VM"'] },
          { type: 'Shell', name: 'boom', inline: ['exit 4'] },
        ],
      }),
      ['--log-format', 'json'],
    );

    expect(run.code).toBe(1);
    expect(run.stderr).toBe('');
    const lines = run.stdout
      .trim()
      .split('\n')
      .map((text) => JSON.parse(text) as Line);
    expect(lines.every((l) => l.runId === run.status.runId && typeof l.msg === 'string')).toBe(true);
    const greeting = lines.find((l) => l.msg.includes('hello from the VM'));
    expect(greeting).toMatchObject({
      level: 'info',
      phase: 'Customizing',
      step: 1,
      stepName: 'greet',
      source: 'PACKER OUT',
    });
    expect(lines.some((l) => l.level === 'debug' && l.source === 'PACKER ERR')).toBe(true);
    const connection = lines.find((l) => l.msg === 'relay connection closed');
    expect(connection).toMatchObject({ connId: 1, hop: `build VM ${vm.address}:22` });
    const last = lines.at(-1);
    expect(last).toMatchObject({ level: 'error', runState: 'Failed', exitCode: 1 });
    expect(last?.msg).toContain('customizer 2 Shell "boom" failed');
  });
});
