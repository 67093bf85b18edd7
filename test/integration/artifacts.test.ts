/**
 * Artifact fetching against real servers: node:http(s) servers, hostile ones (drip, stall, silence, a frozen
 * listener, resets, redirect traps) and an in-process Azurite, all on 127.0.0.1. Nothing is mocked but time,
 * and only in the tests of the default deadlines, which are about time. No test reaches another address: URLs
 * that must never be fetched point at a closed local port, and the Azure-hostname tests stop inside the
 * injected token provider, before any lookup.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { getEventListeners } from 'node:events';
import { mkdir, mkdtemp, readFile, readdir, rm, symlink, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import {
  BlobSASPermissions,
  BlobServiceClient,
  StorageSharedKeyCredential,
  generateBlobSASQueryParameters,
} from '@azure/storage-blob';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  DEFAULT_LIMITS,
  DownloadError,
  downloadArtifact,
  type DownloadOptions,
} from '../../agent/src/artifacts/download.js';
import {
  FILE_WARNING_BYTES,
  fetchArtifacts,
  type FetchArtifactsOptions,
  type FetchedArtifacts,
} from '../../agent/src/artifacts/fetch-artifacts.js';
import { parseRewrite, rewriteUri } from '../../agent/src/artifacts/rewrite-uri.js';
import { IsobuildError } from '../../agent/src/errors.js';
import { LATEST_API_VERSION } from '../../agent/src/template/api-versions.js';
import type { ImageTemplate, Step } from '../../agent/src/template/model.js';
import { startAzurite, type AzuriteInstance } from '../helpers/azurite.js';
import { CLI } from '../helpers/build-cli.js';
import {
  breakOff,
  drip,
  headersThenStall,
  inTurn,
  neverAnswer,
  redirect,
  resetConnection,
  startBannerServer,
  startFrozenListener,
} from '../helpers/hostile-http-server.js';
import {
  startHttpServer,
  type TestHandler,
  type TestHttpServer,
  type TestServerOptions,
} from '../helpers/http-server.js';
import { linuxTemplate } from '../helpers/template-builders.js';

const SCRIPT = '#!/bin/bash\nset -euo pipefail\necho "hello from isobuild"\n';
const SCRIPT_SHA = sha256(SCRIPT);
/** Retries in these tests wait a few milliseconds, not AIB's half second. */
const FAST = { backoffMs: 5 } as const;

function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

// ---- templates ----

type StepSpec =
  | {
      readonly type: 'Shell';
      readonly name: string;
      readonly scriptUri: string;
      readonly sha256Checksum?: string;
    }
  | {
      readonly type: 'File';
      readonly name: string;
      readonly sourceUri: string;
      readonly sha256Checksum?: string;
    };

function shell(name: string, scriptUri: string, sha256Checksum = ''): StepSpec {
  return { type: 'Shell', name, scriptUri, sha256Checksum };
}

function file(name: string, sourceUri: string, sha256Checksum = ''): StepSpec {
  return { type: 'File', name, sourceUri, sha256Checksum };
}

function toStep(spec: StepSpec, index: number, list: string): Step {
  const base = { index, name: spec.name, hasUserName: true, path: `${list}[${index}]` };
  const sha256Checksum = spec.sha256Checksum ?? '';
  return spec.type === 'Shell'
    ? { ...base, type: 'Shell', scriptUri: spec.scriptUri, sha256Checksum }
    : { ...base, type: 'File', sourceUri: spec.sourceUri, destination: '/tmp/x', sha256Checksum };
}

/** A normalised Linux template whose only interesting parts are its customize and validate steps. */
function template(customize: readonly StepSpec[], validate: readonly StepSpec[] = []): ImageTemplate {
  return {
    apiVersion: LATEST_API_VERSION,
    strict: true,
    os: 'linux',
    osReason: 'test',
    source: {
      type: 'PlatformImage',
      publisher: 'Canonical',
      offer: 'ubuntu-24_04-lts',
      sku: 'server',
      version: 'latest',
    },
    customize: customize.map((spec, index) => toStep(spec, index, 'properties.customize')),
    validate: {
      inVMValidations: validate.map((spec, index) =>
        toStep(spec, index, 'properties.validate.inVMValidations'),
      ),
      continueDistributeOnFailure: false,
      sourceValidationOnly: false,
    },
    distribute: [],
    buildTimeoutInMinutes: 240,
    vmSize: 'Standard_D2s_v3',
    vnet: {},
    topology: 'direct',
    errorHandling: { onCustomizerError: 'cleanup', onValidationError: 'cleanup' },
    secureValues: [],
  };
}

// ---- per-test resources ----

let dir: string;
let scratch: string;
const servers: TestHttpServer[] = [];
/** Other things a test started (frozen listeners, raw TCP servers), closed after it. */
const closers: (() => Promise<void>)[] = [];

beforeEach(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'isobuild-artifacts-'));
  dir = join(scratch, 'artifacts');
  await mkdir(dir);
});

afterEach(async () => {
  await Promise.all([
    ...servers.splice(0).map((server) => server.close()),
    ...closers.splice(0).map((close) => close()),
  ]);
  await rm(scratch, { recursive: true, force: true });
});

async function serve(handler: TestHandler, options: TestServerOptions = {}): Promise<TestHttpServer> {
  const server = await startHttpServer(handler, options);
  servers.push(server);
  return server;
}

/** A URL on 127.0.0.1 where nothing listens: anything fetched there fails with ECONNREFUSED. */
async function closedPortUrl(): Promise<string> {
  const server = await startHttpServer(() => undefined);
  await server.close();
  return server.url;
}

function fetchAll(
  tpl: ImageTemplate,
  options: Partial<FetchArtifactsOptions> = {},
): Promise<FetchedArtifacts> {
  return fetchArtifacts(tpl, { directory: dir, ...options });
}

async function artifactError(promise: Promise<unknown>): Promise<IsobuildError> {
  const error = await promise.then(
    () => undefined,
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(IsobuildError);
  const failure = error as IsobuildError;
  expect(failure.code).toBe('artifactFailed');
  return failure;
}

/** Everything a user could see of an error: its message and every problem. */
function allText(error: IsobuildError): string {
  return [error.message, ...error.problems.map((problem) => `${problem.path}: ${problem.message}`)].join(
    '\n',
  );
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (reason: unknown) => reason,
  );
}

function serveScript(body: string = SCRIPT): TestHandler {
  return (_request, response) => {
    response.writeHead(200, {
      'content-type': 'text/x-shellscript',
      'content-length': Buffer.byteLength(body),
    });
    response.end(body);
  };
}

// ---- tests ----

describe('http downloads', () => {
  it('downloads a script byte for byte and verifies its sha256', async () => {
    const server = await serve(serveScript());
    const { byStep, warnings } = await fetchAll(
      template([shell('setup', `${server.url}/scripts/setup.sh`, SCRIPT_SHA)]),
    );

    const record = byStep.get('properties.customize[0]');
    expect(record).toMatchObject({
      stepPath: 'properties.customize[0]',
      stepName: 'setup',
      uri: `${server.url}/scripts/setup.sh`,
      fetchedFrom: `${server.url}/scripts/setup.sh`,
      file: 'customize-00-setup.sh',
      sha256: SCRIPT_SHA,
      bytes: Buffer.byteLength(SCRIPT),
      checksumVerified: true,
    });
    expect(await readFile(join(dir, 'customize-00-setup.sh'), 'utf8')).toBe(SCRIPT);
    expect(await readdir(dir)).toEqual(['customize-00-setup.sh']);
    expect(warnings).toEqual([]);
    expect(server.requests).toHaveLength(1);
    expect(server.requests[0]).toMatchObject({ method: 'GET', url: '/scripts/setup.sh' });
    expect(server.requests[0]?.headers['user-agent']).toBe('isobuild');
  });

  it('accepts a sha256Checksum written in upper case', async () => {
    const server = await serve(serveScript());
    const { byStep } = await fetchAll(
      template([shell('upper', `${server.url}/setup.sh`, SCRIPT_SHA.toUpperCase())]),
    );
    expect(byStep.get('properties.customize[0]')).toMatchObject({
      sha256: SCRIPT_SHA,
      checksumVerified: true,
    });
  });

  it('fetches validation steps too and warns, with the real hash, when a checksum is missing', async () => {
    const server = await serve(serveScript());
    const { byStep, warnings } = await fetchAll(template([], [shell('check', `${server.url}/check.sh`)]));
    expect(byStep.get('properties.validate.inVMValidations[0]')).toMatchObject({
      file: 'validate-00-check.sh',
      checksumVerified: false,
    });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({
      severity: 'warning',
      path: 'properties.validate.inVMValidations[0].sha256Checksum',
    });
    expect(warnings[0]?.message).toContain(SCRIPT_SHA);
  });

  it('rejects a checksum mismatch, naming the step and both hashes, and leaves no file behind', async () => {
    const server = await serve(serveScript());
    const wrong = sha256('something else');
    const error = await artifactError(
      fetchAll(template([shell('install tools', `${server.url}/setup.sh`, wrong)])),
    );

    expect(error.problems).toHaveLength(1);
    const [problem] = error.problems;
    expect(problem?.severity).toBe('error');
    expect(problem?.path).toBe('properties.customize[0].sha256Checksum');
    expect(problem?.message).toContain('"install tools"');
    expect(problem?.message).toContain(SCRIPT_SHA);
    expect(problem?.message).toContain(wrong);
    expect(server.requests).toHaveLength(1); // a mismatch is never retried
    expect(await readdir(dir)).toEqual([]);
  });

  it('follows redirects', async () => {
    const server = await serve((request, response) => {
      if (request.url === '/old.sh') response.writeHead(302, { location: '/new.sh' }).end();
      else serveScript()(request, response, 0);
    });
    const { byStep } = await fetchAll(template([shell('moved', `${server.url}/old.sh`, SCRIPT_SHA)]));
    expect(byStep.get('properties.customize[0]')?.sha256).toBe(SCRIPT_SHA);
    expect(server.requests.map((request) => request.url)).toEqual(['/old.sh', '/new.sh']);
  });

  it('refuses schemes other than https, http and file without retrying', async () => {
    const error = await artifactError(fetchAll(template([shell('ftp', 'ftp://127.0.0.1/setup.sh')])));
    expect(error.problems[0]?.message).toContain('the ftp: scheme is not supported');
    expect(error.problems[0]?.message).not.toContain('attempts');
  });
});

