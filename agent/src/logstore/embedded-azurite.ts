/**
 * The default log store when none is configured: an Azurite blob service that isobuild starts itself,
 * with its data on disk under the work directory (`.azurite/`), so local runs and `make demo` use the real blob path
 * and `isobuild logs` still finds a run's logs after the build. One Azurite serves a data directory at a
 * time: a second isobuild (another build, `logs --follow`) reuses the running one, found through
 * `endpoint.json`, and registers in `users/`. Azurite runs until its last user is gone (see
 * azurite-child.ts); nothing is left running.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { IsobuildError } from '../errors.js';
import { Secret } from '../secret.js';
import { isProcessAlive } from '../processes.js';
import { processEnvironment } from '../settings/process-environment.js';

/** The account name Azurite serves (its key is random per start: see spawnAzurite). */
const ACCOUNT = 'devstoreaccount1';
const START_TIMEOUT_MS = 15_000;
/** Shared with azurite-child.ts. */
export const LOCK_FILE = 'starting.lock';

export interface EmbeddedAzurite {
  readonly url: string;
  readonly connectionString: Secret;
  readonly dataDir: string;
  /** Leaves Azurite; it shuts down (and this waits for it) when no other isobuild uses it. */
  stop(): Promise<void>;
}

interface EndpointRecord {
  /** The account key this Azurite accepts; the record is mode 600, readable by this user only. */
  readonly key: string;
  readonly pid: number;
  readonly url: string;
}

/** A dot directory: run ids start with a letter or digit, so no run directory can clash with it. */
export function azuriteDataDir(workDir: string): string {
  return join(workDir, '.azurite');
}

export async function startEmbeddedAzurite(workDir: string, signal?: AbortSignal): Promise<EmbeddedAzurite> {
  const dataDir = azuriteDataDir(workDir);
  const usersDir = join(dataDir, 'users');
  const endpointFile = join(dataDir, 'endpoint.json');
  await mkdir(usersDir, { recursive: true, mode: 0o700 });
  const userFile = join(usersDir, String(process.pid));
  const leave = (): Promise<void> => rm(userFile, { force: true });
  // One lock covers "register, look, reuse or start" here and "look for users, shut down" in
  // azurite-child.ts, so nobody reuses an Azurite that is shutting down and two never share a directory.
  const lockFile = join(dataDir, LOCK_FILE);
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (!(await takeLock(lockFile))) {
    if (Date.now() > deadline)
      throw new IsobuildError(
        'storeUnavailable',
        `the embedded Azurite in ${dataDir} has been locked by another isobuild for ${START_TIMEOUT_MS / 1000} s; remove ${lockFile} if no isobuild is running.`,
      );
    await sleep(50, undefined, signal ? { signal } : undefined);
  }
  try {
    await writeFile(userFile, '');
    const running = await readEndpoint(endpointFile);
    if (running?.key && isProcessAlive(running.pid)) {
      return describe(running.url, running.key, dataDir, async () => {
        await leave();
        // The last user out waits until Azurite has saved its data and exited, so nothing outlives us.
        if (await othersUsing(usersDir)) return;
        for (let waited = 0; waited < 10_000 && isProcessAlive(running.pid); waited += 50) await sleep(50);
      });
    }
    return await spawnAzurite(dataDir, usersDir, endpointFile, leave, signal);
  } catch (error) {
    await leave();
    throw error;
  } finally {
    await rm(lockFile, { force: true });
  }
}

/** Creates the lock file (exclusively); a lock whose owner died is removed and taken. */
async function takeLock(lockFile: string): Promise<boolean> {
  try {
    await writeFile(lockFile, String(process.pid), { flag: 'wx' });
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    const owner = Number(await readFile(lockFile, 'utf8').catch(() => ''));
    if (owner && !isProcessAlive(owner)) await rm(lockFile, { force: true });
    return false;
  }
}

