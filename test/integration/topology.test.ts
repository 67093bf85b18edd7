/**
 * AIB's topologies in network namespaces (aib-reference §4), with real isobuild, Packer, isobuild-proxy
 * and a test VM, each in its own namespace:
 *  - proxy topology: the agent cannot reach the VM directly, builds through the proxy, fails naming the
 *    proxy when the proxy dies mid-build, and builds again once it is back;
 *  - ACI-subnet topology: the agent shares the VM's network and builds directly;
 *  - a crashed run's namespaces, links and VM are removed by the next run.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listTestVms } from '../../agent/src/testvm/test-vm.js';
import { finished, runBuildCli, startBuild, writeTemplate } from '../helpers/build-cli.js';
import {
  cleanupStaleTopologies,
  PROXY_ADDRESS,
  startTopology,
  topologyNamespaces,
  type Topology,
} from '../helpers/netns-topology.js';
import { startProxyProcess, type ProxyProcess } from '../helpers/proxy-process.js';
import { linuxTemplate } from '../helpers/template-builders.js';

const SUBNETS =
  '/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets';
/** vnetConfig with subnetId only: AIB puts a proxy VM in front of the build VM. */
const proxyVnet = { vnetConfig: { subnetId: `${SUBNETS}/build` } };
/** subnetId and containerInstanceSubnetId: the container reaches the build VM directly. */
const aciSubnetVnet = {
  vnetConfig: { subnetId: `${SUBNETS}/build`, containerInstanceSubnetId: `${SUBNETS}/aci` },
};

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'isobuild-topology-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('proxy topology: aci → proxy → vm', () => {
  let topo: Topology;
  let proxy: ProxyProcess | undefined;
  const startProxy = async (): Promise<ProxyProcess> =>
    startProxyProcess(
      [
        '--listen',
        PROXY_ADDRESS,
        '--winrm-port',
        '0',
        '--health-port=-1',
        '--target',
        topo.vm.address,
        '--allow',
        '10.232.0.0/24',
      ],
      topo.proxy,
    );
  beforeAll(async () => {
    topo = await startTopology('proxy');
  });
  afterAll(async () => {
    await proxy?.stop();
    await topo?.stop();
  });

  it('cannot reach the build VM directly: the direct build fails naming the build VM hop', async () => {
    const run = await runBuildCli(
      topo.vm,
      work,
      linuxTemplate({ customize: [{ type: 'Shell', inline: ['true'] }], vmProfile: proxyVnet }),
      ['--topology', 'direct', '--ready-timeout', '3s'],
      topo.aci,
    );

    expect(run.code).toBe(5);
    // The proxy namespace drops what it will not forward, as an NSG would: no reply at all.
    // The message says how long isobuild tried in all (the 3 s ready timeout), not only the last attempt.
    expect(run.status.message).toMatch(
      new RegExp(
        `the build VM is not reachable over SSH \\(gave up after [3-9]\\.\\ds, \\d+ attempts?\\): build VM ${topo.vm.address.replaceAll('.', '\\.')}:22 did not answer \\(no reply to the last connection attempt within`,
      ),
    );
  });

  it('builds through isobuild-proxy as vnetConfig says', async () => {
    proxy = await startProxy();
    const run = await runBuildCli(
      topo.vm,
      work,
      linuxTemplate({
        customize: [{ type: 'Shell', name: 'where', inline: ['hostname > /tmp/built-on'] }],
        vmProfile: proxyVnet,
      }),
      ['--proxy-host', PROXY_ADDRESS],
      topo.aci,
    );

    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toContain(`proxy ${PROXY_ADDRESS}:60001 accepts SSH`);
    // The proxy saw the connections come from the agent's namespace.
    const closed = proxy
      .logs()
      .split('\n')
      .filter((line) => line.includes('"msg":"connection closed"'));
    expect(closed.length).toBeGreaterThan(0);
    for (const line of closed) expect(line).toContain('"source":"10.232.0.2"');
  });

  it('fails naming the proxy when the proxy dies mid-build, and builds again after it restarts', async () => {
    proxy ??= await startProxy();
    const runId = `topology-proxy-dies-${process.pid}`;
    const templateFile = await writeTemplate(
      work,
      runId,
      linuxTemplate({
        customize: [{ type: 'Shell', name: 'long', inline: ['sleep 30'] }],
        vmProfile: proxyVnet,
      }),
    );
    const child = startBuild(topo.vm, work, templateFile, runId, ['--proxy-host', PROXY_ADDRESS], topo.aci);
    const done = finished(child, join(work, runId));
    // The readiness probe's connection closes before Packer starts; then let "sleep 30" begin.
    await waitFor(() => proxy?.logs().includes('"msg":"connection closed"') ?? false, 15_000);
    await new Promise((resolve) => setTimeout(resolve, 2000));
    await proxy.stop();

    const broken = await done;
    expect(broken.code).toBe(1);
    expect(broken.status.message).toMatch(
      /customizer 1 Shell "long" failed: .*The network path failed: proxy 10\.232\.0\.1:60001/,
    );

    proxy = await startProxy();
    const again = await runBuildCli(
      topo.vm,
      work,
      linuxTemplate({ customize: [{ type: 'Shell', inline: ['true'] }], vmProfile: proxyVnet }),
      ['--proxy-host', PROXY_ADDRESS],
      topo.aci,
    );
    expect(again.code, again.stderr).toBe(0);
  });
});

describe('ACI-subnet topology: aci → vm', () => {
  let topo: Topology;
  beforeAll(async () => {
    topo = await startTopology('aci-subnet');
  });
  afterAll(async () => {
    await topo?.stop();
  });

  it('builds directly from the container subnet, with no proxy', async () => {
    const run = await runBuildCli(
      topo.vm,
      work,
      linuxTemplate({ customize: [{ type: 'Shell', inline: ['true'] }], vmProfile: aciSubnetVnet }),
      [],
      topo.aci,
    );

    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toContain(`build VM ${topo.vm.address}:22 accepts SSH`);
  });
});

describe('leftovers of a crashed run', () => {
  it('removes namespaces, links and the test VM of a topology whose owner died', async () => {
    const owner = spawn('sleep', ['60']);
    const crashed = await startTopology('proxy', { ownerPid: owner.pid });
    owner.kill('SIGKILL');
    await new Promise((resolve) => owner.once('exit', resolve));

    const removed = await cleanupStaleTopologies();

    expect(removed.sort()).toEqual([crashed.aci, crashed.proxy].sort());
    expect(await topologyNamespaces()).not.toContain(crashed.aci);
    expect((await listTestVms()).map((vm) => vm.id)).not.toContain(crashed.vm.id);
    const netns = await execa('ip', ['netns', 'list']);
    expect(netns.stdout).not.toContain(crashed.vm.name + ' ');
    expect(netns.stdout.split('\n').map((l) => l.split(' ')[0])).not.toContain(crashed.vm.name);
  });
});

async function waitFor(check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
