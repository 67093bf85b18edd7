// WinRM benchmark (issue 6), side by side in one run against the same fake Windows VM over HTTPS:
// per-command round trip (Create shell, Command, Receive, Signal, Delete) of isobuild's WinRM client
// against Debian's python3-winrm, with Basic and with NTLM, 60 commands each after 10 warm-up commands,
// interleaved in rounds. The fake runs in a process of its own and runs each command through /bin/sh, the
// same for both clients.
// Usage: npx vitest run --config bench/vitest.config.ts bench/winrm-bench.vitest.ts
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cpus } from 'node:os';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { it } from 'vitest';
import { Secret } from '../agent/src/secret.js';
import { WinRmClient } from '../agent/src/winrm/client.js';

/** The fake Windows VM in a process of its own (bench/fake-windows-vm.hold.ts), as a real VM would be. */
async function startFakeVmProcess() {
  const dir = mkdtempSync(join(tmpdir(), 'isobuild-winrm-bench-'));
  const info = join(dir, 'vm.json');
  const stop = join(dir, 'stop');
  const child = spawn('npx', ['vitest', 'run', '--config', 'bench/fake-vm.config.ts'], {
    stdio: 'ignore',
    env: { ...process.env, BENCH_FAKE_VM_INFO: info, BENCH_FAKE_VM_STOP: stop },
  });
  for (let i = 0; i < 300 && !existsSync(info); i++) await new Promise((resolve) => setTimeout(resolve, 100));
  const vm = JSON.parse(readFileSync(info, 'utf8')) as {
    host: string;
    port: number;
    user: string;
    password: string;
    certPem: string;
    certFile: string;
  };
  return {
    ...vm,
    close: async () => {
      writeFileSync(stop, '');
      await new Promise((resolve) => child.once('exit', resolve));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const ROUNDS = 3;
const PER_ROUND = 20;
const WARMUP = 10;
const median = (values: number[]): number =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const p90 = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length * 0.9)]!;

it('measures WinRM round trips: isobuild vs python3-winrm', async () => {
  const vm = await startFakeVmProcess();
  try {
    const ours = (auth: 'basic' | 'ntlm') =>
      new WinRmClient({
        host: vm.host,
        port: vm.port,
        servername: 'fake-windows-vm',
        tls: { kind: 'ca', ca: vm.certPem },
        auth: { kind: auth, user: vm.user, password: new Secret(vm.password) },
      });
    /** Wall time per command, and the client process's CPU time per command (the fake runs elsewhere). */
    async function isobuild(client: WinRmClient, count: number): Promise<{ times: number[]; cpu: number }> {
      const times: number[] = [];
      const cpuBefore = process.cpuUsage();
      for (let i = 0; i < count; i++) {
        const start = performance.now();
        const result = await client.run('echo hi');
        if (result.stdout !== 'hi\n') throw new Error(`unexpected output ${result.stdout}`);
        times.push(performance.now() - start);
      }
      const cpu = process.cpuUsage(cpuBefore);
      return { times, cpu: (cpu.user + cpu.system) / 1000 / count };
    }
    async function pywinrm(
      auth: 'basic' | 'ntlm',
      count: number,
      warmup: number,
    ): Promise<{ times: number[]; cpu: number }> {
      const script = `
import time, json, winrm
s = winrm.Session('https://${vm.host}:${vm.port}/wsman', auth=(${JSON.stringify(vm.user)}, ${JSON.stringify(vm.password)}), transport='${auth}', server_cert_validation='validate', ca_trust_path=${JSON.stringify(vm.certFile)})
times = []
cpu = 0.0
for i in range(${warmup + count}):
    t = time.perf_counter()
    c = time.process_time()
    r = s.run_cmd('echo hi')
    assert r.std_out == b'hi\\n', r.std_out
    if i >= ${warmup}:
        times.append((time.perf_counter() - t) * 1000)
        cpu += (time.process_time() - c) * 1000
print(json.dumps({'times': times, 'cpu': cpu / ${count}}))`;
      const { stdout } = await promisify(execFile)('/usr/bin/python3', ['-c', script], {
        env: { PATH: process.env.PATH ?? '' },
      });
      return JSON.parse(stdout) as { times: number[]; cpu: number };
    }

    const results: Record<string, number[]> = {};
    const cpu: Record<string, number[]> = {};
    for (const auth of ['basic', 'ntlm'] as const) {
      const client = ours(auth);
      await isobuild(client, WARMUP);
      for (const name of [`isobuild ${auth}`, `pywinrm ${auth}`]) {
        results[name] = [];
        cpu[name] = [];
      }
      for (let round = 0; round < ROUNDS; round++) {
        const ours = await isobuild(client, PER_ROUND);
        results[`isobuild ${auth}`]!.push(...ours.times);
        cpu[`isobuild ${auth}`]!.push(ours.cpu);
        const theirs = await pywinrm(auth, PER_ROUND, round === 0 ? WARMUP : 2);
        results[`pywinrm ${auth}`]!.push(...theirs.times);
        cpu[`pywinrm ${auth}`]!.push(theirs.cpu);
      }
      client.close();
    }

    const lines = [
      `Machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}`,
      '',
      `| client | median per command | p90 | client CPU per command (median of ${ROUNDS} rounds) | commands |`,
      '|---|---|---|---|---|',
      ...Object.entries(results).map(
        ([name, times]) =>
          `| ${name} | ${median(times).toFixed(1)} ms | ${p90(times).toFixed(1)} ms | ${median(cpu[name]!).toFixed(2)} ms | ${times.length} |`,
      ),
      '',
      ...(['basic', 'ntlm'] as const).map(
        (auth) =>
          `${auth}: isobuild / pywinrm = ${(median(results[`isobuild ${auth}`]!) / median(results[`pywinrm ${auth}`]!)).toFixed(2)}× per command (target ≤ 0.5×), ${(median(cpu[`isobuild ${auth}`]!) / median(cpu[`pywinrm ${auth}`]!)).toFixed(2)}× client CPU.`,
      ),
    ];
    console.log(lines.join('\n'));
  } finally {
    await vm.close();
  }
});
