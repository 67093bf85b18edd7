/**
 * Artifact fetching against real servers: node:http servers and an in-process Azurite, all on 127.0.0.1.
 * Nothing is mocked. No test reaches another address: URLs that must never be fetched point at a closed
 * local port, and the one Azure-hostname test fails inside the injected token provider, before any lookup.
 */
import { createHash } from 'node:crypto';
import { getEventListeners } from 'node:events';
import { mkdir, mkdtemp, readFile, readdir, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  BlobSASPermissions,
  BlobServiceClient,
  StorageSharedKeyCredential,
  generateBlobSASQueryParameters,
} from '@azure/storage-blob';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DownloadError, downloadArtifact } from '../../agent/src/artifacts/download.js';
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
import { startHttpServer, type TestHandler, type TestHttpServer } from '../helpers/http-server.js';

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

beforeEach(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'isobuild-artifacts-'));
  dir = join(scratch, 'artifacts');
  await mkdir(dir);
});

afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()));
  await rm(scratch, { recursive: true, force: true });
});

async function serve(handler: TestHandler): Promise<TestHttpServer> {
  const server = await startHttpServer(handler);
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
    expect(error.problems[0]?.message).toContain('the connection was refused (ECONNREFUSED)');
    expect(error.problems[0]?.message).toContain('after 2 attempts');
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
    expect(error.problems[0]?.message).toMatch(/stalled: no data for 0\.2 s after 12 bytes/);
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
    expect(error.problems[0]?.message).toContain('no response within 0.3 s');
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
    expect(error.problems[0]?.message).toContain('did not finish within 0.3 s');
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
