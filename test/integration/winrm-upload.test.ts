/**
 * isobuild's WinRM upload against the fake Windows VM over HTTPS: files byte-exact at their destination
 * (streamed through a writer's stdin, hashed on the VM), envelopes sized from the server's MaxEnvelopeSizekb
 * or shrunk after its HTTP 413, a transfer the VM garbled rejected by name, a writer that fails saying why,
 * and a cancel that leaves no shell, no command and no partial file behind.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Secret } from '../../agent/src/secret.js';
import { WinRmClient } from '../../agent/src/winrm/client.js';
import type { WinRmTarget } from '../../agent/src/winrm/transport.js';
import { uploadFile, UploadError, type UploadProgress } from '../../agent/src/winrm/upload.js';
import {
  NO_COSTS,
  startFakeWindowsVm,
  WINDOWS_COSTS,
  type FakeWindowsVm,
  type FakeWindowsVmOptions,
} from '../helpers/fake-windows-vm/server.js';

let work: string;
let big: string;
let small: string;
let vm: FakeWindowsVm;
const others: FakeWindowsVm[] = [];

async function randomFile(name: string, size: number): Promise<string> {
  const file = join(work, name);
  const handle = await open(file, 'w');
  for (let done = 0; done < size; done += 8 << 20)
    await handle.write(randomBytes(Math.min(8 << 20, size - done)));
  await handle.close();
  return file;
}

const sha256 = async (file: string): Promise<string> =>
  createHash('sha256')
    .update(await readFile(file))
    .digest('hex');

function target(server: FakeWindowsVm, auth: 'basic' | 'ntlm' = 'basic'): WinRmTarget {
  return {
    host: server.host,
    port: server.port,
    servername: 'fake-windows-vm',
    tls: { kind: 'ca', ca: server.certPem },
    auth: { kind: auth, user: server.user, password: new Secret(server.password) },
  };
}

async function anotherVm(options: FakeWindowsVmOptions): Promise<FakeWindowsVm> {
  const server = await startFakeWindowsVm({ receiveCapMs: 1_000, ...options });
  others.push(server);
  return server;
}

async function failure(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected the upload to fail');
    },
    (error: unknown) => error,
  );
}

function expectNothingLeft(server: FakeWindowsVm, ...sandboxPath: string[]): void {
  expect(server.openShells()).toBe(0);
  expect(server.openCommands()).toBe(0);
  expect(existsSync(join(server.sandbox, ...sandboxPath))).toBe(false);
}

const writerCommands = (server: FakeWindowsVm): number =>
  server.commands.filter((line) => /^powershell\.exe .*-EncodedCommand/.test(line)).length;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'isobuild-winrm-upload-'));
  big = await randomFile('big.bin', 100 * 1024 * 1024);
  small = await randomFile('small.bin', 1024 * 1024);
  vm = await startFakeWindowsVm({ receiveCapMs: 1_000 });
});
afterAll(async () => {
  await vm?.close();
  await Promise.all(others.map((server) => server.close()));
  await rm(work, { recursive: true, force: true });
});

describe('uploadFile', () => {
  it('uploads 100 MB byte-exact, two writers at once, with progress, and leaves no shell', async () => {
    const progress: UploadProgress[] = [];
    const started = Date.now();
    const result = await uploadFile(target(vm), big, 'C:\\Windows\\Temp\\isobuild-staging\\big.bin', {
      onProgress: (p) => progress.push(p),
    });
    const seconds = (Date.now() - started) / 1000;

    expect(await sha256(join(vm.sandbox, 'Windows', 'Temp', 'isobuild-staging', 'big.bin'))).toBe(
      await sha256(big),
    );
    expect(result.ranges).toHaveLength(2);
    expect(result.ranges.map((r) => r.offset + r.length).at(-1)).toBe(100 * 1024 * 1024);
    expect(result.envelopeBytes).toBe(500 * 1024); // read from the server's winrm/config
    expect(result.envelopeFaults).toBe(0);
    expect(seconds).toBeLessThan(30);
    // One writer per range, not one command per chunk.
    expect(writerCommands(vm)).toBe(2);
    expect(progress.at(-1)).toMatchObject({ bytesDone: 100 * 1024 * 1024, totalBytes: 100 * 1024 * 1024 });
    expect(progress.every((p, i) => i === 0 || p.bytesDone >= progress[i - 1]!.bytesDone)).toBe(true);
    expect(progress.at(-1)!.bytesPerSecond).toBeGreaterThan(1_000_000);
    expect(vm.openShells()).toBe(0);
    expect(vm.openCommands()).toBe(0);
  });

  it('uploads 1 MB byte-exact with one writer over a client the caller keeps (NTLM), into new directories', async () => {
    const client = new WinRmClient(target(vm, 'ntlm'));
    const before = writerCommands(vm);
    try {
      const result = await uploadFile(client, small, 'C:\\isobuild\\new dir\\it’s small.bin');
      expect(result.ranges).toEqual([{ offset: 0, length: 1024 * 1024, sha256: await sha256(small) }]);
      expect((await client.run('echo still usable')).stdout).toBe('still usable\n');
    } finally {
      client.close();
    }
    expect(await sha256(join(vm.sandbox, 'isobuild', 'new dir', 'it’s small.bin'))).toBe(await sha256(small));
    expect(writerCommands(vm) - before).toBe(1);
    expect(vm.openShells()).toBe(0);
  });

  it('replaces a longer file already at the destination, and uploads an empty file', async () => {
    await writeFile(join(vm.sandbox, 'old.bin'), Buffer.alloc(3 * 1024 * 1024, 7));
    await uploadFile(target(vm), small, 'C:\\old.bin');
    expect(await sha256(join(vm.sandbox, 'old.bin'))).toBe(await sha256(small));

    const empty = join(work, 'empty.bin');
    await writeFile(empty, '');
    const result = await uploadFile(target(vm), empty, 'C:\\empty.bin');
    expect(result.bytes).toBe(0);
    expect((await readFile(join(vm.sandbox, 'empty.bin'))).length).toBe(0);
  });

  it('sizes envelopes to the MaxEnvelopeSizekb the server reports, so it never refuses one', async () => {
    const server = await anotherVm({ maxEnvelopeSizeKb: 150 });
    const result = await uploadFile(target(server), small, 'C:\\sized.bin');
    expect(result).toMatchObject({ envelopeBytes: 150 * 1024, envelopeFaults: 0 });
    expect(server.envelopeFaults()).toBe(0);
    expect(await sha256(join(server.sandbox, 'sized.bin'))).toBe(await sha256(small));
  });

  it('falls back to 150 KiB envelopes after an HTTP 413 when the login may not read winrm/config', async () => {
    const server = await anotherVm({ maxEnvelopeSizeKb: 150, configReadable: false });
    const result = await uploadFile(target(server), small, 'C:\\fallback.bin', { parallel: 1 });
    expect(server.envelopeFaults()).toBe(1); // Windows' 500 KiB tried once, then 150 KiB throughout
    expect(result).toMatchObject({ envelopeBytes: 150 * 1024, envelopeFaults: 1 });
    expect(await sha256(join(server.sandbox, 'fallback.bin'))).toBe(await sha256(small));
    expect(server.openShells()).toBe(0);
  });

  it('says how to fix a MaxEnvelopeSizekb too small even for the fallback, and leaves nothing', async () => {
    const server = await anotherVm({ maxEnvelopeSizeKb: 100, configReadable: false });
    const error = await failure(uploadFile(target(server), small, 'C:\\tiny-envelopes.bin'));
    expect(error).toBeInstanceOf(UploadError);
    expect((error as UploadError).kind).toBe('envelope-too-small');
    expect((error as UploadError).message).toContain(
      "the VM's WinRM refuses envelopes of 150 KiB (its MaxEnvelopeSizekb is lower)",
    );
    expect((error as UploadError).message).toContain('Set-Item WSMan:\\localhost\\MaxEnvelopeSizekb');
    expectNothingLeft(server, 'tiny-envelopes.bin');
  });

  it('rejects a transfer the VM garbled, naming the file, and removes the bad copy', async () => {
    const server = await anotherVm({ behaviour: { corruptUploads: true } });
    const error = await failure(uploadFile(target(server), small, 'C:\\staging\\garbled.bin'));
    expect(error).toBeInstanceOf(UploadError);
    expect((error as UploadError).kind).toBe('hash-mismatch');
    expect((error as Error).message).toContain(`${small} arrived altered at C:\\staging\\garbled.bin`);
    expect((error as Error).message).toContain(await sha256(small));
    expectNothingLeft(server, 'staging', 'garbled.bin');
  });

  it('says why a writer failed on the VM (its PowerShell error), and leaves no shell', async () => {
    await writeFile(join(vm.sandbox, 'blocker'), 'a file, not a directory');
    const error = await failure(uploadFile(target(vm), small, 'C:\\blocker\\x.bin'));
    expect(error).toBeInstanceOf(UploadError);
    expect((error as UploadError).kind).toBe('writer-failed');
    expect((error as Error).message).toMatch(
      /^writing C:\\blocker\\x\.bin on the VM failed \(exit code 1\): Exception calling "CreateDirectory" .*because a file or directory with the same name already exists/,
    );
    expect(vm.openShells()).toBe(0);
    expect(vm.openCommands()).toBe(0);
  });

  it('refuses a destination that is not an absolute Windows path, before contacting the VM', async () => {
    const commands = vm.commands.length;
    const error = await failure(uploadFile(target(vm), small, 'relative\\x.bin'));
    expect((error as UploadError).kind).toBe('invalid-path');
    expect((error as Error).message).toContain('is not an absolute Windows path');
    expect(vm.commands.length).toBe(commands);
  });

  it('cancels mid-upload within the cleanup budget: no shell, no command, no partial file', async () => {
    const controller = new AbortController();
    let abortedAt = 0;
    const upload = uploadFile(target(vm), big, 'C:\\Windows\\Temp\\isobuild-staging\\cancelled.bin', {
      signal: controller.signal,
      cleanupTimeoutMs: 5_000,
      onProgress: (p) => {
        if (p.bytesDone > 20 * 1024 * 1024 && !abortedAt) {
          abortedAt = Date.now();
          controller.abort(new Error('cancelled by test'));
        }
      },
    });
    await expect(upload).rejects.toThrow('cancelled by test');
    expect(abortedAt).toBeGreaterThan(0);
    expect(Date.now() - abortedAt).toBeLessThan(5_000);
    expectNothingLeft(vm, 'Windows', 'Temp', 'isobuild-staging', 'cancelled.bin');
  });
});

describe('the fake Windows VM', () => {
  it("charges Windows' start-up costs: a shell and cmd.exe per command, and powershell.exe's on top", async () => {
    const timed = async (
      server: FakeWindowsVm,
      run: (c: WinRmClient) => Promise<unknown>,
    ): Promise<number> => {
      const client = new WinRmClient(target(server));
      await client.run('echo warm-up');
      const started = performance.now();
      await run(client);
      client.close();
      return performance.now() - started;
    };
    const cmd = (c: WinRmClient) => c.run('echo hi');
    const powershell = (c: WinRmClient) => c.runPowerShell('Write-Host "hi"');
    const { createShellMs, cmdStartMs, powershellStartMs } = WINDOWS_COSTS;
    expect(await timed(vm, cmd)).toBeGreaterThanOrEqual(createShellMs + cmdStartMs);
    expect(await timed(vm, powershell)).toBeGreaterThanOrEqual(
      createShellMs + cmdStartMs + powershellStartMs,
    );
    const free = await anotherVm({ costs: NO_COSTS });
    expect(await timed(free, powershell)).toBeLessThan(powershellStartMs);
  });
});
