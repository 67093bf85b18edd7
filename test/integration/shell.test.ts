/**
 * `isobuild shell RUN` end to end: each run record comes from a real failing `isobuild build` (real Packer)
 * against a test VM (sshd in namespaces), the proxy topology (namespaces + isobuild-proxy) or the fake
 * Windows VM; then the built CLI opens the shell with the same work dir and credentials. PTY sessions are
 * driven through real pseudo-terminals: util-linux `script`, and Python's pty module where the test must
 * resize the terminal or type Ctrl-C.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunStatus } from '../../agent/src/run/run-status.js';
import { startTestVm, stopTestVm, type TestVm } from '../../agent/src/testvm/test-vm.js';
import { CLI, finished, runBuildCli, startBuild, writeTemplate } from '../helpers/build-cli.js';
import { startFakeWindowsVm, type FakeWindowsVm } from '../helpers/fake-windows-vm/server.js';
import { shellSnapshot, shellsOpenedSince } from '../helpers/fake-windows-vm/shells-left.js';
import { PROXY_ADDRESS, startTopology, type Topology } from '../helpers/netns-topology.js';
import { startProxyProcess, type ProxyProcess } from '../helpers/proxy-process.js';
import { processResult } from '../helpers/run-process.js';
import { imageTemplate, linuxTemplate, WINDOWS_BUILD_SOURCE } from '../helpers/template-builders.js';

interface ShellRun {
  readonly code: number | null;
  readonly stdout: Buffer;
  readonly stderr: string;
  /** When the first stdout byte arrived and when the process ended, in ms from the start. */
  readonly firstOutputMs?: number;
  readonly endMs: number;
}

interface ShellOptions {
  readonly input?: string;
  readonly env?: Record<string, string>;
  readonly netns?: string;
  readonly signalAfterMs?: number;
}

/** The failing customizer every Linux run record here comes from: the shell is for failed runs. */
const FAILING = linuxTemplate({ customize: [{ type: 'Shell', name: 'breaks', inline: ['exit 3'] }] });

/** `node CLI …` (inside a network namespace when given), with stdin from `input` (else closed). */
function runCli(args: readonly string[], options: ShellOptions = {}): Promise<ShellRun> {
  const [file, prefix] = options.netns
    ? ['ip', ['netns', 'exec', options.netns, process.execPath]]
    : [process.execPath, []];
  const child = spawn(file, [...prefix, CLI, ...args], {
    stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    env: { ...process.env, ...options.env },
  });
  child.stdin?.end(options.input);
  const started = Date.now();
  const stdout: Buffer[] = [];
  let stderr = '';
  let firstOutputMs: number | undefined;
  child.stdout!.on('data', (chunk: Buffer) => {
    firstOutputMs ??= Date.now() - started;
    stdout.push(chunk);
  });
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const signal = options.signalAfterMs;
  const timer = signal === undefined ? undefined : setTimeout(() => child.kill('SIGTERM'), signal);
  const deadline = setTimeout(() => child.kill('SIGKILL'), 50_000);
  return new Promise((done, fail) => {
    child.once('error', fail);
    child.once('close', (code) => {
      clearTimeout(timer);
      clearTimeout(deadline);
      done({
        code,
        stdout: Buffer.concat(stdout),
        stderr,
        ...(firstOutputMs !== undefined ? { firstOutputMs } : {}),
        endMs: Date.now() - started,
      });
    });
  });
}