describe('retries', () => {
  it('retries 503 until the server answers 200', async () => {
    const server = await serve((request, response, index) => {
      if (index < 2) response.writeHead(503, { 'content-type': 'text/plain' }).end('busy');
      else serveScript()(request, response, index);
    });
    const progress: string[] = [];
    const { byStep } = await fetchAll(template([shell('flaky', `${server.url}/setup.sh`, SCRIPT_SHA)]), {
      limits: FAST,
      onProgress: (message) => progress.push(message),
    });
    expect(byStep.get('properties.customize[0]')?.sha256).toBe(SCRIPT_SHA);
    expect(server.requests).toHaveLength(3);
    const retries = progress.filter((message) => message.includes('retrying'));
    expect(retries).toHaveLength(2);
    expect(retries[0]).toContain('HTTP 503');
  });

  it('does not retry a 404, and says which step and status', async () => {
    const server = await serve((_request, response) => {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('no such file');
    });
    const error = await artifactError(
      fetchAll(template([shell('missing', `${server.url}/gone.sh`)]), { limits: FAST }),
    );
    expect(server.requests).toHaveLength(1);
    expect(error.problems).toHaveLength(1);
    expect(error.problems[0]?.path).toBe('properties.customize[0].scriptUri');
    expect(error.problems[0]?.message).toContain('404');
    expect(error.problems[0]?.message).toContain('"missing"');
    expect(error.problems[0]?.message).toContain(`${server.url}/gone.sh`);
    expect(await readdir(dir)).toEqual([]);
  });

  it('gives up after maxAttempts and says how many attempts were made', async () => {
    const server = await serve((_request, response) => response.writeHead(500).end());
    const error = await artifactError(
      fetchAll(template([shell('down', `${server.url}/setup.sh`)]), { limits: { ...FAST, maxAttempts: 3 } }),
    );
    expect(server.requests).toHaveLength(3);
    expect(error.problems[0]?.message).toContain('HTTP 500');
    expect(error.problems[0]?.message).toContain('after 3 attempts');
  });

  it('retries a refused connection and explains it', async () => {
    const url = await closedPortUrl();
    const error = await artifactError(
      fetchAll(template([shell('nobody home', `${url}/setup.sh`)]), { limits: { ...FAST, maxAttempts: 2 } }),
    );
    const message = error.problems[0]?.message ?? '';
    expect(message).toContain(`${new URL(url).host} refused the connection (ECONNREFUSED)`);
    expect(message).toMatch(/gave up after 2 attempts in [\d.]+ m?s: the limit is 2 attempts\./);
    expect(message).toContain('Check the host name and that this machine can reach the server');
  });

  it('shows the Azure Storage error code from an XML error body, with a hint', async () => {
    const server = await serve((_request, response) => {
      response
        .writeHead(404, 'The specified blob does not exist.', { 'content-type': 'application/xml' })
        .end(
          '<?xml version="1.0" encoding="utf-8"?><Error><Code>BlobNotFound</Code>' +
            '<Message>The specified blob does not exist.\nRequestId:0</Message></Error>',
        );
    });
    const error = await artifactError(
      fetchAll(template([shell('blob', `${server.url}/c/setup.sh`)]), { limits: FAST }),
    );
    expect(server.requests).toHaveLength(1);
    const message = error.problems[0]?.message ?? '';
    expect(message).toContain('404');
    expect(message).toContain('BlobNotFound');
    expect(message).toContain('check the blob name and path');
    expect(message).not.toContain('RequestId');
  });
});

describe('timeouts and size limits', () => {
  it('gives up promptly when the transfer stalls after a few bytes', async () => {
    const server = await serve((_request, response) => {
      response.writeHead(200, { 'content-length': 1000 });
      response.write('#!/bin/bash\n'); // ...and then nothing, with the connection left open
    });
    const started = Date.now();
    const error = await artifactError(
      fetchAll(template([shell('stuck', `${server.url}/setup.sh`)]), {
        limits: { stallTimeoutMs: 200, maxAttempts: 1 },
      }),
    );
    expect(Date.now() - started).toBeLessThan(1500);
    expect(error.problems[0]?.message).toMatch(/stalled: no data for \d+ ms after 12 of 1000 bytes/);
    expect(await readdir(dir)).toEqual([]);
  });

  it('gives up promptly when an error response stalls in its body', async () => {
    const server = await serve((_request, response) => {
      response.writeHead(503, { 'content-type': 'application/xml', 'content-length': 1000 });
      response.write('<?xml version="1.0"?><Error><Code>ServerBusy</Code>'); // ...and then nothing
    });
    const started = Date.now();
    const error = await artifactError(
      fetchAll(template([shell('stuck error', `${server.url}/setup.sh`)]), {
        limits: { stallTimeoutMs: 200, attemptTimeoutMs: 5000, maxAttempts: 1 },
      }),
    );
    expect(Date.now() - started).toBeLessThan(1500);
    expect(error.problems[0]?.message).toContain('HTTP 503');
  });

  it('gives up when no response arrives within the attempt timeout', async () => {
    const server = await serve(() => undefined); // accepts the request and never answers
    const started = Date.now();
    const error = await artifactError(
      fetchAll(template([shell('silent', `${server.url}/setup.sh`)]), {
        limits: { attemptTimeoutMs: 300, maxAttempts: 1 },
      }),
    );
    expect(Date.now() - started).toBeLessThan(1500);
    expect(error.problems[0]?.message).toContain(
      `the attempt did not finish within 300 ms (${new URL(server.url).host} had sent no response)`,
    );
  });

  it('gives up when a trickling transfer exceeds the attempt timeout', async () => {
    const server = await serve((_request, response) => {
      response.writeHead(200, { 'content-type': 'text/plain' });
      const timer = setInterval(() => response.write('.'), 20);
      response.on('close', () => clearInterval(timer));
    });
    const error = await artifactError(
      fetchAll(template([shell('slow', `${server.url}/setup.sh`)]), {
        limits: { attemptTimeoutMs: 300, stallTimeoutMs: 5000, maxAttempts: 1 },
      }),
    );
    expect(error.problems[0]?.message).toMatch(
      /the attempt did not finish within 300 ms \(\d+ bytes had arrived\)/,
    );
    expect(await readdir(dir)).toEqual([]);
  });

  it('refuses a declared Content-Length over the cap without reading the body', async () => {
    const server = await serve((_request, response) => {
      response.writeHead(200, { 'content-length': 10_000_000 });
      response.write('x'.repeat(100)); // then nothing: reading on would stall for the 5 s stall timeout
    });
    const started = Date.now();
    const error = await artifactError(
      fetchAll(template([shell('huge', `${server.url}/setup.sh`)]), {
        limits: { ...FAST, maxBytes: 1024, stallTimeoutMs: 5000 },
      }),
    );
    expect(Date.now() - started).toBeLessThan(1500);
    expect(server.requests).toHaveLength(1);
    expect(error.problems[0]?.message).toContain('the artifact is 10000000 bytes, over the 1024-byte limit');
    expect(await readdir(dir)).toEqual([]);
  });

  it('stops a chunked body without Content-Length as soon as it passes the cap', async () => {
    let written = 0;
    const server = await serve((_request, response) => {
      response.writeHead(200, { 'content-type': 'text/plain' }); // chunked: no Content-Length
      const timer = setInterval(() => {
        response.write(Buffer.alloc(512, 'a'));
        written += 512;
      }, 5);
      response.on('close', () => clearInterval(timer));
    });
    const error = await artifactError(
      fetchAll(template([shell('endless', `${server.url}/setup.sh`)]), {
        limits: { ...FAST, maxBytes: 4096, stallTimeoutMs: 5000 },
      }),
    );
    expect(server.requests).toHaveLength(1);
    expect(error.problems[0]?.message).toMatch(/the artifact is \d+ bytes, over the 4096-byte limit/);
    expect(written).toBeLessThan(64 * 1024);
    expect(await readdir(dir)).toEqual([]);
  });

  it('refuses a local file over the cap', async () => {
    const big = join(scratch, 'big.bin');
    await writeFile(big, Buffer.alloc(2048));
    const error = await artifactError(
      fetchAll(template([file('big', pathToFileURL(big).href)]), { limits: { maxBytes: 1024 } }),
    );
    expect(error.problems[0]?.path).toBe('properties.customize[0].sourceUri');
    expect(error.problems[0]?.message).toContain('the artifact is 2048 bytes, over the 1024-byte limit');
    expect(await readdir(dir)).toEqual([]);
  });
});

