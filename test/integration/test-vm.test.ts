/** The disposable test VM: isolated root filesystem, non-root admin with sudo, nothing left behind. */
import { execFile, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cleanupStaleTestVms,
  listTestVms,
  startTestVm,
  stopTestVm,
  type TestVm,
} from '../../agent/src/testvm/test-vm.js';
import { sshExec } from '../helpers/ssh.js';

const run = promisify(execFile);
let vm: TestVm;

beforeAll(async () => {
  vm = await startTestVm();
});
afterAll(async () => {
  await stopTestVm(vm.id);
});

describe('test VM', () => {
  it('logs in as a non-root user with passwordless sudo, under its own hostname', async () => {
    const result = await sshExec(vm, 'id -u; sudo -n id -u; hostname');

    expect(result.code).toBe(0);
    const [uid, sudoUid, name] = result.stdout.trim().split('\n');
    expect(Number(uid)).toBeGreaterThan(0);
    expect(sudoUid).toBe('0');
    expect(name).toBe(vm.name);
    expect(name).not.toBe(hostname());
  });

  it('keeps every write inside the VM: /etc, /usr and /root on the host stay untouched', async () => {
    const marker = `isobuild-probe-${randomUUID()}`;
    const paths = [`/etc/${marker}`, `/usr/local/${marker}`, `/root/${marker}`];

    const result = await sshExec(
      vm,
      `for p in ${paths.join(' ')}; do echo changed | sudo tee $p >/dev/null; done; sudo cat ${paths.join(' ')}`,
    );

    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toBe('changed\n'.repeat(3));
    for (const path of paths) expect(existsSync(path), path).toBe(false);
  });

  it('cannot change kernel-wide settings of the host', async () => {
    const result = await sshExec(vm, 'cat /proc/sys/kernel/pid_max | sudo tee /proc/sys/kernel/pid_max');

    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/Read-only file system/);
  });

  it('is removed completely when stopped', async () => {
    const extra = await startTestVm();

    await stopTestVm(extra.id);

    const { stdout: namespaces } = await run('ip', ['netns', 'list']);
    const { stdout: links } = await run('ip', ['-o', 'link']);
    expect(namespaces).not.toContain(extra.name);
    expect(links).not.toContain(`ibvm${extra.id}h`);
    expect(existsSync(extra.stateDir)).toBe(false);
    expect(() => process.kill(extra.holderPid, 0)).toThrow();
    expect((await listTestVms()).map((v) => v.id)).not.toContain(extra.id);
  });

  it('cleans up the VM of a run that crashed', async () => {
    // A separate process starts a VM and is then killed without any chance to clean up.
    const child = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `
      const { startTestVm } = await import(${JSON.stringify(resolve('dist/agent/src/testvm/test-vm.js'))});
      const vm = await startTestVm();
      process.stdout.write(JSON.stringify(vm) + '\\n');
      setInterval(() => {}, 1000);
    `,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const orphan = await new Promise<TestVm>((done) =>
      child.stdout.once('data', (data: Buffer) => done(JSON.parse(data.toString()) as TestVm)),
    );
    child.kill('SIGKILL');
    await new Promise((done) => child.once('exit', done));

    const removed = await cleanupStaleTestVms();

    expect(removed).toContain(orphan.id);
    expect(existsSync(orphan.stateDir)).toBe(false);
    expect((await run('ip', ['netns', 'list'])).stdout).not.toContain(orphan.name);
    expect((await listTestVms()).map((v) => v.id)).toContain(vm.id); // a live run's VM is left alone
  });
});
