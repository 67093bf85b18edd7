/**
 * A build through AIB's proxy topology on loopback: Packer → relay → isobuild-proxy (:60001) → test VM :22.
 * Killing the proxy mid-build fails the build with a message that names the proxy hop; after a restart the
 * next build succeeds. (The three-namespace topologies come with the network work.)
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestVm, stopTestVm, type TestVm } from '../../agent/src/testvm/test-vm.js';
import { finished, runBuildCli, startBuild, writeTemplate } from '../helpers/build-cli.js';
import { proxyArgs, startProxyProcess, type ProxyProcess } from '../helpers/proxy-process.js';
import { linuxTemplate } from '../helpers/template-builders.js';

let vm: TestVm;
let work: string;
const viaProxy = ['--topology', 'proxy', '--proxy-host', '127.0.0.3'];
const vmProxyArgs = (target: string): string[] => proxyArgs({ listen: '127.0.0.3', sshPort: 60001, target });

beforeAll(async () => {
  vm = await startTestVm();
  work = await mkdtemp(join(tmpdir(), 'isobuild-build-proxy-'));
});
afterAll(async () => {
  await stopTestVm(vm.id);
  await rm(work, { recursive: true, force: true });
});

describe('isobuild build through isobuild-proxy', () => {
  it('builds through the proxy, fails naming the proxy when it dies, and builds again after a restart', async () => {
    let proxy: ProxyProcess = await startProxyProcess(vmProxyArgs(vm.address));
    try {
      const first = await runBuildCli(
        vm,
        work,
        linuxTemplate({ customize: [{ type: 'Shell', name: 'hello', inline: ['echo via proxy'] }] }),
        viaProxy,
      );
      expect(first.code, first.stderr).toBe(0);
      expect(proxy.logs()).toContain('"msg":"connection closed"');

      const runId = `proxy-dies-${process.pid}`;
      const templateFile = await writeTemplate(
        work,
        runId,
        linuxTemplate({ customize: [{ type: 'Shell', name: 'long', inline: ['sleep 30'] }] }),
      );
      const child = startBuild(vm, work, templateFile, runId, viaProxy);
      const done = finished(child, join(work, runId));
      await new Promise((resolve) => setTimeout(resolve, 2500));
      await proxy.stop();
      const broken = await done;
      expect(broken.code).toBe(1);
      expect(broken.status.message).toMatch(
        /customizer 1 Shell "long" failed: .*The network path failed: proxy 127\.0\.0\.3:60001/,
      );

      proxy = await startProxyProcess(vmProxyArgs(vm.address));
      const again = await runBuildCli(
        vm,
        work,
        linuxTemplate({ customize: [{ type: 'Shell', inline: ['true'] }] }),
        viaProxy,
      );
      expect(again.code, again.stderr).toBe(0);
    } finally {
      await proxy.stop();
    }
  });

  it('asks for a proxy when vnetConfig selects the proxy topology', async () => {
    const subnet =
      '/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/s';
    const template = linuxTemplate({
      customize: [{ type: 'Shell', inline: ['true'] }],
      vmProfile: { vnetConfig: { subnetId: subnet } },
    });

    const run = await runBuildCli(vm, work, template);

    // Found with the other inputs, before anything starts: no run directory, nothing downloaded.
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('pass --proxy-host ADDRESS');
    expect(existsSync(run.runDir)).toBe(false);
  });
});
