/** `isobuild build` end to end: real Packer, a real test VM (sshd in namespaces), real HTTP artifacts. */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestVm, stopTestVm, type TestVm } from '../../agent/src/testvm/test-vm.js';
import { CLI, finished, runBuildCli, startBuild, writeTemplate } from '../helpers/build-cli.js';
import { startHttpServer, type TestHttpServer } from '../helpers/http-server.js';
import { sshExec } from '../helpers/ssh.js';
import { linuxTemplate } from '../helpers/template-builders.js';

const SCRIPT =
  '#!/bin/bash -e\n# runs as root on AIB: no sudo needed\necho "script uid $(id -u)"\necho from-script > /etc/isobuild-from-script\n';
const PAGE = '<html>isobuild</html>\n';
const sha = (text: string): string => createHash('sha256').update(text).digest('hex');

let vm: TestVm;
let work: string;
let http: TestHttpServer;

beforeAll(async () => {
  vm = await startTestVm();
  work = await mkdtemp(join(tmpdir(), 'isobuild-build-'));
  http = await startHttpServer((request, response) => {
    response.end(request.url === '/page.html' ? PAGE : SCRIPT);
  });
});
afterAll(async () => {
  await http.close();
  await stopTestVm(vm.id);
  await rm(work, { recursive: true, force: true });
});