describe('file:// artifacts', () => {
  it('copies a local file into the artifacts directory under a safe name', async () => {
    const source = join(scratch, 'my config.json');
    await writeFile(source, '{"a":1}');
    const { byStep } = await fetchAll(
      template([file('config', pathToFileURL(source).href, sha256('{"a":1}'))]),
    );
    expect(byStep.get('properties.customize[0]')).toMatchObject({
      file: 'customize-00-my_config.json',
      bytes: 7,
    });
    expect(await readFile(join(dir, 'customize-00-my_config.json'), 'utf8')).toBe('{"a":1}');
  });

  it('refuses a directory for a File step with a clear message', async () => {
    const folder = join(scratch, 'folder');
    await mkdir(folder);
    const error = await artifactError(fetchAll(template([file('folder', pathToFileURL(folder).href)])));
    expect(error.problems[0]?.path).toBe('properties.customize[0].sourceUri');
    expect(error.problems[0]?.message).toContain(
      `${folder} is a directory; a File step copies exactly one file`,
    );
  });

  it('refuses links to kernel files and FIFOs, which could leak the agent environment or block', async () => {
    const environ = join(scratch, 'innocent.sh');
    const fifo = join(scratch, 'pipe.sh');
    await symlink('/proc/self/environ', environ);
    await promisify(execFile)('mkfifo', [fifo]);

    const leaked = await artifactError(fetchAll(template([shell('env', pathToFileURL(environ).href)])));
    const blocked = await artifactError(fetchAll(template([shell('fifo', pathToFileURL(fifo).href)])));

    expect(leaked.problems[0]?.message).toContain(`${environ} is not a regular file that can be an artifact`);
    expect(blocked.problems[0]?.message).toContain(`${fifo} is not a regular file that can be an artifact`);
    expect(await readdir(dir)).toEqual([]);
  });

  it('says when a local file does not exist', async () => {
    const missing = join(scratch, 'nope.sh');
    const error = await artifactError(
      fetchAll(template([shell('nope', pathToFileURL(missing).href)]), { limits: FAST }),
    );
    expect(error.problems[0]?.message).toContain(`${missing} does not exist`);
    expect(error.problems[0]?.message).not.toContain('attempts');
  });

  it('warns (and does not fail) when a File step is over 20 MB', async () => {
    const big = join(scratch, 'tools.tar');
    await writeFile(big, '');
    await truncate(big, 21 * 1024 * 1024); // sparse: quick to make, reads as zeros
    const { byStep, warnings } = await fetchAll(template([file('tools', pathToFileURL(big).href)]));
    expect(byStep.get('properties.customize[0]')?.bytes).toBe(21 * 1024 * 1024);
    expect(21 * 1024 * 1024).toBeGreaterThan(FILE_WARNING_BYTES);
    const sizeWarnings = warnings.filter((warning) => warning.path === 'properties.customize[0].sourceUri');
    expect(sizeWarnings).toHaveLength(1);
    expect(sizeWarnings[0]?.severity).toBe('warning');
    expect(sizeWarnings[0]?.message).toContain('21.0 MB');
    expect(sizeWarnings[0]?.message).toContain('20 MB');
  });

  it('does not warn about size for a script of the same size', async () => {
    const big = join(scratch, 'big.sh');
    await writeFile(big, '');
    await truncate(big, 21 * 1024 * 1024);
    const { warnings } = await fetchAll(template([shell('big script', pathToFileURL(big).href)]));
    expect(warnings.map((warning) => warning.path)).toEqual(['properties.customize[0].sha256Checksum']);
  });
});

describe('--rewrite-uri', () => {
  it('parses FROM=TO and lets the longest matching prefix win', () => {
    const rules = [
      parseRewrite('https://raw.githubusercontent.com/=https://mirror.example/gh/'),
      parseRewrite('https://raw.githubusercontent.com/org/repo/main/=https://mirror.example/pinned/'),
      parseRewrite('https://raw.githubusercontent.com/org/=https://mirror.example/org/'),
    ];
    expect(rewriteUri('https://raw.githubusercontent.com/org/repo/main/a/setup.sh', rules)).toBe(
      'https://mirror.example/pinned/a/setup.sh',
    );
    expect(rewriteUri('https://raw.githubusercontent.com/org/other/x.sh', rules)).toBe(
      'https://mirror.example/org/other/x.sh',
    );
    expect(rewriteUri('https://raw.githubusercontent.com/else/x.sh', rules)).toBe(
      'https://mirror.example/gh/else/x.sh',
    );
    expect(rewriteUri('https://example.com/x.sh', rules)).toBe('https://example.com/x.sh');
    expect(rewriteUri('https://example.com/x.sh', [])).toBe('https://example.com/x.sh');
  });

  it('makes a local TO path a file:// URL, keeping a trailing slash', () => {
    expect(parseRewrite('https://a.example/=/srv/mirror/')).toEqual({
      from: 'https://a.example/',
      to: 'file:///srv/mirror/',
    });
    expect(parseRewrite('https://a.example/x.sh=/srv/x.sh')).toEqual({
      from: 'https://a.example/x.sh',
      to: 'file:///srv/x.sh',
    });
    expect(parseRewrite('https://a.example/=mirror/', '/work/here')).toEqual({
      from: 'https://a.example/',
      to: 'file:///work/here/mirror/',
    });
    expect(parseRewrite('https://a.example/=dir with space/', '/w').to).toBe('file:///w/dir%20with%20space/');
  });

  it.each(['no-equals-sign', '=https://to.example/', 'https://from.example/='])(
    'rejects the malformed spec %j as a usage error',
    (spec) => {
      let caught: unknown;
      try {
        parseRewrite(spec);
      } catch (error) {
        caught = error;
      }
      expect(caught).toBeInstanceOf(IsobuildError);
      expect((caught as IsobuildError).code).toBe('usage');
      expect((caught as IsobuildError).message).toContain('expected FROM=TO');
    },
  );

  it('fetches from the rewritten URL and records both', async () => {
    const server = await serve(serveScript());
    const origin = await closedPortUrl(); // never contacted: every URL below is rewritten
    const rewrites = [
      parseRewrite(`${origin}/org/=${server.url}/short/`),
      parseRewrite(`${origin}/org/repo/main/=${server.url}/long/`),
    ];
    const { byStep } = await fetchAll(
      template([shell('mirrored', `${origin}/org/repo/main/setup.sh`, SCRIPT_SHA)]),
      {
        rewrites,
      },
    );
    expect(server.requests.map((request) => request.url)).toEqual(['/long/setup.sh']);
    expect(byStep.get('properties.customize[0]')).toMatchObject({
      uri: `${origin}/org/repo/main/setup.sh`,
      fetchedFrom: `${server.url}/long/setup.sh`,
    });
  });

  it('fetches from a local mirror directory', async () => {
    const mirror = join(scratch, 'mirror');
    await mkdir(join(mirror, 'scripts'), { recursive: true });
    await writeFile(join(mirror, 'scripts', 'setup.sh'), SCRIPT);
    const origin = await closedPortUrl();
    const rewrite = parseRewrite(`${origin}/repo/=${mirror}/`);
    const { byStep } = await fetchAll(
      template([shell('local', `${origin}/repo/scripts/setup.sh`, SCRIPT_SHA)]),
      {
        rewrites: [rewrite],
      },
    );
    expect(byStep.get('properties.customize[0]')?.fetchedFrom).toBe(
      pathToFileURL(join(mirror, 'scripts/setup.sh')).href,
    );
  });

  it('names both URLs when a rewritten fetch fails', async () => {
    const server = await serve((_request, response) => response.writeHead(404).end());
    const origin = await closedPortUrl();
    const error = await artifactError(
      fetchAll(template([shell('gone', `${origin}/a/setup.sh`)]), {
        rewrites: [parseRewrite(`${origin}/a/=${server.url}/b/`)],
      }),
    );
    expect(error.problems[0]?.message).toContain(
      `cannot fetch ${origin}/a/setup.sh (rewritten to ${server.url}/b/setup.sh)`,
    );
  });
});

