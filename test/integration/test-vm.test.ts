/** The disposable test VM: isolated root filesystem, non-root admin with sudo, nothing left behind. */
import { execFile, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
import { CLI } from '../helpers/build-cli.js';
import { sshExec } from '../helpers/ssh.js';
import { linuxTemplate } from '../helpers/template-builders.js';

const run = promisify(execFile);
let vm: TestVm;

/** Runs the built CLI; a non-zero exit is a result, not an exception. */
function isobuild(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return run(process.execPath, [CLI, ...args]).then(
    (r) => ({ code: 0, ...r }),
    (e: { code: number; stdout: string; stderr: string }) => e,
  );
}

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

describe('test VM handles', () => {
  it('stops a VM only by the handle of that very start; a reused slot number or stale handle stops nothing', async () => {
    const first = await startTestVm();
    await stopTestVm(first.id);
    const second = await startTestVm(); // likely the same slot number as `first`
    try {
      const stale = await isobuild('testvm', 'stop', first.handle);
      // Whichever slot `second` got, a handle of that slot from another start must not stop it.
      const sameSlot = await isobuild('testvm', 'stop', `${second.id}-000000`);
      const bare = await isobuild('testvm', 'stop', String(second.id));

      expect(stale.code).toBe(2);
      expect(stale.stderr).toContain(
        `no running test VM has the handle "${first.handle}"; nothing was stopped`,
      );
      expect(sameSlot.code).toBe(2);
      expect(bare.code).toBe(2);
      expect(bare.stderr).toMatch(/slots are reused: use the handle/);
      expect(() => process.kill(second.holderPid, 0)).not.toThrow();

      const stop = await isobuild('testvm', 'stop', second.handle);
      expect(stop.code, stop.stderr).toBe(0);
      expect(existsSync(second.stateDir)).toBe(false);
    } finally {
      await stopTestVm(second.id);
    }
  });
});

describe('AIB deprovisioning on a test VM', () => {
  it('has the Azure Linux agent inside the VM only: nothing is installed on the host', async () => {
    const hostState = async () =>
      (await run('dpkg-query', ['-W', '-f=${Status}', 'waagent']).catch((e: { stdout: string }) => e)).stdout;
    const before = await hostState();
    const own = await startTestVm();
    try {
      const result = await sshExec(own, 'sudo /usr/sbin/waagent -version');

      expect(own.azureAgent, own.azureAgentProblem).toBe(true);
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).toMatch(/WALinuxAgent-\d/);
      expect(await hostState()).toBe(before);
    } finally {
      await stopTestVm(own.id);
    }
  });

  it('builds as the README says, without --skip-deprovision: waagent -deprovision+user runs for real', async () => {
    const own = await startTestVm();
    const work = await mkdtemp(join(tmpdir(), 'isobuild-deprovision-'));
    try {
      const template = join(work, 'template.json');
      await writeFile(
        template,
        JSON.stringify(
          linuxTemplate({ customize: [{ type: 'Shell', name: 'hello', inline: ['echo hello'] }] }),
        ),
      );
      const before = await sshExec(own, 'sudo ls /etc/resolv.conf');

      const result = await isobuild(
        'build',
        template,
        '--host',
        own.address,
        '--user',
        own.user,
        '--ssh-key-file',
        own.keyFile,
        '--work-dir',
        work,
        '--local-logs-only',
      );

      expect(result.code, result.stderr).toBe(0);
      expect(result.stderr).toMatch(/\[2\/2\] Shell "deprovision" [\d.]+s ✓/);
      expect(result.stderr).not.toMatch(/warn|skip/i);
      expect(before.code).toBe(0);
      // waagent's deprovisioning deletes resolv.conf and the DHCP leases: proof it ran inside the VM.
      const after = await sshExec(own, 'test -e /etc/resolv.conf; echo $?');
      expect(after.stdout.trim()).toBe('1');
    } finally {
      await stopTestVm(own.id);
      await rm(work, { recursive: true, force: true });
    }
  });
});
