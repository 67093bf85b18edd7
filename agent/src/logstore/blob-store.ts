/**
 * Where a run's logs go: a blob container (AIB's `packerlogs`), reached with a connection string (Azurite,
 * development), a SAS URL, or an account URL with DefaultAzureCredential (managed identity in ACI).
 * The SDK is loaded on demand: commands that store nothing never pay for it.
 */
import type { ContainerClient, StoragePipelineOptions } from '@azure/storage-blob';
import { hideQuery } from '../hide-query.js';
import type { Secret } from '../secret.js';

export const DEFAULT_CONTAINER = 'packerlogs';

export type StoreAccess =
  | { readonly kind: 'connection-string'; readonly connectionString: Secret }
  /** A container SAS URL (https://acct.blob.core.windows.net/packerlogs?sv=…) or an account SAS URL. */
  | { readonly kind: 'sas-url'; readonly url: Secret }
  | { readonly kind: 'account-url'; readonly url: string };

export interface BlobStore {
  readonly container: ContainerClient;
  /** What to show people: the container URL without any query (SAS tokens never print). */
  readonly displayUrl: string;
  /** Where a blob of this container can be read, for messages (no query). */
  blobUrl(name: string): string;
}

/**
 * Our own loop retries (and reconciles) appends, so the SDK tries a request at most twice and each try
 * gives up after 30 s instead of hanging on a dead endpoint.
 */
const PIPELINE: StoragePipelineOptions = {
  retryOptions: { maxTries: 2, tryTimeoutInMs: 30_000, retryDelayInMs: 200, maxRetryDelayInMs: 1_000 },
  userAgentOptions: { userAgentPrefix: 'isobuild' },
};

export async function openBlobStore(
  access: StoreAccess,
  containerName = DEFAULT_CONTAINER,
): Promise<BlobStore> {
  const { AnonymousCredential, BlobServiceClient, ContainerClient } = await import('@azure/storage-blob');
  let container: ContainerClient;
  switch (access.kind) {
    case 'connection-string':
      container = BlobServiceClient.fromConnectionString(
        access.connectionString.reveal(),
        PIPELINE,
      ).getContainerClient(containerName);
      break;
    case 'sas-url': {
      const url = new URL(access.url.reveal());
      // A container SAS URL names the container in its path; an account SAS URL does not.
      const pathParts = url.pathname.split('/').filter(Boolean);
      const isContainerUrl = pathParts.length > 0 && !isAzuriteAccountPath(url, pathParts);
      container = isContainerUrl
        ? new ContainerClient(url.toString(), new AnonymousCredential(), PIPELINE)
        : new BlobServiceClient(url.toString(), undefined, PIPELINE).getContainerClient(containerName);
      break;
    }
    case 'account-url': {
      const { DefaultAzureCredential } = await import('@azure/identity');
      container = new BlobServiceClient(
        access.url,
        new DefaultAzureCredential(),
        PIPELINE,
      ).getContainerClient(containerName);
      break;
    }
  }
  const displayUrl = hideQuery(container.url).replace(/\?<query hidden>$/, '');
  return {
    container,
    displayUrl,
    blobUrl: (name) => `${displayUrl}/${name.split('/').map(encodeURIComponent).join('/')}`,
  };
}

/** Azurite's URLs carry the account as the first path segment (http://127.0.0.1:10000/devstoreaccount1). */
function isAzuriteAccountPath(url: URL, pathParts: readonly string[]): boolean {
  return pathParts.length === 1 && /^(127\.0\.0\.1|localhost|\[::1\])$/.test(url.hostname);
}

/**
 * Creates the container when it is missing. Credentials scoped to the container (a container SAS, an
 * identity with data-plane rights only) may not create containers: then it must exist already, and the
 * blob operation that follows says so if it does not.
 */
export async function ensureContainer(container: ContainerClient, signal?: AbortSignal): Promise<void> {
  try {
    await container.createIfNotExists(signal ? { abortSignal: signal } : {});
  } catch (error) {
    if ((error as { statusCode?: number }).statusCode !== 403) throw error;
  }
}