async function spawnAzurite(
  dataDir: string,
  usersDir: string,
  endpointFile: string,
  leave: () => Promise<void>,
  signal?: AbortSignal,
): Promise<EmbeddedAzurite> {
  const key = randomBytes(32).toString('base64');
  const child = spawn(
    process.execPath,
    [
      fileURLToPath(new URL('./azurite-child.js', import.meta.url)),
      azuriteMain(),
      '--blobHost',
      '127.0.0.1',
      '--blobPort',
      '0',
      '--location',
      dataDir,
      '--disableTelemetry', // Azurite collects telemetry by default; isobuild makes no outbound calls
      '--skipApiVersionCheck', // @azure/storage-blob 12.32 sends an API version Azurite 3.35 does not list
      '--silent',
    ],
    {
      // The IPC channel tells Azurite when its starter is gone, however it ends.
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      env: {
        ...processEnvironment(),
        ISOBUILD_AZURITE_USERS: usersDir,
        ISOBUILD_AZURITE_ENDPOINT: endpointFile,
        // A fresh key instead of the emulator's well-known one: only isobuild processes of this user,
        // which read it from the mode-600 endpoint record, can use this store.
        AZURITE_ACCOUNTS: `${ACCOUNT}:${key}`,
      },
    },
  );
  let url: string;
  try {
    url = await listeningUrl(child, signal);
  } catch (error) {
    await leave();
    throw error;
  }
  await writeFile(endpointFile, JSON.stringify({ pid: child.pid ?? 0, url, key } satisfies EndpointRecord), {
    mode: 0o600,
  });
  return describe(url, key, dataDir, async () => {
    await leave();
    if (child.exitCode !== null || child.signalCode !== null) return;
    // Azurite stops by itself once no other registered isobuild uses it; wait when that is now.
    const exited = new Promise((resolve) => child.once('exit', resolve));
    if (child.connected) child.disconnect();
    if (await othersUsing(usersDir)) return;
    child.ref(); // keep this process alive until Azurite has saved its data and exited
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  });
}

async function othersUsing(usersDir: string): Promise<boolean> {
  const entries = await readdir(usersDir).catch(() => []);
  return entries.some((entry) => Number(entry) !== process.pid && isProcessAlive(Number(entry)));
}

function describe(url: string, key: string, dataDir: string, stop: () => Promise<void>): EmbeddedAzurite {
  const accountUrl = `${url}/${ACCOUNT}`;
  return {
    url: accountUrl,
    connectionString: new Secret(
      `DefaultEndpointsProtocol=http;AccountName=${ACCOUNT};AccountKey=${key};BlobEndpoint=${accountUrl};`,
    ),
    dataDir,
    stop,
  };
}

function azuriteMain(): string {
  try {
    const require = createRequire(import.meta.url);
    return join(dirname(require.resolve('azurite/package.json')), 'dist/src/blob/main.js');
  } catch {
    throw new IsobuildError(
      'storeUnavailable',
      'no log store is configured and the embedded Azurite is not installed: run "npm ci" in the isobuild directory, or configure a store with --storage-connection-string, --storage-sas-url or --storage-account-url.',
    );
  }
}

function listeningUrl(child: ChildProcess, signal?: AbortSignal): Promise<string> {
  return new Promise((resolve, reject) => {
    let output = '';
    const fail = (why: string): void => {
      cleanup();
      child.kill('SIGKILL');
      reject(
        new IsobuildError(
          'storeUnavailable',
          `the embedded Azurite (local log store) ${why}. Its output: ${output.trim().slice(-500) || '(none)'}`,
        ),
      );
    };
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      const match = /successfully listens on (http:\/\/127\.0\.0\.1:\d+)/.exec(output);
      if (match?.[1]) {
        cleanup();
        // Azurite keeps talking on its pipes; drain them so it never blocks.
        child.stdout?.resume();
        child.stderr?.resume();
        // Neither Azurite nor its pipes keep isobuild alive; stop() ends it, or the IPC channel does.
        child.unref();
        (child.stdout as { unref?: () => void } | null)?.unref?.();
        (child.stderr as { unref?: () => void } | null)?.unref?.();
        (child.channel as { unref?: () => void } | null | undefined)?.unref?.();
        resolve(match[1]);
      }
    };
    const onExit = (): void => fail('exited while starting');
    const onAbort = (): void => fail('start was cancelled');
    const timer = setTimeout(
      () => fail(`did not start within ${START_TIMEOUT_MS / 1000} s`),
      START_TIMEOUT_MS,
    );
    const cleanup = (): void => {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.stderr?.off('data', onData);
      child.off('exit', onExit);
      signal?.removeEventListener('abort', onAbort);
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', onExit);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

async function readEndpoint(file: string): Promise<EndpointRecord | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as EndpointRecord;
  } catch {
    return undefined;
  }
}