describe('SAS tokens are never printed', () => {
  const SAS = 'sv=2024-08-04&se=2030-01-01T00%3A00%3A00Z&sr=b&sp=r&sig=SECRETSIGNATURE%3D';

  function expectNoSecret(text: string): void {
    expect(text).not.toContain('SECRET');
    expect(text).not.toContain('sig=');
  }

  it('hides the query string of a failing URL', async () => {
    const server = await serve((_request, response) => {
      response
        .writeHead(403, { 'content-type': 'application/xml', 'x-ms-error-code': 'AuthenticationFailed' })
        .end(
          '<Error><Code>AuthenticationFailed</Code><Message>Signature did not match. sig=SECRETSIGNATURE</Message></Error>',
        );
    });
    const progress: string[] = [];
    const error = await artifactError(
      fetchAll(template([shell('private', `${server.url}/c/setup.sh?${SAS}`)]), {
        limits: FAST,
        onProgress: (message) => progress.push(message),
      }),
    );
    expect(server.requests[0]?.url).toBe(`/c/setup.sh?${SAS}`); // the SAS was sent...
    const text = allText(error);
    expect(text).toContain('403');
    expect(text).toContain('AuthenticationFailed: the SAS token is invalid or expired');
    expect(text).toContain(`${server.url}/c/setup.sh?<query hidden>`);
    expectNoSecret(text); // ...but never shown
    expectNoSecret(progress.join('\n'));
    expectNoSecret(JSON.stringify(error.problems));
  });

  it('hides it in retry messages, checksum mismatches and records', async () => {
    const server = await serve((request, response, index) => {
      if (index === 0) response.writeHead(503).end();
      else serveScript()(request, response, index);
    });
    const progress: string[] = [];
    const url = `${server.url}/c/setup.sh?${SAS}`;
    const ok = await fetchAll(template([shell('private', url, SCRIPT_SHA)]), {
      limits: FAST,
      onProgress: (message) => progress.push(message),
    });
    expect(progress.some((message) => message.includes('retrying'))).toBe(true);
    expectNoSecret(progress.join('\n'));
    expectNoSecret(JSON.stringify([...ok.byStep.values()]));

    const error = await artifactError(fetchAll(template([shell('private', url, sha256('other'))])));
    expect(allText(error)).toContain('?<query hidden>');
    expectNoSecret(allText(error));
  });

  it('hides it when the SAS URL is a rewrite target', async () => {
    const server = await serve((_request, response) => response.writeHead(404).end());
    const origin = await closedPortUrl();
    const error = await artifactError(
      fetchAll(template([shell('private', `${origin}/setup.sh`)]), {
        rewrites: [parseRewrite(`${origin}/setup.sh=${server.url}/c/setup.sh?${SAS}`)],
      }),
    );
    expect(server.requests[0]?.url).toBe(`/c/setup.sh?${SAS}`);
    expect(allText(error)).toContain('rewritten to');
    expectNoSecret(allText(error));
  });
});

describe('cancellation', () => {
  it('rejects at once with the abort reason when the signal is already aborted', async () => {
    const server = await serve(serveScript());
    const controller = new AbortController();
    const reason = new Error('cancelled by the user');
    controller.abort(reason);
    expect(
      await rejection(
        fetchAll(template([shell('s', `${server.url}/setup.sh`)]), { signal: controller.signal }),
      ),
    ).toBe(reason);
    expect(server.requests).toHaveLength(0);
    expect(await readdir(dir)).toEqual([]);
  });

  it('rejects promptly with the abort reason when aborted mid-download, and leaves no file', async () => {
    const controller = new AbortController();
    const reason = new Error('interrupted');
    let abortTimer: NodeJS.Timeout | undefined;
    const server = await serve((_request, response) => {
      response.writeHead(200, { 'content-length': 100_000 });
      response.write(Buffer.alloc(1000, 'a')); // then nothing; the client aborts
      abortTimer = setTimeout(() => controller.abort(reason), 100);
    });
    try {
      const started = Date.now();
      const outcome = await rejection(
        fetchAll(template([shell('s', `${server.url}/setup.sh`)]), {
          signal: controller.signal,
          limits: { stallTimeoutMs: 10_000 },
        }),
      );
      expect(outcome).toBe(reason);
      expect(Date.now() - started).toBeLessThan(1500);
      expect(await readdir(dir)).toEqual([]);
    } finally {
      clearTimeout(abortTimer);
    }
  });

  it('leaves no partial file when several downloads are in flight at the abort', async () => {
    const controller = new AbortController();
    const reason = new Error('interrupted');
    let abortTimer: NodeJS.Timeout | undefined;
    const server = await serve((_request, response, index) => {
      response.writeHead(200, { 'content-length': 100_000 });
      response.write(Buffer.alloc(1000, 'a'));
      if (index === 3) abortTimer = setTimeout(() => controller.abort(reason), 100);
    });
    try {
      const steps = ['a', 'b', 'c', 'd'].map((name) => shell(name, `${server.url}/${name}.sh`));
      const outcome = await rejection(
        fetchAll(template(steps), { signal: controller.signal, limits: { stallTimeoutMs: 10_000 } }),
      );
      expect(outcome).toBe(reason);
      expect(server.requests).toHaveLength(4);
      expect(await readdir(dir)).toEqual([]);
    } finally {
      clearTimeout(abortTimer);
    }
  });

  it('rejects with the abort reason when aborted during a retry backoff', async () => {
    const server = await serve((_request, response) => response.writeHead(503).end());
    const controller = new AbortController();
    const reason = new Error('stop waiting');
    const started = Date.now();
    const outcome = await rejection(
      downloadArtifact(`${server.url}/setup.sh`, join(dir, 'setup.sh'), {
        signal: controller.signal,
        limits: { backoffMs: 5000 },
        onRetry: () => controller.abort(reason),
      }),
    );
    expect(outcome).toBe(reason);
    expect(Date.now() - started).toBeLessThan(1500);
    expect(server.requests).toHaveLength(1);
  });

  it('is unaffected by an abort after completion, and leaves no listeners on the signal', async () => {
    const server = await serve((request, response, index) => {
      if (index === 0)
        response.writeHead(503).end(); // one retry, so the backoff wait is covered too
      else serveScript()(request, response, index);
    });
    const controller = new AbortController();
    const result = await fetchAll(template([shell('s', `${server.url}/setup.sh`, SCRIPT_SHA)]), {
      signal: controller.signal,
      limits: FAST,
    });
    expect(server.requests).toHaveLength(2);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
    controller.abort(new Error('too late'));
    await new Promise((resolve) => setImmediate(resolve));
    expect(result.byStep.get('properties.customize[0]')?.sha256).toBe(SCRIPT_SHA);
    expect(await readFile(join(dir, 'customize-00-s.sh'), 'utf8')).toBe(SCRIPT);
  });
});

describe('reporting', () => {
  it('reports every failure together in one error, sorted by step', async () => {
    const server = await serve((request, response, index) => {
      if (request.url === '/ok.sh') serveScript()(request, response, index);
      else response.writeHead(404).end();
    });
    const missing = join(scratch, 'missing.txt');
    const error = await artifactError(
      fetchAll(
        template([
          shell('fine', `${server.url}/ok.sh`, SCRIPT_SHA),
          file('config', pathToFileURL(missing).href),
          shell('gone', `${server.url}/gone.sh`),
        ]),
        { limits: FAST },
      ),
    );
    expect(error.message).toBe('2 artifacts could not be fetched or verified; nothing else was done.');
    expect(error.problems.map((problem) => problem.path)).toEqual([
      'properties.customize[1].sourceUri',
      'properties.customize[2].scriptUri',
    ]);
    expect(error.problems[0]?.message).toContain('File step "config"');
    expect(error.problems[1]?.message).toContain('Shell step "gone"');
    expect(error.problems[1]?.message).toContain('404');
  });
});

