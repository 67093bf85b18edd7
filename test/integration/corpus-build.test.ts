/**
 * The Linux quickstart templates of the public corpus build on the test VM, with their artifact URLs
 * rewritten to local stand-ins that behave like the originals (test/fixtures/corpus-mirror), and the
 * same root/user split AIB has: customizeScript.sh writes /etc/motd without sudo, inline commands use sudo.
 */
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { startTestVm, stopTestVm, type TestVm } from '../../agent/src/testvm/test-vm.js';
import { loadTemplate } from '../../agent/src/template/load-template.js';
import { CORPUS, MIRROR, PARAMETERS, UPSTREAM, fillTemplate } from '../helpers/aib-corpus.js';
import { runBuildCli } from '../helpers/build-cli.js';
import { proxyArgs, startProxyProcess } from '../helpers/proxy-process.js';
import { sshExec } from '../helpers/ssh.js';

let work: string;
const files = (await readdir(CORPUS)).filter((f) => f.endsWith('.json')).sort();

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'isobuild-corpus-build-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('Linux quickstart templates on the test VM', () => {
  it.each(files)('%s builds (or is a Windows template)', async (file) => {
    const filled = join(work, file);
    await writeFile(filled, await fillTemplate(file));
    const parameters = PARAMETERS[file] ?? PARAMETERS.default!;
    const { template } = await loadTemplate(filled, { parameters: new Map(Object.entries(parameters)) });
    if (template.os !== 'linux') return; // Windows builds come with the WinRM work

    const args = [
      '--rewrite-uri',
      `${UPSTREAM}=${MIRROR}/`,
      ...Object.entries(parameters).flatMap(([k, v]) => ['--param', `${k}=${v}`]),
    ];
    // Like AIB, every build gets a fresh VM: the quickstarts' `sudo mkdir /buildArtifacts` fails on a used one.
    const vm: TestVm = await startTestVm();
    onTestFinished(() => stopTestVm(vm.id));
    if (template.topology === 'proxy') {
      // The existing-VNet quickstarts select AIB's proxy topology: put an isobuild-proxy in front of the VM.
      const proxy = await startProxyProcess(
        proxyArgs({ listen: '127.0.0.2', sshPort: 60001, target: vm.address }),
      );
      onTestFinished(() => proxy.stop());
      args.push('--proxy-host', '127.0.0.2');
    }
    const run = await runBuildCli(vm, work, await fillTemplate(file), args);

    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0);
    expect(run.status.runState).toBe('Succeeded');
    if (
      template.customize.some((s) => s.type === 'Shell' && (s.scriptUri ?? '').endsWith('customizeScript.sh'))
    ) {
      expect((await sshExec(vm, 'cat /etc/motd')).stdout).toContain('AZURE VM IMAGE BUILDER Custom Image');
    }
  });
});