describe('isobuild build', () => {
  it('runs scripts as root and inline commands as the build user, uploads files, and reports each step', async () => {
    const template = linuxTemplate({
      customize: [
        { type: 'Shell', name: 'script', scriptUri: `${http.url}/setup.sh`, sha256Checksum: sha(SCRIPT) },
        {
          type: 'Shell',
          name: 'inline',
          inline: ['echo "inline uid $(id -u)"', 'sudo cp /etc/isobuild-from-script /tmp/copied'],
        },
        {
          type: 'File',
          name: 'page',
          sourceUri: `${http.url}/page.html`,
          sha256Checksum: sha(PAGE),
          destination: '/tmp/page.html',
        },
      ],
    });

    const run = await runBuildCli(vm, work, template);

    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^Succeeded: the build succeeded/m);
    expect(run.stderr).toMatch(/^\[1\/3\] Shell "script" \d+\.\ds ✓$/m);
    expect(run.stderr).toMatch(/^\[3\/3\] File "page" \d+\.\ds ✓$/m);
    expect(run.status).toMatchObject({ runState: 'Succeeded', runSubState: 'Distributing' });
    expect(run.status.customizers.map((c) => c.outcome)).toEqual(['succeeded', 'succeeded', 'succeeded']);
    expect(
      run.status.customizers.every((c) => typeof c.durationMs === 'number' && c.startTime && c.endTime),
    ).toBe(true);
    expect(run.status.distribute[0]).toMatchObject({ runOutputName: 'vhd', outcome: 'skipped' });
    const log = await readFile(join(run.runDir, 'customization.log'), 'utf8');
    expect(log).toMatch(/PACKER OUT\s+null\.build_vm: script uid 0$/m);
    expect(log).toMatch(/PACKER OUT\s+null\.build_vm: inline uid [1-9]\d*$/m);
    expect(log).toContain('(telemetry) Starting provisioner shell');
    expect((await sshExec(vm, 'cat /tmp/page.html /tmp/copied')).stdout).toBe(`${PAGE}from-script\n`);
  });

  it('keeps what customizers write to /etc, /usr and /root inside the VM', async () => {
    const marker = `isobuild-build-probe-${process.pid}`;
    const paths = [`/etc/${marker}`, `/usr/local/${marker}`, `/root/${marker}`];
    const template = linuxTemplate({
      customize: [
        { type: 'Shell', name: 'writes', inline: paths.map((p) => `echo changed | sudo tee ${p}`) },
      ],
    });

    const run = await runBuildCli(vm, work, template);

    expect(run.code, run.stderr).toBe(0);
    expect((await sshExec(vm, `sudo cat ${paths.join(' ')}`)).stdout).toBe('changed\n'.repeat(3));
    for (const path of paths) expect(existsSync(path), path).toBe(false);
  });

  it('validates the source image alone with sourceValidationOnly', async () => {
    const template = linuxTemplate({
      validate: {
        sourceValidationOnly: true,
        inVMValidations: [{ type: 'Shell', name: 'source-ok', inline: ['test -x /bin/sh'] }],
      },
    });

    const run = await runBuildCli(vm, work, template);

    expect(run.code, run.stderr).toBe(0);
    expect(run.status.runState).toBe('Succeeded');
    expect(run.status.validators[0]?.outcome).toBe('succeeded');
  });

  it('reports Failed after a failed validation even with continueDistributeOnFailure', async () => {
    const template = linuxTemplate({
      customize: [{ type: 'Shell', inline: ['true'] }],
      validate: {
        continueDistributeOnFailure: true,
        inVMValidations: [{ type: 'Shell', name: 'check', inline: ['exit 4'] }],
      },
    });

    const run = await runBuildCli(vm, work, template);

    expect(run.code).toBe(1);
    expect(run.status.runState).toBe('Failed');
    expect(run.status.runSubState).toBe('Distributing');
  });

  it('names the failing customizer, its exit code and its last output lines', async () => {
    const template = linuxTemplate({
      customize: [
        { type: 'Shell', name: 'breaks', inline: ['echo about-to-fail', 'exit 7'] },
        { type: 'Shell', name: 'never', inline: ['echo never'] },
      ],
    });

    const run = await runBuildCli(vm, work, template);

    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/Failed: customizer 1 Shell "breaks" failed: .*exit status: 7/);
    expect(run.stdout).toContain('customization.log');
    expect(run.stderr).toMatch(/Last \d+ line\(s\) of Shell "breaks":\n(.*\n)*\s+\| about-to-fail/);
    expect(run.status.runState).toBe('Failed');
    expect(run.status.customizers.map((c) => c.outcome)).toEqual(['failed', 'pending']);
  });

  it('numbers steps from 1 everywhere: validate, progress, status and the failure message', async () => {
    const template = linuxTemplate({
      customize: [
        { type: 'Shell', name: 'first', inline: ['true'] },
        { type: 'Shell', inline: ['exit 4'] },
      ],
    });
    const file = join(work, 'numbering.json');
    await writeFile(file, JSON.stringify(template));

    const validate = await execa(process.execPath, [CLI, 'validate', file], { reject: false });
    const run = await runBuildCli(vm, work, template);

    expect(validate.stdout).toMatch(/^\s+2\. Shell\s+\(unnamed\)/m);
    expect(run.stderr).toMatch(/^\[2\/2\] Shell "Shell #2" /m);
    expect(run.stdout).toMatch(/Failed: customizer 2 Shell "Shell #2" failed/);
    expect(run.status.customizers[1]?.name).toBe('Shell #2');
  });

  it('delivers inline commands with hostile characters to the VM byte for byte', async () => {
    const strings = [
      'quote " and \' and `tick`',
      'back\\slash \\n $HOME ${HOME} $${HOME} %{x} %%{y}',
      'go {{ .Path }} {{"{{"}}',
      'tab\tand\u00e9 中文 🎉 cafe\u0301',
      '<<EOF\nEOF\n',
    ];
    const inline = strings.map((s, i) => `cat > /tmp/hostile-${i} <<'ISOBUILD_END'\n${s}\nISOBUILD_END`);

    const run = await runBuildCli(
      vm,
      work,
      linuxTemplate({ customize: [{ type: 'Shell', name: 'hostile', inline }] }),
    );

    expect(run.code, run.stderr).toBe(0);
    for (const [i, s] of strings.entries()) {
      const back = await sshExec(vm, `base64 -w0 /tmp/hostile-${i}`);
      expect(Buffer.from(back.stdout, 'base64').toString('utf8')).toBe(`${s}\n`);
    }
  });

  it('runs nothing on the VM when an artifact checksum does not match', async () => {
    const template = linuxTemplate({
      customize: [
        { type: 'Shell', name: 'first', inline: ['touch /tmp/should-not-exist'] },
        { type: 'Shell', name: 'script', scriptUri: `${http.url}/setup.sh`, sha256Checksum: 'f'.repeat(64) },
      ],
    });

    const run = await runBuildCli(vm, work, template);

    expect(run.code).toBe(3);
    expect(run.status.runState).toBe('Failed');
    expect(run.status.message).toContain(sha(SCRIPT));
    expect((await sshExec(vm, 'test -e /tmp/should-not-exist; echo $?')).stdout.trim()).toBe('1');
  });

  it.each([
    ['cleanup', /validator 1 Shell "check" failed/],
    ['abort', /left as it is for inspection/],
  ])('fails the run when validation fails (onValidationError %s)', async (mode, message) => {
    const template = linuxTemplate({
      customize: [{ type: 'Shell', inline: ['true'] }],
      validate: { inVMValidations: [{ type: 'Shell', name: 'check', inline: ['echo checking', 'exit 3'] }] },
      errorHandling: { onCustomizerError: 'cleanup', onValidationError: mode },
    });

    const run = await runBuildCli(vm, work, template);

    expect(run.code).toBe(1);
    expect(run.status.runState).toBe('Failed');
    expect(run.status.message).toMatch(message);
    expect(run.status.validators[0]?.outcome).toBe('failed');
    expect(await readFile(join(run.runDir, 'validation.log'), 'utf8')).toContain('checking');
  });

  it('stops at the build timeout, names the running customizer, and leaves nothing running on the VM', async () => {
    const template = linuxTemplate({
      customize: [{ type: 'Shell', name: 'hangs', inline: ['echo waiting', 'sleep 300'] }],
    });

    const run = await runBuildCli(vm, work, template, ['--build-timeout', '4s']);

    expect(run.code).toBe(124);
    expect(run.status.message).toMatch(
      /timed out after 4\.0s .*customizer 1 Shell "hangs" had been running for/,
    );
    expect(run.status.customizers[0]?.outcome).toBe('timedOut');
    expect((await sshExec(vm, 'pgrep -x sleep || echo none')).stdout.trim()).toBe('none');
  });

  it('cancels cleanly on SIGTERM: Canceled status, exit 143, no remote process left', async () => {
    const runId = `cancel-${process.pid}`;
    const templateFile = await writeTemplate(
      work,
      runId,
      linuxTemplate({ customize: [{ type: 'Shell', name: 'long', inline: ['sleep 300'] }] }),
    );
    const child = startBuild(vm, work, templateFile, runId);
    const done = finished(child, join(work, runId));
    await waitFor(async () =>
      (await readFile(join(work, runId, 'status.json'), 'utf8').catch(() => '')).includes(
        '"outcome": "running"',
      ),
    );

    child.kill('SIGTERM');
    const run = await done;

    expect(run.code).toBe(143);
    expect(run.status.runState).toBe('Canceled');
    expect(run.status.customizers[0]?.outcome).toBe('canceled');
    expect((await sshExec(vm, 'pgrep -x sleep || echo none')).stdout.trim()).toBe('none');
  });
});