describe('Azure Blob Storage bearer path', () => {
  it('asks the injected token provider for a blob URL without a SAS and reports its failure', async () => {
    let calls = 0;
    const blobToken = (): Promise<string> => {
      calls++;
      // Fails before any connection (or DNS lookup) is attempted.
      return Promise.reject(new DownloadError('no Azure identity in this test', false));
    };
    const error = await artifactError(
      fetchAll(template([shell('blob', 'https://isobuildtest.blob.core.windows.net/scripts/setup.sh')]), {
        blobToken,
        limits: FAST,
      }),
    );
    expect(calls).toBe(1);
    expect(error.problems[0]?.message).toContain('no Azure identity in this test');
  });

  it('bounds an identity that never hands out a token by the stall deadline, and by an abort', async () => {
    const url = 'https://isobuildtest.blob.core.windows.net/scripts/setup.sh';
    const signals: AbortSignal[] = [];
    const blobToken = (signal: AbortSignal): Promise<string> => {
      signals.push(signal);
      return new Promise(() => undefined); // like an IMDS endpoint that never answers
    };
    const { message, elapsedMs } = await failedDownload(url, {
      blobToken,
      limits: { stallTimeoutMs: 300, maxAttempts: 1 },
    });
    expect(elapsedMs).toBeLessThan(1000);
    expect(message).toMatch(
      /^no Azure access token for isobuildtest\.blob\.core\.windows\.net arrived within 300 ms \(DefaultAzureCredential: managed identity or az login\)/,
    );
    expect(signals[0]?.aborted).toBe(true); // the provider was told to stop

    const controller = new AbortController();
    const reason = new Error('cancelled by the user');
    setTimeout(() => controller.abort(reason), 200);
    const started = Date.now();
    expect(
      await rejection(
        downloadArtifact(url, join(dir, 'setup.sh'), {
          blobToken,
          signal: controller.signal,
          limits: { stallTimeoutMs: 30_000 },
        }),
      ),
    ).toBe(reason);
    expect(Date.now() - started).toBeLessThan(700);
  });

  it('never sends a bearer token to other hosts', async () => {
    const server = await serve(serveScript());
    let calls = 0;
    const blobToken = (): Promise<string> => {
      calls++;
      return Promise.resolve('token-that-must-not-leak');
    };
    await fetchAll(template([shell('plain', `${server.url}/setup.sh`)]), { blobToken });
    expect(calls).toBe(0);
    expect(server.requests[0]?.headers.authorization).toBeUndefined();
  });
});

describe('Azure Blob Storage (Azurite)', () => {
  let azurite: AzuriteInstance;
  let credential: StorageSharedKeyCredential;
  const BLOB = 'scripts/v1/setup.sh';

  beforeAll(async () => {
    azurite = await startAzurite();
    credential = new StorageSharedKeyCredential(azurite.accountName, azurite.accountKey);
    const container = new BlobServiceClient(azurite.url, credential).getContainerClient('private');
    await container.create(); // no public access
    await container.getBlockBlobClient(BLOB).upload(SCRIPT, Buffer.byteLength(SCRIPT));
  });

  afterAll(async () => {
    await azurite?.close();
  });

  function sas(blobName?: string): string {
    return generateBlobSASQueryParameters(
      {
        containerName: 'private',
        ...(blobName ? { blobName } : {}),
        permissions: BlobSASPermissions.parse('r'),
        expiresOn: new Date(Date.now() + 60 * 60_000),
      },
      credential,
    ).toString();
  }

  it('downloads a private blob through a read SAS', async () => {
    const token = sas(BLOB);
    expect(token).toContain('sig=');
    let tokenCalls = 0;
    const { byStep } = await fetchAll(
      template([shell('from blob', `${azurite.url}/private/${BLOB}?${token}`, SCRIPT_SHA)]),
      {
        blobToken: () => {
          tokenCalls++;
          return Promise.resolve('unused');
        },
      },
    );
    const record = byStep.get('properties.customize[0]');
    expect(record).toMatchObject({
      sha256: SCRIPT_SHA,
      checksumVerified: true,
      file: 'customize-00-from_blob.sh',
    });
    expect(record?.uri).toBe(`${azurite.url}/private/${BLOB}?<query hidden>`);
    expect(await readFile(join(dir, 'customize-00-from_blob.sh'), 'utf8')).toBe(SCRIPT);
    expect(tokenCalls).toBe(0);
  });

  it('fails clearly without the SAS, since the container is private', async () => {
    const error = await artifactError(
      fetchAll(template([shell('from blob', `${azurite.url}/private/${BLOB}`)]), { limits: FAST }),
    );
    const message = error.problems[0]?.message ?? '';
    expect(error.problems[0]?.path).toBe('properties.customize[0].scriptUri');
    // Azurite answers an anonymous read of a private container with 403 AuthorizationFailure.
    expect(message).toContain('HTTP 403');
    expect(message).toContain('AuthorizationFailure: the storage account refuses this request');
    expect(await readdir(dir)).toEqual([]);
  });

  it('reports BlobNotFound, with a hint, for a missing blob under a valid container SAS', async () => {
    const error = await artifactError(
      fetchAll(template([file('absent', `${azurite.url}/private/scripts/absent.txt?${sas()}`)]), {
        limits: FAST,
      }),
    );
    const text = allText(error);
    expect(text).toContain('HTTP 404');
    expect(text).toContain('BlobNotFound: check the blob name and path');
    expect(text).not.toContain('sig=');
  });
});

// ---- hostile servers: deadlines, failure classes, cancellation, settings ----

const SCRIPT_BYTES = Buffer.byteLength(SCRIPT);

function status(code: number, headers: Record<string, string> = {}): TestHandler {
  return (_request, response) => {
    response.writeHead(code, { 'content-type': 'text/plain', ...headers }).end(`status ${code}`);
  };
}

async function track<T extends { close(): Promise<void> }>(started: Promise<T>): Promise<T> {
  const thing = await started;
  closers.push(() => thing.close());
  return thing;
}

/** Downloads `url` directly, expecting a DownloadError; returns its message and how long it took. */
async function failedDownload(
  url: string,
  options: DownloadOptions = {},
): Promise<{ message: string; elapsedMs: number }> {
  const started = Date.now();
  const error = await rejection(downloadArtifact(url, join(dir, 'artifact'), options));
  const elapsedMs = Date.now() - started;
  expect(error).toBeInstanceOf(DownloadError);
  expect(await readdir(dir)).toEqual([]);
  return { message: (error as DownloadError).message, elapsedMs };
}

function hostOf(url: string): string {
  return new URL(url).host;
}

describe('hostile servers: the deadlines of one attempt', () => {
  it('a server that drips one byte a second hits the per-attempt deadline', async () => {
    const server = await serve(drip(Buffer.from(SCRIPT), 1000));
    const { message, elapsedMs } = await failedDownload(`${server.url}/setup.sh`, {
      // progressBytes 1: every byte counts as progress, so only the attempt deadline can end this
      limits: { attemptTimeoutMs: 2500, stallTimeoutMs: 2000, progressBytes: 1, maxAttempts: 1 },
    });
    expect(elapsedMs).toBeGreaterThanOrEqual(2400);
    expect(elapsedMs).toBeLessThan(3500);
    expect(message).toMatch(
      new RegExp(
        `^the attempt did not finish within 2\\.5 s \\([1-3] of ${SCRIPT_BYTES} bytes had arrived\\)`,
      ),
    );
    expect(server.requests).toHaveLength(1);
  });

  it('the minimum-progress rule stops a one-byte-a-second drip at the stall deadline', async () => {
    const server = await serve(drip(Buffer.from(SCRIPT), 1000));
    const { message, elapsedMs } = await failedDownload(`${server.url}/setup.sh`, {
      limits: { stallTimeoutMs: 1500, attemptTimeoutMs: 10_000, maxAttempts: 1 },
    });
    expect(elapsedMs).toBeGreaterThanOrEqual(1400);
    expect(elapsedMs).toBeLessThan(2500);
    expect(message).toMatch(
      new RegExp(
        `^the transfer is too slow: only [12] bytes? arrived in 1\\.5 s, under the minimum of 1 KiB \\([12] of ${SCRIPT_BYTES} bytes so far\\)`,
      ),
    );
  });

  it('a server that reads the request and never answers costs one stall window', async () => {
    const server = await serve(neverAnswer);
    const { message, elapsedMs } = await failedDownload(`${server.url}/setup.sh`, {
      limits: { stallTimeoutMs: 400, maxAttempts: 1 },
    });
    expect(elapsedMs).toBeGreaterThanOrEqual(350);
    expect(elapsedMs).toBeLessThan(1500);
    expect(message).toMatch(
      new RegExp(`^${hostOf(server.url)} accepted the connection but sent no response within 400 ms;`),
    );
    expect(server.requests).toHaveLength(1);
  });

  it('a frozen server whose kernel accepts the connection is caught the same way', async () => {
    const frozen = await track(startFrozenListener());
    const { message, elapsedMs } = await failedDownload(`${frozen.url}/setup.sh`, {
      limits: { stallTimeoutMs: 400, maxAttempts: 1 },
    });
    expect(elapsedMs).toBeLessThan(1500);
    expect(message).toContain(
      `${hostOf(frozen.url)} accepted the connection but sent no response within 400 ms`,
    );
  });

  it('a connection attempt that goes unanswered (dropped packets) fails at the stall deadline', async () => {
    const frozen = await track(startFrozenListener());
    await frozen.fillQueue();
    const { message, elapsedMs } = await failedDownload(`${frozen.url}/setup.sh`, {
      limits: { stallTimeoutMs: 400, maxAttempts: 1 },
    });
    expect(elapsedMs).toBeLessThan(1500);
    expect(message).toMatch(
      new RegExp(
        `^could not connect to ${hostOf(frozen.url)} within 400 ms \\(no answer to the connection request\\)`,
      ),
    );
  });

  it('a server that sends headers and then nothing fails at the stall deadline', async () => {
    const server = await serve(headersThenStall(1000));
    const { message, elapsedMs } = await failedDownload(`${server.url}/setup.sh`, {
      limits: { stallTimeoutMs: 400, maxAttempts: 1 },
    });
    expect(elapsedMs).toBeLessThan(1500);
    expect(message).toMatch(/^the transfer stalled: no data for \d+ ms after 0 of 1000 bytes;/);
  });
});

