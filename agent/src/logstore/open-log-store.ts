/**
 * Opens the log store a command was configured with: the given Blob Storage, or, with none configured,
 * the embedded Azurite over `<workDir>/azurite` (started here, or the one another isobuild is running).
 */
import { openBlobStore, type BlobStore, type StoreAccess } from './blob-store.js';
import { startEmbeddedAzurite } from './embedded-azurite.js';
import type { LogStoreConfig } from '../settings/build-config.js';

export interface OpenedLogStore {
  readonly store: BlobStore;
  /** True for the embedded Azurite: `isobuild logs` then needs the same --work-dir. */
  readonly embedded: boolean;
  /** Releases what opening started (the embedded Azurite). */
  close(): Promise<void>;
}

/**
 * `notBefore` delays loading the storage SDK (~170 ms of CPU on the main thread) until the caller has
 * nothing better to do, e.g. while Packer runs; the embedded Azurite, a separate process, starts at once.
 * `requestTimeoutMs` is the deadline of each storage request (--storage-timeout).
 */
export async function openLogStore(
  access: StoreAccess | undefined,
  container: string,
  workDir: string,
  signal?: AbortSignal,
  notBefore?: Promise<void>,
  requestTimeoutMs?: number,
): Promise<OpenedLogStore> {
  const options = requestTimeoutMs === undefined ? {} : { requestTimeoutMs };
  if (access) {
    await notBefore;
    const store = await openBlobStore(access, container, options);
    return {
      store,
      embedded: false,
      close: () => {
        store.close();
        return Promise.resolve();
      },
    };
  }
  const azurite = await startEmbeddedAzurite(workDir, signal);
  try {
    await notBefore;
    const store = await openBlobStore(
      { kind: 'connection-string', connectionString: azurite.connectionString },
      container,
      options,
    );
    return {
      store,
      embedded: true,
      close: () => {
        store.close();
        return azurite.stop();
      },
    };
  } catch (error) {
    await azurite.stop();
    throw error;
  }
}

/** The store of a command's log-store settings (`logs`, `doctor`, `shell`, `--resume`), opened at once. */
export function openConfiguredLogStore(
  config: LogStoreConfig,
  signal?: AbortSignal,
): Promise<OpenedLogStore> {
  return openLogStore(
    config.store,
    config.storeContainer,
    config.workDir,
    signal,
    undefined,
    config.storageTimeoutMs,
  );
}
