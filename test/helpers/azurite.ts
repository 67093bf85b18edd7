// A real Azurite blob service started in this process (no CLI, so its telemetry client is never started),
// listening on 127.0.0.1 with an OS-chosen port and keeping everything in memory (see packer-notes §5.1).
// Azurite ships no type declarations, so the few pieces used here are typed by hand.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

interface BlobServerLike {
  start(): Promise<void>;
  close(): Promise<void>;
  clean(): Promise<void>;
  getHttpServerAddress(): string;
}

type BlobConfigurationCtor = new (...args: unknown[]) => object;
type BlobServerCtor = new (configuration: object) => BlobServerLike;
type ChunkStoreCtor = new (sizeLimit: number) => object;

export interface AzuriteInstance {
  /** The account's blob endpoint, e.g. http://127.0.0.1:41325/devstoreaccount1 (what BlobServiceClient takes). */
  readonly url: string;
  readonly connectionString: string;
  readonly accountName: string;
  /** The public, well-known emulator key. */
  readonly accountKey: string;
  /** Stops the server and drops its data; safe to call twice. */
  close(): Promise<void>;
}

/** In-memory blob data is capped at this size per instance. */
const MEMORY_LIMIT_BYTES = 256 * 1024 * 1024;

export async function startAzurite(): Promise<AzuriteInstance> {
  const BlobServer = (require('azurite/dist/src/blob/BlobServer') as { default: BlobServerCtor }).default;
  const BlobConfiguration = (
    require('azurite/dist/src/blob/BlobConfiguration') as { default: BlobConfigurationCtor }
  ).default;
  const { MemoryExtentChunkStore } = require('azurite/dist/src/common/persistence/MemoryExtentStore') as {
    MemoryExtentChunkStore: ChunkStoreCtor;
  };
  const constants = require('azurite/dist/src/blob/utils/constants') as {
    EMULATOR_ACCOUNT_NAME: string;
    EMULATOR_ACCOUNT_KEY_STR: string;
  };
  const { AzuriteTelemetryClient } = require('azurite/dist/src/common/Telemetry') as {
    AzuriteTelemetryClient: { init(location: string, enableTelemetry: boolean, env: unknown): void };
  };
  // Never started in-process anyway; this makes "telemetry off" explicit should that ever change.
  AzuriteTelemetryClient.init('', false, undefined);

  // Positional arguments; the ones that matter are named.
  const configuration = new BlobConfiguration(
    '127.0.0.1', // host
    0, // port: chosen by the OS
    5, // keepAliveTimeout (s)
    undefined, // metadataDBPath
    undefined, // extentDBPath
    undefined, // persistencePathArray
    false, // enableAccessLog
    undefined, // accessLogWriteStream
    false, // enableDebugLog
    undefined, // debugLogFilePath
    false, // loose
    true, // skipApiVersionCheck: @azure/storage-blob 12.32 sends an API version Azurite 3.35 does not know
    undefined, // cert
    undefined, // key
    undefined, // pwd
    undefined, // oauth
    false, // disableProductStyleUrl
    true, // isMemoryPersistence
    new MemoryExtentChunkStore(MEMORY_LIMIT_BYTES), // a private store, not Azurite's process-wide shared one
  );
  const server = new BlobServer(configuration);
  await server.start();
  const accountName = constants.EMULATOR_ACCOUNT_NAME;
  const accountKey = constants.EMULATOR_ACCOUNT_KEY_STR;
  const url = `${server.getHttpServerAddress()}/${accountName}`;
  let closing: Promise<void> | undefined;
  return {
    url,
    connectionString: `DefaultEndpointsProtocol=http;AccountName=${accountName};AccountKey=${accountKey};BlobEndpoint=${url};`,
    accountName,
    accountKey,
    close: () => {
      closing ??= server.close().then(() => server.clean());
      return closing;
    },
  };
}

export interface AzuriteProcess {
  readonly port: number;
  readonly url: string;
  readonly connectionString: string;
  /** Stops the process (SIGTERM: Azurite saves its data) and waits until it has exited. */
  stop(): Promise<void>;
}

/**
 * Azurite's own CLI as a separate process with on-disk data, for outage tests: stop it and start it
 * again on the same port and data directory, and the blobs are still there (packer-notes §5.6).
 */
export async function startAzuriteProcess(dataDir: string, port = 0): Promise<AzuriteProcess> {
  const { spawn } = await import('node:child_process');
  const main = require.resolve('azurite/dist/src/blob/main.js');
  const child = spawn(
    process.execPath,
    [
      main,
      '--blobHost',
      '127.0.0.1',
      '--blobPort',
      String(port),
      '--location',
      dataDir,
      '--disableTelemetry',
      '--skipApiVersionCheck',
      '--silent',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const realPort = await new Promise<number>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`Azurite did not start: ${out}`)), 15_000);
    const onData = (chunk: Buffer): void => {
      out += chunk.toString();
      const match = /successfully listens on http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', () => {
      clearTimeout(timer);
      reject(new Error(`Azurite exited: ${out}`));
    });
  });
  const constants = require('azurite/dist/src/blob/utils/constants') as {
    EMULATOR_ACCOUNT_NAME: string;
    EMULATOR_ACCOUNT_KEY_STR: string;
  };
  const url = `http://127.0.0.1:${realPort}/${constants.EMULATOR_ACCOUNT_NAME}`;
  return {
    port: realPort,
    url,
    connectionString: `DefaultEndpointsProtocol=http;AccountName=${constants.EMULATOR_ACCOUNT_NAME};AccountKey=${constants.EMULATOR_ACCOUNT_KEY_STR};BlobEndpoint=${url};`,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    },
  };
}