describe('hostile servers: the total deadline', () => {
  it('caps all attempts together: three attempts of 600 ms stop at the 1.5 s total', async () => {
    const server = await serve(neverAnswer);
    const { message, elapsedMs } = await failedDownload(`${server.url}/setup.sh`, {
      limits: { attemptTimeoutMs: 600, stallTimeoutMs: 10_000, totalTimeoutMs: 1500, backoffMs: 5 },
    });
    expect(server.requests).toHaveLength(3);
    expect(elapsedMs).toBeGreaterThanOrEqual(1450);
    expect(elapsedMs).toBeLessThan(2200);
    expect(message).toContain(
      `the 1.5 s total download deadline passed during this attempt (${hostOf(server.url)} had sent no response)`,
    );
    expect(message).toMatch(
      /isobuild gave up after 3 attempts in 1\.\d s: the 1\.5 s total download deadline passed\./,
    );
  });

  it('never sleeps past the total deadline: a backoff longer than the time left ends at once', async () => {
    const server = await serve(status(503));
    const { message, elapsedMs } = await failedDownload(`${server.url}/setup.sh`, {
      limits: { backoffMs: 3000, totalTimeoutMs: 1000 },
    });
    expect(server.requests).toHaveLength(1);
    expect(elapsedMs).toBeLessThan(500);
    expect(message).toMatch(
      /^the server answered HTTP 503 Service Unavailable; isobuild gave up after 1 attempt in \d+ ms: the next attempt, 3 s away, would start past the 1 s total download deadline\. The server is failing/,
    );
  });

  it('honours Retry-After (seconds) when it fits in the total deadline', async () => {
    const server = await serve(inTurn(status(429, { 'retry-after': '1' }), serveScript()));
    const result = await downloadArtifact(`${server.url}/setup.sh`, join(dir, 'setup.sh'), {
      limits: { backoffMs: 5 },
    });
    expect(result).toMatchObject({ sha256: SCRIPT_SHA, attempts: 2 });
    const [first, second] = server.requests;
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(950);
  });

  it('honours Retry-After given as an HTTP date', async () => {
    const server = await serve(
      inTurn(
        (request, response, index) =>
          status(503, { 'retry-after': new Date(Date.now() + 2000).toUTCString() })(request, response, index),
        serveScript(),
      ),
    );
    const result = await downloadArtifact(`${server.url}/setup.sh`, join(dir, 'setup.sh'), {
      limits: { backoffMs: 5 },
    });
    expect(result.attempts).toBe(2);
    const [first, second] = server.requests;
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(900); // the date has whole seconds
    expect(second!.at - first!.at).toBeLessThan(2500);
  });

  it('gives up at once when Retry-After points past the total deadline', async () => {
    const server = await serve(status(429, { 'retry-after': '3600' }));
    const { message, elapsedMs } = await failedDownload(`${server.url}/setup.sh`, {
      limits: { totalTimeoutMs: 5000 },
    });
    expect(server.requests).toHaveLength(1);
    expect(elapsedMs).toBeLessThan(500);
    expect(message).toContain(
      'the server asked to wait 60 min (Retry-After), past the 5 s total download deadline. The server is overloaded',
    );
  });
});

