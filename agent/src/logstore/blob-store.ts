/**
 * Where a run's logs go: a blob container (AIB's `packerlogs`), reached with a connection string (Azurite,
 * development), a SAS URL, or an account URL with DefaultAzureCredential (managed identity in ACI).
 * The SDK is loaded on demand: commands that store nothing never pay for it. Each store has its own
 * keep-alive agent and request deadlines (request-deadline.ts): when a request times out, the idle
 * sockets go with it, since a path that swallowed one request has likely swallowed them all.
 */
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { ContainerClient, StoragePipelineOptions } from '@azure/storage-blob';
import { hideUrlSecrets } from '../hide-query.js';
import type { Secret } from '../secret.js';
import { processEnvironment } from '../settings/process-environment.js';
import { DEFAULT_REQUEST_TIMEOUT_MS, requestDeadlines, type RequestDeadlines } from './request-deadline.js';

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
  /** Every request to this store runs through these: its own deadline, then a fresh connection. */
  readonly deadlines: RequestDeadlines;
  /** Closes the store's connections. */
  close(): void;
}

export interface BlobStoreOptions {
  /** Deadline of a small request (append, status, read); large transfers get more. */
  readonly requestTimeoutMs?: number;
}

/**
 * Our own loop retries (and reconciles) appends, so the SDK tries a request at most twice. Its
 * tryTimeoutInMs only sets the server's timeout; the client-side deadline is ours (request-deadline.ts).
 */
const PIPELINE: StoragePipelineOptions = {
  retryOptions: { maxTries: 2, tryTimeoutInMs: 30_000, retryDelayInMs: 200, maxRetryDelayInMs: 1_000 },
  userAgentOptions: { userAgentPrefix: 'isobuild' },
};

export async function openBlobStore(
  access: StoreAccess,
  containerName = DEFAULT_CONTAINER,
  options: BlobStoreOptions = {},
): Promise<BlobStore> {
  const { AnonymousCredential, BlobServiceClient, ContainerClient } = await import('@azure/storage-blob');
  const agent = keepAliveAgent(await endpointOf(access));
  // `agent` is a core-rest-pipeline option that the storage typings leave out; the SDK passes it through.
  const pipeline: StoragePipelineOptions = agent
    ? ({ ...PIPELINE, agent } as StoragePipelineOptions)
    : PIPELINE;
  let container: ContainerClient;
  switch (access.kind) {
    case 'connection-string':
      container = BlobServiceClient.fromConnectionString(
        access.connectionString.reveal(),
        pipeline,
      ).getContainerClient(containerName);
      break;
    case 'sas-url': {
      const url = new URL(access.url.reveal());
      // A container SAS URL names the container in its path; an account SAS URL does not.
      const pathParts = url.pathname.split('/').filter(Boolean);
      const isContainerUrl = pathParts.length > 0 && !isAzuriteAccountPath(url, pathParts);
      container = isContainerUrl
        ? new ContainerClient(url.toString(), new AnonymousCredential(), pipeline)
        : new BlobServiceClient(url.toString(), undefined, pipeline).getContainerClient(containerName);
      break;
    }
    case 'account-url': {
      const { DefaultAzureCredential } = await import('@azure/identity');
      container = new BlobServiceClient(
        access.url,
        new DefaultAzureCredential(),
        pipeline,
      ).getContainerClient(containerName);
      break;
    }
  }
  const displayUrl = hideUrlSecrets(container.url).replace(/\?<query hidden>$/, '');
  return {
    container,
    displayUrl,
    blobUrl: (name) => `${displayUrl}/${name.split('/').map(encodeURIComponent).join('/')}`,
    deadlines: requestDeadlines(options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS, () => {
      if (agent) dropIdleSockets(agent);
    }),
    close: () => agent?.destroy(),
  };
}

/** The endpoint's scheme decides the agent; only a connection string needs parsing to know it. */
async function endpointOf(access: StoreAccess): Promise<URL> {
  if (access.kind === 'sas-url') return new URL(access.url.reveal());
  if (access.kind === 'account-url') return new URL(access.url);
  const { BlobServiceClient } = await import('@azure/storage-blob');
  return new URL(BlobServiceClient.fromConnectionString(access.connectionString.reveal()).url);
}

/**
 * An agent of our own, so idle sockets can be dropped after a timeout. With an HTTP(S)_PROXY in the
 * environment the SDK's proxy agent is kept instead (it would be bypassed by ours).
 */
function keepAliveAgent(endpoint: URL): HttpAgent | undefined {
  const proxied = ['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy'].some(
    (name) => processEnvironment()[name],
  );
  if (proxied) return undefined;
  return endpoint.protocol === 'https:'
    ? new HttpsAgent({ keepAlive: true })
    : new HttpAgent({ keepAlive: true });
}

function dropIdleSockets(agent: HttpAgent): void {
  for (const sockets of Object.values(agent.freeSockets))
    for (const socket of sockets ?? []) socket.destroy();
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