/** A command line for sh, each word quoted. */
const shellWords = (words: readonly string[]): string =>
  words.map((word) => `'${word.replace(/'/g, `'\\''`)}'`).join(' ');

describe('isobuild shell on a Linux test VM', () => {
  let vm: TestVm;
  let work: string;
  let runId: string;
  const shellArgs = (...more: string[]): string[] => [
    'shell',
    runId,
    '--work-dir',
    work,
    '--ssh-key-file',
    vm.keyFile,
    ...more,
  ];

  beforeAll(async () => {
    vm = await startTestVm();
    work = await mkdtemp(join(tmpdir(), 'isobuild-shell-'));
    const run = await runBuildCli(vm, work, FAILING);
    expect(run.code, run.stderr).toBe(1);
    runId = run.status.runId;
  }, 60_000);
  afterAll(async () => {
    if (vm) await stopTestVm(vm.id);
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('runs one command: stdout and stderr apart, its exit code passed on', async () => {
    const run = await runCli(shellArgs('--', 'sh', '-c', 'echo out; echo err >&2; exit 7'));

    expect(run.stdout.toString()).toBe('out\n');
    expect(run.stderr).toBe('err\n');
    expect(run.code).toBe(7);
  });

  it('passes every argument on as one word, and bytes unchanged', async () => {
    const words = await runCli(shellArgs('--', 'printf', '[%s]', 'a b', "it's", '', '$HOME;*'));
    const bytes = await runCli(shellArgs('--', 'printf', '\\377\\376\\000\\342\\202'));

    expect(words.stdout.toString()).toBe("[a b][it's][][$HOME;*]");
    expect(words.code).toBe(0);
    expect([...bytes.stdout]).toEqual([0xff, 0xfe, 0x00, 0xe2, 0x82]);
  });

  it('streams output as it comes', async () => {
    const run = await runCli(shellArgs('--', 'sh', '-c', 'echo first; sleep 2; echo second'));

    expect(run.stdout.toString()).toBe('first\nsecond\n');
    expect(run.code).toBe(0);
    // The first line was on stdout well before the command ended.
    expect(run.endMs - run.firstOutputMs!).toBeGreaterThan(1_500);
  });

  it('exits 128 + N for a command killed by signal N', async () => {
    const run = await runCli(shellArgs('--', 'sh', '-c', 'kill -TERM $$'));

    expect(run.code).toBe(143);
  });

  it('stops the command on the VM, with its children, when isobuild itself is stopped', async () => {
    // 37.13 marks this test's processes on the shared VM.
    const run = await runCli(shellArgs('--', 'sh', '-c', 'sleep 37.13 & sleep 37.13; wait'), {
      signalAfterMs: 2_000,
    });
    expect(run.code).toBe(143);
    // [p] keeps the check from finding itself; the only session file left is the check's own.
    const left = await runCli(
      shellArgs('--', 'sh', '-c', 'pgrep -f "slee[p] 37.13"; ls /tmp/isobuild-shell-*.pid | wc -l'),
    );
    expect(left.stdout.toString()).toBe('1\n');
  });

  it('looks at the VM while a run is still going (a long step), the run going on unharmed', async () => {
    const live = 'live-run';
    const long = linuxTemplate({
      customize: [{ type: 'Shell', name: 'long', inline: ['echo working > /tmp/live-step', 'sleep 8'] }],
    });
    const build = startBuild(vm, work, await writeTemplate(work, live, long), live);
    const done = finished(build, join(work, live));
    // Once the step has started, inspect what it is doing.
    let seen = '';
    for (let i = 0; i < 40 && seen !== 'working\n'; i++) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      const look = await runCli([
        'shell',
        live,
        '--work-dir',
        work,
        '--ssh-key-file',
        vm.keyFile,
        '--',
        'cat',
        '/tmp/live-step',
      ]);
      seen = look.code === 0 ? look.stdout.toString() : '';
    }
    expect(seen).toBe('working\n');
    const finishedRun = await done;
    expect(finishedRun.code).toBe(0);
    expect(finishedRun.status.runState).toBe('Succeeded');
  }, 60_000);

  it('runs piped stdin in a shell without a PTY, and prints nothing else', async () => {
    const hostname = (await runCli(shellArgs('--', 'hostname'))).stdout.toString();

    const run = await runCli(shellArgs(), { input: 'hostname\ntty || true\nexit 5\n' });

    expect(hostname).toMatch(/^isobuild-vm-\d+\n$/);
    expect(run.stdout.toString()).toBe(`${hostname}not a tty\n`);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(5);
  });

  it('gives a terminal on stdin a PTY of its size, and leaves the terminal as it found it', async () => {
    const before = join(work, 'stty-before');
    const after = join(work, 'stty-after');
    const inner = `stty rows 40 cols 100; stty -g > ${before}; ${shellWords([process.execPath, CLI, ...shellArgs()])}; code=$?; stty -g > ${after}; exit $code`;

    const run = await processResult(
      spawnWithInput('script', ['-qfec', inner, '/dev/null'], 'tty\nstty size\nexit 3\n'),
      { deadlineMs: 30_000 },
    );

    expect(run.stdout).toMatch(/^\/dev\/pts\/\d+\r?$/m);
    expect(run.stdout).toMatch(/^40 100\r?$/m);
    expect(run.code, run.stdout).toBe(3);
    expect(await readFile(after, 'utf8')).toBe(await readFile(before, 'utf8'));
  });

  it('follows terminal resizes, and Ctrl-C reaches the VM instead of ending the session', async () => {
    const driver = join(work, 'drive-pty.py');
    await writeFile(driver, PTY_DRIVER);

    const run = await processResult(
      spawnWithInput('python3', [driver, process.execPath, CLI, ...shellArgs()], ''),
      { deadlineMs: 45_000 },
    );

    expect(run.stdout).toMatch(/^30 90\r?$/m);
    expect(run.stdout).toMatch(/^50 120\r?$/m);
    expect(run.stdout).toMatch(/^alive-42\r?$/m);
    expect(run.stdout).toMatch(/^EXIT 4$/m);
  });

  it('masks the credentials it was given in what the VM sends back', async () => {
    const key = Buffer.from('isobuild-shell-test-account-key').toString('base64');
    const connection = `DefaultEndpointsProtocol=https;AccountName=isobuildshell;AccountKey=${key}`;

    const run = await runCli(shellArgs('--storage-connection-string', connection, '--', 'echo', key));

    expect(run.stdout.toString()).toBe('***\n');
    expect(run.code).toBe(0);
  });

  it('refuses, with exit 2, a run that is not there, a run without a target, and bad arguments', async () => {
    const oldRun = join(work, 'old-run');
    await mkdir(oldRun, { recursive: true });
    const status = JSON.parse(await readFile(join(work, runId, 'status.json'), 'utf8')) as RunStatus;
    const withoutTarget: Record<string, unknown> = { ...status, runId: 'old-run' };
    delete withoutTarget.target;
    await writeFile(join(oldRun, 'status.json'), JSON.stringify(withoutTarget));

    const missing = await runCli(['shell', 'no-such-run', '--work-dir', work, '--', 'true']);
    const old = await runCli(['shell', 'old-run', '--work-dir', work, '--', 'true']);
    const proxy = await runCli(shellArgs('--proxy-host', '10.0.0.9', '--', 'true'));
    const nothing = await runCli(shellArgs('--'));
    const flag = await runCli(shellArgs('--host', '10.0.0.9'));

    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain(`there is no run no-such-run in ${join(work, 'no-such-run')}`);
    expect(old.code).toBe(2);
    expect(old.stderr).toMatch(/run old-run does not record how it reached its build VM/);
    expect(proxy.code).toBe(2);
    expect(proxy.stderr).toMatch(/reached its build VM directly/);
    expect(nothing.code).toBe(2);
    expect(nothing.stderr).toMatch(/nothing follows --/);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toMatch(/--host/);
  });
});

describe('isobuild shell through the proxy topology (aci → proxy → vm)', () => {
  let topo: Topology;
  let proxy: ProxyProcess | undefined;
  let work: string;
  let runId: string;
  const proxyVnet = {
    vnetConfig: {
      subnetId:
        '/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/build',
    },
  };
  const shellArgs = (...more: string[]): string[] => [
    'shell',
    runId,
    '--work-dir',
    work,
    '--ssh-key-file',
    topo.vm.keyFile,
    ...more,
  ];

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'isobuild-shell-proxy-'));
    topo = await startTopology('proxy');
    proxy = await startProxyProcess(
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
    const run = await runBuildCli(
      topo.vm,
      work,
      linuxTemplate({ customize: [{ type: 'Shell', inline: ['exit 3'] }], vmProfile: proxyVnet }),
      ['--proxy-host', PROXY_ADDRESS],
      topo.aci,
    );
    expect(run.code, run.stderr).toBe(1);
    expect(run.status.target).toMatchObject({ topology: 'proxy', proxyHost: PROXY_ADDRESS });
    runId = run.status.runId;
  }, 60_000);
  afterAll(async () => {
    await proxy?.stop();
    await topo?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('reaches the VM through the proxy the run used', async () => {
    const proxied = (): number =>
      proxy!
        .logs()
        .split('\n')
        .filter(
          (line) => line.includes('"msg":"connection closed"') && line.includes('"source":"10.232.0.2"'),
        ).length;
    const before = proxied();

    const run = await runCli(shellArgs('--', 'hostname'), { netns: topo.aci });

    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout.toString()).toMatch(/^isobuild-vm-\d+\n$/);
    // The readiness probe and the session both went through the proxy (the VM is not reachable directly).
    await waitFor(() => proxied() >= before + 2);
  });

  it('names the hop that failed, with exit 5, when the proxy is down', async () => {
    await proxy?.stop();

    const run = await runCli(shellArgs('--ready-timeout', '2s', '--', 'true'), { netns: topo.aci });

    expect(run.code).toBe(5);
    expect(run.stderr).toMatch(
      /isobuild shell: the build VM is not reachable over SSH \(gave up after \d+\.\ds, \d+ attempts?\): proxy 10\.232\.0\.1:60001 (refused the connection|did not answer)/,
    );
  });
});

describe('isobuild shell on the fake Windows VM', () => {
  let vm: FakeWindowsVm;
  let work: string;
  const runId = 'win-shell';
  const shellArgs = (...more: string[]): string[] => ['shell', runId, '--work-dir', work, ...more];
  const password = (): Record<string, string> => ({ ISOBUILD_WINRM_PASSWORD: vm.password });

  beforeAll(async () => {
    vm = await startFakeWindowsVm({ receiveCapMs: 1_000 });
    work = await mkdtemp(join(tmpdir(), 'isobuild-shell-windows-'));
    const template = join(work, 'fails.json');
    const props = { customize: [{ type: 'PowerShell', name: 'breaks', inline: ['exit 7'] }] };
    await writeFile(template, JSON.stringify(imageTemplate(props, WINDOWS_BUILD_SOURCE)));
    const build = await runCli(
      [
        'build',
        template,
        ...['--host', vm.host, '--port', String(vm.port), '--user', vm.user],
        ...['--work-dir', work, '--run-id', runId, '--skip-deprovision', '--local-logs-only'],
      ],
      { env: password() },
    );
    expect(build.code, build.stderr).toBe(1);
  }, 90_000);
  afterAll(async () => {
    await vm?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('runs one PowerShell command over WinRM: output, readable errors, exit code', async () => {
    const before = shellSnapshot(vm);
    const hi = await runCli(shellArgs('--', 'Write-Output', 'hi'), { env: password() });
    const failing = await runCli(shellArgs('--', 'Write-Error boom; exit 9'), { env: password() });

    expect(hi.stdout.toString()).toBe('hi\r\n');
    expect(hi.code, hi.stderr).toBe(0);
    expect(failing.stderr).toBe('boom\n');
    expect(failing.code).toBe(9);
    expect(await shellsOpenedSince(vm, before), vm.describeOpenShells()).toEqual([]);
  });

  it('runs each line of stdin at its prompt until exit', async () => {
    const before = shellSnapshot(vm);
    const input = 'Write-Output one\n\nWrite-Output two\nexit 4\nWrite-Output never\n';

    const run = await runCli(shellArgs(), { env: password(), input });
    const eof = await runCli(shellArgs(), { env: password(), input: 'Write-Output last; exit 6\n' });

    expect(run.stdout.toString()).toBe('one\r\ntwo\r\n');
    expect(run.stderr.split(`PS ${vm.host}> `)).toHaveLength(5);
    expect(run.code).toBe(4);
    // At the end of input, the session ends with the last command's exit code.
    expect(eof.stdout.toString()).toBe('last\r\n');
    expect(eof.code).toBe(6);
    expect(await shellsOpenedSince(vm, before), vm.describeOpenShells()).toEqual([]);
  });

  it('stops the running command and deletes its WinRM shell on SIGTERM', async () => {
    const before = shellSnapshot(vm);
    const run = await runCli(shellArgs('--', 'Start-Sleep 20'), { env: password(), signalAfterMs: 3_000 });

    expect(run.code).toBe(143);
    expect(run.endMs).toBeLessThan(15_000);
    expect(await shellsOpenedSince(vm, before), vm.describeOpenShells()).toEqual([]);
  });

  it('needs the password, as build does (exit 2)', async () => {
    const run = await runCli(shellArgs('--', 'Write-Output', 'hi'));

    expect(run.code).toBe(2);
    expect(run.stderr).toContain('ISOBUILD_WINRM_PASSWORD');
  });
});

async function waitFor(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((done) => setTimeout(done, 100));
  }
}

function spawnWithInput(file: string, args: readonly string[], input: string) {
  const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdin.end(input);
  return child;
}

/**
 * Runs argv[1:] on a new pseudo-terminal of 30×90 and types at it: `stty size`, a resize to 50×120 (the
 * kernel sends SIGWINCH), `stty size`, `sleep 30` cut short by Ctrl-C, a command proving the session lives
 * on, `exit 4`. Prints what the terminal showed, then "EXIT <code>".
 */
const PTY_DRIVER = String.raw`
import os, pty, sys, time, fcntl, termios, struct, select

def winsize(fd, rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack('HHHH', rows, cols, 0, 0))

pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
winsize(fd, 30, 90)
out = b''

def wait_for(needle, timeout=15):
    global out
    end = time.time() + timeout
    while needle not in out and time.time() < end:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                out += os.read(fd, 65536)
            except OSError:
                break

wait_for(b'$ ')
os.write(fd, b'stty size\n'); wait_for(b'30 90\r')
winsize(fd, 50, 120); time.sleep(0.5)
os.write(fd, b'stty size\n'); wait_for(b'50 120\r')
os.write(fd, b'sleep 30\n'); time.sleep(1)
os.write(fd, b'\x03'); time.sleep(0.5)
os.write(fd, b'echo alive-$((6*7))\n'); wait_for(b'alive-42\r')
os.write(fd, b'exit 4\n'); wait_for(b'logout')
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode('utf8', 'replace'))
sys.stdout.write('\nEXIT %d\n' % os.waitstatus_to_exitcode(status))
`;