describe('with the default limits (time mocked, since time is the subject)', () => {
  const realSetTimeout = globalThis.setTimeout;

  /** Runs `download` on fake time, a quarter of a fake second per real millisecond, until it settles. */
  async function onFakeTime(
    download: () => Promise<unknown>,
  ): Promise<{ error: unknown; elapsedMs: number }> {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
    try {
      const started = Date.now();
      let settled = false;
      let error: unknown;
      void download().then(
        () => (settled = true),
        (reason: unknown) => ((error = reason), (settled = true)),
      );
      for (let fakeMs = 0; !settled && fakeMs < 30 * 60_000; fakeMs += 250) {
        await new Promise((resolve) => realSetTimeout(resolve, 1)); // real I/O happens here
        await vi.advanceTimersByTimeAsync(250);
      }
      expect(settled).toBe(true);
      return { error, elapsedMs: Date.now() - started };
    } finally {
      vi.useRealTimers();
    }
  }

  it('are 5 min per attempt, 60 s without progress, 15 min in all, 10 attempts', () => {
    expect(DEFAULT_LIMITS).toMatchObject({
      attemptTimeoutMs: 5 * 60_000,
      stallTimeoutMs: 60_000,
      progressBytes: 1024,
      totalTimeoutMs: 15 * 60_000,
      maxAttempts: 10,
    });
  });

  // 10 stall windows of 60 s and 47.5 s of backoff: 647.5 s, plus the few fake steps each connection takes.
  it('a server that never answers costs 10 attempts in about 11 minutes, not 50', async () => {
    const server = await serve(neverAnswer);
    const { error, elapsedMs } = await onFakeTime(() =>
      downloadArtifact(`${server.url}/setup.sh`, join(dir, 'setup.sh')),
    );
    expect(server.requests).toHaveLength(10);
    expect(elapsedMs).toBeGreaterThanOrEqual(647_500);
    expect(elapsedMs).toBeLessThan(11.5 * 60_000);
    expect((error as DownloadError).message).toMatch(
      /sent no response within 60 s; isobuild gave up after 10 attempts in 10 min \d+ s: the limit is 10 attempts\./,
    );
  });

  it('a server that drips a byte a second loses each attempt after 60 s, not after 5 minutes', async () => {
    const server = await serve(drip(Buffer.alloc(100_000, 'x'), 1000));
    const { error, elapsedMs } = await onFakeTime(() =>
      downloadArtifact(`${server.url}/setup.sh`, join(dir, 'setup.sh')),
    );
    expect(server.requests).toHaveLength(10);
    expect(elapsedMs).toBeGreaterThanOrEqual(647_500);
    expect(elapsedMs).toBeLessThan(11.5 * 60_000);
    expect((error as DownloadError).message).toMatch(
      /^the transfer is too slow: only \d+ bytes arrived in 60 s/,
    );
  });

  it('a server just fast enough to pass the minimum progress stops at the 15 min total', async () => {
    const server = await serve((_request, response) => {
      response.writeHead(200, { 'content-length': 100_000_000 });
      const timer = setInterval(() => response.write(Buffer.alloc(2048, 'x')), 30_000);
      response.on('close', () => clearInterval(timer));
    });
    const { error, elapsedMs } = await onFakeTime(() =>
      downloadArtifact(`${server.url}/setup.sh`, join(dir, 'setup.sh')),
    );
    expect(server.requests).toHaveLength(3); // 5 min each; the third is cut short by the total
    expect(elapsedMs).toBeGreaterThanOrEqual(15 * 60_000);
    expect(elapsedMs).toBeLessThan(15 * 60_000 + 5000);
    const message = (error as DownloadError).message;
    expect(message).toMatch(
      /^the 15 min total download deadline passed during this attempt \(\d+ of 100000000 bytes/,
    );
    expect(message).toContain('isobuild gave up after 3 attempts in 15 min');
    expect(message).toContain('--download-total-timeout');
  });
});

describe('failures that no retry can fix stop after one attempt', () => {
  it.each([
    [400, 'Check the URL; the server refuses this request.'],
    [401, 'Check the SAS token'],
    [403, 'give the identity read access (Storage Blob Data Reader)'],
    [404, 'Check the URL: the server has no file there.'],
    [410, 'Check the URL: the server has no file there.'],
    [451, 'Check the URL; the server refuses this request.'],
  ])('HTTP %i', async (code, hint) => {
    const server = await serve(status(code));
    const { message } = await failedDownload(`${server.url}/setup.sh`, { limits: FAST });
    expect(server.requests).toHaveLength(1);
    expect(message).toMatch(
      new RegExp(
        `^the server answered HTTP ${code} .+; a retry cannot fix this, so isobuild stopped after 1 attempt in \\d+ ms\\.`,
      ),
    );
    expect(message).toContain(hint);
  });

  it('a redirect loop is followed once around, then reported with its hops', async () => {
    const server = await serve((request, response, index) =>
      redirect(request.url === '/a' ? '/b' : '/a')(request, response, index),
    );
    const { message } = await failedDownload(`${server.url}/a`, { limits: FAST });
    expect(server.requests.map((request) => request.url)).toEqual(['/a', '/b']);
    expect(message).toContain(
      `the server redirects in a loop: ${server.url}/a → ${server.url}/b → ${server.url}/a; a retry cannot fix this`,
    );
    expect(message).toContain("Point the template at the file's final URL.");
  });

  it('a redirect to itself is one request', async () => {
    const server = await serve(redirect('/setup.sh', 301));
    const { message } = await failedDownload(`${server.url}/setup.sh`, { limits: FAST });
    expect(server.requests).toHaveLength(1);
    expect(message).toContain('redirects in a loop');
  });

  it('more than 10 redirects are not followed', async () => {
    const server = await serve((request, response, index) =>
      redirect(`/r/${Number(request.url?.split('/')[2] ?? 0) + 1}`, 307)(request, response, index),
    );
    const { message } = await failedDownload(`${server.url}/r/0`, { limits: FAST });
    expect(server.requests).toHaveLength(11); // the first request and 10 redirects
    expect(message).toContain(
      `the server redirected more than 10 times (${server.url}/r/0 → … → ${server.url}/r/11)`,
    );
  });

  it.each(['ftp://127.0.0.1/setup.sh', 'file:///etc/hostname', 'data:text/plain,echo%20hi'])(
    'a redirect to %s is never followed',
    async (location) => {
      const server = await serve(redirect(location));
      const { message } = await failedDownload(`${server.url}/setup.sh`, { limits: FAST });
      expect(server.requests).toHaveLength(1);
      expect(message).toMatch(
        new RegExp(
          `^${server.url}/setup\\.sh redirected to a ${new URL(location).protocol} URL \\(.+\\), which isobuild never follows; a retry cannot fix this`,
        ),
      );
    },
  );

  it('a Location that is not a URL', async () => {
    const server = await serve(redirect('http://[::1'));
    const { message } = await failedDownload(`${server.url}/setup.sh`, { limits: FAST });
    expect(server.requests).toHaveLength(1);
    expect(message).toContain(`${server.url}/setup.sh redirected to "http://[::1", which is not a valid URL`);
  });

  it('a redirect status without a Location', async () => {
    const server = await serve(status(302));
    const { message } = await failedDownload(`${server.url}/setup.sh`, { limits: FAST });
    expect(server.requests).toHaveLength(1);
    expect(message).toContain(
      'the server answered HTTP 302 Found without a Location; a retry cannot fix this',
    );
  });

  it('an untrusted TLS certificate: one connection, no request', async () => {
    const server = await serve(serveScript(), { tls: true });
    const { message } = await failedDownload(`${server.url}/setup.sh`, { limits: FAST });
    expect(server.connections()).toBe(1);
    expect(server.requests).toHaveLength(0);
    expect(message).toMatch(
      new RegExp(
        `^${hostOf(server.url)} uses a self-signed TLS certificate \\(DEPTH_ZERO_SELF_SIGNED_CERT\\); a retry cannot fix this`,
      ),
    );
    expect(message).toContain('NODE_EXTRA_CA_CERTS');
  });

  it('https to a plain http port', async () => {
    const server = await serve(serveScript());
    const { message } = await failedDownload(`${server.url.replace('http:', 'https:')}/setup.sh`, {
      limits: FAST,
    });
    expect(server.connections()).toBe(1);
    expect(message).toContain(`${hostOf(server.url)} does not speak TLS on this port (is the URL http://?)`);
    expect(message).toContain('a retry cannot fix this');
  });

  it('a server that does not speak HTTP', async () => {
    const ssh = await track(startBannerServer('SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n'));
    const { message } = await failedDownload(`${ssh.url}/setup.sh`, { limits: FAST });
    expect(ssh.connections()).toBe(1);
    expect(message).toMatch(
      new RegExp(
        `^${hostOf(ssh.url)} answered with something that is not HTTP \\(HPE_[A-Z_]+\\); a retry cannot fix this`,
      ),
    );
  });
});

describe('transient failures are retried, then succeed', () => {
  async function succeedsOnThird(
    handler: TestHandler,
    limits: DownloadOptions['limits'] = FAST,
  ): Promise<string[]> {
    const server = await serve(inTurn(handler, handler, serveScript()));
    const retries: string[] = [];
    const result = await downloadArtifact(`${server.url}/setup.sh`, join(dir, 'setup.sh'), {
      limits,
      onRetry: (_attempt, error) => retries.push(error.message),
    });
    expect(result).toEqual({ sha256: SCRIPT_SHA, bytes: SCRIPT_BYTES, attempts: 3 });
    expect(server.requests).toHaveLength(3);
    expect(await readFile(join(dir, 'setup.sh'), 'utf8')).toBe(SCRIPT);
    return retries;
  }

  it.each([408, 429, 500, 502, 503, 504])('HTTP %i', async (code) => {
    const retries = await succeedsOnThird(status(code));
    expect(retries[0]).toMatch(new RegExp(`^the server answered HTTP ${code} `));
  });

  it('a connection reset', async () => {
    const retries = await succeedsOnThird(resetConnection);
    expect(retries[0]).toMatch(/reset the connection \(ECONNRESET\)|broke off/);
  });

  it('a transfer broken off mid-body', async () => {
    const retries = await succeedsOnThird(breakOff(SCRIPT_BYTES, SCRIPT.slice(0, 10)));
    expect(retries[0]).toMatch(new RegExp(`broke off the transfer after 10 of ${SCRIPT_BYTES} bytes`));
  });

  it('a server that answered nothing', async () => {
    const retries = await succeedsOnThird(neverAnswer, { ...FAST, stallTimeoutMs: 200 });
    expect(retries[0]).toContain('sent no response within 200 ms');
  });

  it('a body that stalled', async () => {
    const retries = await succeedsOnThird(headersThenStall(SCRIPT_BYTES, '#!'), {
      ...FAST,
      stallTimeoutMs: 200,
    });
    expect(retries[0]).toMatch(new RegExp(`stalled: no data for \\d+ ms after 2 of ${SCRIPT_BYTES} bytes`));
  });
});

describe('cancellation at every wait', () => {
  /** Starts a download, aborts it `afterMs` later, and checks it ends promptly with the reason. */
  async function abortAfter(url: string, afterMs: number, limits: DownloadOptions['limits']): Promise<void> {
    const controller = new AbortController();
    const reason = new Error('cancelled by the user');
    const timer = setTimeout(() => controller.abort(reason), afterMs);
    try {
      const started = Date.now();
      const outcome = await rejection(
        downloadArtifact(url, join(dir, 'setup.sh'), { signal: controller.signal, limits }),
      );
      expect(outcome).toBe(reason);
      expect(Date.now() - started).toBeLessThan(afterMs + 500);
      expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
      expect(await readdir(dir)).toEqual([]);
    } finally {
      clearTimeout(timer);
    }
  }

  it('in the middle of a backoff', async () => {
    const server = await serve(status(503));
    await abortAfter(`${server.url}/setup.sh`, 300, { backoffMs: 10_000 });
    expect(server.requests).toHaveLength(1);
  });

  it('in the middle of a Retry-After wait', async () => {
    const server = await serve(status(429, { 'retry-after': '30' }));
    await abortAfter(`${server.url}/setup.sh`, 300, FAST);
    expect(server.requests).toHaveLength(1);
  });

  it('while a connection attempt goes unanswered', async () => {
    const frozen = await track(startFrozenListener());
    await frozen.fillQueue();
    await abortAfter(`${frozen.url}/setup.sh`, 300, { stallTimeoutMs: 30_000 });
  });

  it('while waiting for a response that never comes', async () => {
    const server = await serve(neverAnswer);
    await abortAfter(`${server.url}/setup.sh`, 300, { stallTimeoutMs: 30_000 });
  });

  it('in the middle of a stalled body', async () => {
    const server = await serve(headersThenStall(1000, '#!/bin/bash\n'));
    await abortAfter(`${server.url}/setup.sh`, 300, { stallTimeoutMs: 30_000 });
  });

  it('leaves no listener on the signal after a failure', async () => {
    const silent = await serve(neverAnswer);
    const missing = await serve(status(404));
    const controller = new AbortController();
    for (const url of [`${silent.url}/a.sh`, `${missing.url}/b.sh`]) {
      await failedDownload(url, {
        signal: controller.signal,
        limits: { ...FAST, stallTimeoutMs: 200, maxAttempts: 2 },
      });
    }
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
  });
});

describe('failure messages name the step and the URL, never a SAS signature', () => {
  const SAS = 'sv=2024-08-04&se=2030-01-01T00%3A00%3A00Z&sr=b&sp=r&sig=SECRETSIGNATURE%3D';

  it('for a server that never answers', async () => {
    const server = await serve(neverAnswer);
    const progress: string[] = [];
    const local = join(scratch, 'ok.sh');
    await writeFile(local, SCRIPT);
    const error = await artifactError(
      fetchAll(
        template([
          shell('ok', pathToFileURL(local).href),
          shell('private', `${server.url}/c/setup.sh?${SAS}`),
        ]),
        {
          limits: { ...FAST, stallTimeoutMs: 200, maxAttempts: 2 },
          onProgress: (message) => progress.push(message),
        },
      ),
    );
    expect(server.requests[0]?.url).toBe(`/c/setup.sh?${SAS}`);
    expect(error.problems).toHaveLength(1);
    expect(error.problems[0]?.path).toBe('properties.customize[1].scriptUri');
    const message = error.problems[0]?.message ?? '';
    expect(message).toMatch(
      new RegExp(
        `^Shell step "private": cannot fetch ${server.url}/c/setup\\.sh\\?<query hidden>: ${hostOf(server.url)} accepted the connection but sent no response within 200 ms; isobuild gave up after 2 attempts in \\d+ ms: the limit is 2 attempts\\. Check that the server is up`,
      ),
    );
    expect(allText(error)).not.toContain('SECRET');
    expect(progress.join('\n')).not.toContain('SECRET');
  });

  it('for a redirect loop whose hops carry the SAS', async () => {
    const server = await serve((request, response, index) =>
      redirect(request.url?.startsWith('/a') ? `/b?${SAS}` : `/a?${SAS}`)(request, response, index),
    );
    const error = await artifactError(
      fetchAll(template([file('config', `${server.url}/a?${SAS}`)]), { limits: FAST }),
    );
    const text = allText(error);
    expect(text).toContain(
      `${server.url}/a?<query hidden> → ${server.url}/b?<query hidden> → ${server.url}/a?<query hidden>`,
    );
    expect(text).not.toContain('SECRET');
    expect(text).not.toContain('sig=');
  });
});

describe('isobuild render and build take the download deadlines', () => {
  const STACK = /\n\s+at .+:\d+:\d+/;

  async function isobuild(
    args: string[],
    env: Record<string, string> = {},
  ): Promise<{ code: number; output: string; elapsedMs: number }> {
    const started = Date.now();
    const { code, stdout, stderr } = await promisify(execFile)(process.execPath, [CLI, ...args], {
      encoding: 'utf8',
      timeout: 30_000,
      env: { ...process.env, ...env },
    }).then(
      (done) => ({ code: 0, ...done }),
      (error: { code: number; stdout: string; stderr: string }) => error,
    );
    const output = `${stdout}\n${stderr}`;
    expect(output).not.toMatch(STACK);
    return { code, output, elapsedMs: Date.now() - started };
  }

  async function templateFile(scriptUri: string): Promise<string> {
    const path = join(scratch, 'template.json');
    await writeFile(
      path,
      JSON.stringify(linuxTemplate({ customize: [{ type: 'Shell', name: 'install tools', scriptUri }] })),
    );
    return path;
  }

  it('render: flags bound a download from a silent server, and the message says what happened', async () => {
    const server = await serve(neverAnswer);
    const template = await templateFile(`${server.url}/setup.sh?sig=SECRETSIGNATURE`);
    const { code, output, elapsedMs } = await isobuild([
      'render',
      template,
      '--out',
      join(scratch, 'out'),
      '--download-stall-timeout',
      '300ms',
      '--download-timeout',
      '1s',
      '--download-total-timeout',
      '2s',
    ]);
    expect(code).toBe(3);
    expect(elapsedMs).toBeLessThan(6000);
    expect(output).toContain(
      `properties.customize[0].scriptUri: Shell step "install tools": cannot fetch ${server.url}/setup.sh?<query hidden>: ${hostOf(server.url)} accepted the connection but sent no response within 300 ms`,
    );
    expect(output).toContain('past the 2 s total download deadline');
    expect(output).not.toContain('SECRET');
  });

  it('render: the same from ISOBUILD_DOWNLOAD_* variables', async () => {
    const server = await serve(neverAnswer);
    const template = await templateFile(`${server.url}/setup.sh`);
    const { code, output, elapsedMs } = await isobuild(['render', template, '--out', join(scratch, 'out')], {
      ISOBUILD_DOWNLOAD_STALL_TIMEOUT: '300ms',
      ISOBUILD_DOWNLOAD_TIMEOUT: '1s',
      ISOBUILD_DOWNLOAD_TOTAL_TIMEOUT: '2s',
    });
    expect(code).toBe(3);
    expect(elapsedMs).toBeLessThan(6000);
    expect(output).toContain('sent no response within 300 ms');
    expect(output).toContain('2 s total download deadline');
  });

  it('build: flags and variables bound the download before the VM is contacted', async () => {
    const server = await serve(drip(Buffer.from(SCRIPT), 1000));
    const template = await templateFile(`${server.url}/setup.sh`);
    const vmPort = new URL(await closedPortUrl()).port;
    const { code, output, elapsedMs } = await isobuild(
      [
        'build',
        template,
        '--host',
        '127.0.0.1',
        '--port',
        vmPort,
        '--local-logs-only',
        '--work-dir',
        join(scratch, 'runs'),
        '--download-timeout',
        '1500ms',
        '--download-total-timeout',
        '2s',
      ],
      { ISOBUILD_DOWNLOAD_STALL_TIMEOUT: '10s' },
    );
    expect(code).toBe(3);
    expect(elapsedMs).toBeLessThan(8000);
    expect(output).toContain(`Shell step "install tools": cannot fetch ${server.url}/setup.sh:`);
    expect(output).toContain('the attempt did not finish within 1.5 s');
    expect(output).toContain('2 s total download deadline');
  });

  it.each([
    [['--download-timeout', '0s'], {}, '--download-timeout: "0s" is too short'],
    [
      [],
      { ISOBUILD_DOWNLOAD_TOTAL_TIMEOUT: 'soon' },
      'ISOBUILD_DOWNLOAD_TOTAL_TIMEOUT: "soon" is not a duration',
    ],
  ])('render and build reject %j %j as a usage error', async (args, env, message) => {
    const template = await templateFile('https://example.invalid/never-fetched.sh');
    const render = await isobuild(['render', template, '--out', join(scratch, 'out'), ...args], env);
    const build = await isobuild(
      ['build', template, '--host', '127.0.0.1', '--local-logs-only', ...args],
      env,
    );
    for (const run of [render, build]) {
      expect(run.code).toBe(2);
      expect(run.output).toContain(message);
    }
  });

  it('render follows https with a trusted CA, and refuses a redirect from https down to http', async () => {
    const plain = await serve(serveScript());
    const secure = await serve(
      (request, response, index) =>
        request.url === '/setup.sh'
          ? serveScript()(request, response, index)
          : redirect(`${plain.url}/setup.sh`)(request, response, index),
      { tls: true },
    );
    const ca = join(scratch, 'ca.pem');
    await writeFile(ca, secure.certificate!);
    const trusted = { NODE_EXTRA_CA_CERTS: ca };

    const ok = await isobuild(
      ['render', await templateFile(`${secure.url}/setup.sh`), '--out', join(scratch, 'ok')],
      trusted,
    );
    expect(ok.code).toBe(0);
    expect(await readFile(join(scratch, 'ok', 'artifacts', 'customize-00-install_tools.sh'), 'utf8')).toBe(
      SCRIPT,
    );

    const down = await isobuild(
      ['render', await templateFile(`${secure.url}/moved.sh`), '--out', join(scratch, 'down')],
      trusted,
    );
    expect(down.code).toBe(3);
    expect(down.output).toContain(
      `${secure.url}/moved.sh redirected from https down to ${plain.url}/setup.sh, which isobuild never follows; a retry cannot fix this`,
    );
    expect(plain.requests).toHaveLength(0);
    expect(secure.requests.map((request) => request.url)).toEqual(['/setup.sh', '/moved.sh']);
  });

  it.each(['render', 'build'])('%s --help lists the download settings', async (command) => {
    const { code, output } = await isobuild([command, '--help']);
    expect(code).toBe(0);
    for (const name of ['--download-timeout', '--download-stall-timeout', '--download-total-timeout'])
      expect(output).toContain(name);
    expect(output).toContain('ISOBUILD_DOWNLOAD_TOTAL_TIMEOUT');
  });
});