describe('isobuild build readiness errors', () => {
  const template = linuxTemplate({ customize: [{ type: 'Shell', inline: ['true'] }] });

  it('says the port refused the connection', async () => {
    const run = await runBuildCli(vm, work, template, ['--port', '2222', '--ready-timeout', '2s']);

    expect(run.code).toBe(5);
    expect(run.status.message).toContain(`${vm.address}:2222 refused the connection`);
  });

  it('says the login was rejected, at once, for a wrong key', async () => {
    const keyFile = join(work, 'wrong_key');
    await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', keyFile]);

    const run = await runBuildCli(vm, work, template, ['--ssh-key-file', keyFile, '--ready-timeout', '60s']);

    expect(run.code).toBe(5);
    expect(run.status.message).toContain(`rejected the login of user "${vm.user}"`);
    expect(Date.parse(run.status.endTime ?? '') - Date.parse(run.status.startTime)).toBeLessThan(30_000);
  });

  it('says the server is not speaking SSH', async () => {
    const silent: Server = createServer(() => undefined);
    await new Promise<void>((done) => silent.listen(0, '127.0.0.1', done));
    const port = (silent.address() as { port: number }).port;

    const run = await runBuildCli({ ...vm, address: '127.0.0.1' }, work, template, [
      '--port',
      String(port),
      '--ready-timeout',
      '3s',
    ]);
    silent.close();

    expect(run.code).toBe(5);
    expect(run.status.message).toMatch(
      /127\.0\.0\.1:\d+ accepted the TCP connection but did not complete an SSH handshake/,
    );
  });

  it('says the address is unreachable', async () => {
    // A local "unreachable" route: the kernel answers at once and no packet leaves this machine.
    await execa('ip', ['route', 'add', 'unreachable', '10.231.254.0/24']);
    try {
      const run = await runBuildCli({ ...vm, address: '10.231.254.2' }, work, template, [
        '--ready-timeout',
        '3s',
      ]);

      expect(run.code).toBe(5);
      expect(run.status.message).toContain('10.231.254.2:22 is unreachable');
    } finally {
      await execa('ip', ['route', 'del', 'unreachable', '10.231.254.0/24']);
    }
  });
});

async function waitFor(check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((done) => setTimeout(done, 100));
  }
}
