/**
 * Fetches every artifact a template references (scriptUri, sourceUri) into one directory and verifies
 * each sha256Checksum before anything else happens. All failures are reported together, each naming
 * its customizer, so one run tells the user everything that is wrong.
 */
import { rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { IsobuildError, type Problem } from '../errors.js';
import { hideUrlSecrets } from '../hide-query.js';
import { maskSecrets } from '../mask-secrets.js';
import type { ImageTemplate, Step } from '../template/model.js';
import { DownloadError, downloadArtifact, type DownloadLimits, type TokenProvider } from './download.js';
import { rewriteUri, type UriRewrite } from './rewrite-uri.js';

/** AIB recommends File customizers stay under 20 MB (aib-reference §1.5). */
export const FILE_WARNING_BYTES = 20 * 1024 * 1024;
const CONCURRENCY = 4;

export interface ArtifactRecord {
  readonly stepPath: string;
  readonly stepName: string;
  /** The URL from the template, with any query string (SAS) hidden. */
  readonly uri: string;
  /** The URL actually fetched after --rewrite-uri, query hidden; equal to uri when not rewritten. */
  readonly fetchedFrom: string;
  /** File name inside the artifacts directory. */
  readonly file: string;
  readonly sha256: string;
  readonly bytes: number;
  readonly checksumVerified: boolean;
}

export interface FetchArtifactsOptions {
  readonly directory: string;
  readonly rewrites?: readonly UriRewrite[];
  readonly limits?: Partial<DownloadLimits>;
  readonly blobToken?: TokenProvider;
  readonly signal?: AbortSignal;
  readonly onProgress?: (message: string) => void;
  /** Warn about File steps over AIB's 20 MB advice (default true). */
  readonly warnLargeFiles?: boolean;
}

export interface FetchedArtifacts {
  /** Keyed by step path (e.g. properties.customize[0]). */
  readonly byStep: ReadonlyMap<string, ArtifactRecord>;
  readonly warnings: readonly Problem[];
}

interface Job {
  readonly step: Step;
  readonly kind: 'customize' | 'validate';
  readonly uri: string;
  readonly field: 'scriptUri' | 'sourceUri';
  readonly expected: string;
  readonly file: string;
}

export async function fetchArtifacts(
  template: ImageTemplate,
  options: FetchArtifactsOptions,
): Promise<FetchedArtifacts> {
  const jobs = [
    ...template.customize.flatMap((step) => jobFor(step, 'customize', template.secureValues)),
    ...template.validate.inVMValidations.flatMap((step) => jobFor(step, 'validate', template.secureValues)),
  ];
  const byStep = new Map<string, ArtifactRecord>();
  const warnings: Problem[] = [];
  const failures: Problem[] = [];
  const queue = [...jobs];
  const worker = async (): Promise<void> => {
    for (let job = queue.shift(); job; job = queue.shift()) {
      try {
        const record = await fetchOne(job, options);
        byStep.set(job.step.path, record);
        if (!record.checksumVerified) {
          warnings.push({
            severity: 'warning',
            path: `${job.step.path}.sha256Checksum`,
            message: `${label(job.step)} has no sha256Checksum, so its content is not pinned; the downloaded file has sha256 ${record.sha256}. Add "sha256Checksum": "${record.sha256}" to pin it.`,
          });
        }
        if (
          job.step.type === 'File' &&
          record.bytes > FILE_WARNING_BYTES &&
          options.warnLargeFiles !== false
        ) {
          warnings.push({
            severity: 'warning',
            path: `${job.step.path}.sourceUri`,
            message: `${label(job.step)} copies ${(record.bytes / 1024 / 1024).toFixed(1)} MB; AIB recommends File steps stay under 20 MB (download big files from a script instead).`,
          });
        }
      } catch (error) {
        if (options.signal?.aborted) throw options.signal.reason;
        if (error instanceof IsobuildError) failures.push(...error.problems);
        else if (error instanceof DownloadError)
          failures.push(downloadProblem(job, error, options.rewrites ?? []));
        else throw error;
      }
    }
  };
  // Wait for every worker, even after one fails (e.g. on abort), so no download is still writing its
  // partial file when the caller sees the error.
  const settled = await Promise.allSettled(
    Array.from({ length: Math.min(CONCURRENCY, jobs.length) }, worker),
  );
  const rejected = settled.find((outcome) => outcome.status === 'rejected');
  if (rejected) throw rejected.reason;
  if (failures.length > 0) {
    failures.sort((a, b) => a.path.localeCompare(b.path, 'en', { numeric: true }));
    throw new IsobuildError(
      'artifactFailed',
      `${failures.length} artifact${failures.length === 1 ? '' : 's'} could not be fetched or verified; nothing else was done.`,
      {
        problems: failures,
      },
    );
  }
  return { byStep, warnings };
}

/** File names come from step names and URLs, which may hold securestring values: those are masked first. */
function jobFor(step: Step, kind: 'customize' | 'validate', secrets: readonly string[]): Job[] {
  const prefix = `${kind}-${String(step.index).padStart(2, '0')}`;
  if ((step.type === 'Shell' || step.type === 'PowerShell') && step.scriptUri) {
    const ext = step.type === 'Shell' ? 'sh' : 'ps1';
    return [
      {
        step,
        kind,
        uri: step.scriptUri,
        field: 'scriptUri',
        expected: step.sha256Checksum,
        file: `${prefix}-${safeName(maskSecrets(step.name, secrets))}.${ext}`,
      },
    ];
  }
  if (step.type === 'File') {
    const base = new URL(step.sourceUri).pathname.split('/').pop() || 'file';
    return [
      {
        step,
        kind,
        uri: step.sourceUri,
        field: 'sourceUri',
        expected: step.sha256Checksum,
        file: `${prefix}-${safeName(maskSecrets(decodeURIComponentSafe(base), secrets))}`,
      },
    ];
  }
  return [];
}

async function fetchOne(job: Job, options: FetchArtifactsOptions): Promise<ArtifactRecord> {
  const target = rewriteUri(job.uri, options.rewrites ?? []);
  const final = join(options.directory, job.file);
  const partial = `${final}.partial`;
  options.onProgress?.(`fetching ${hideUrlSecrets(target)} for ${label(job.step)}`);
  const result = await downloadArtifact(target, partial, {
    limits: options.limits,
    signal: options.signal,
    blobToken: options.blobToken,
    onRetry: (attempt, error, delayMs) =>
      options.onProgress?.(
        `attempt ${attempt} for ${label(job.step)} failed (${error.message}); retrying in ${delayMs} ms`,
      ),
  });
  const expected = job.expected.toLowerCase();
  if (expected !== '' && expected !== result.sha256) {
    await rm(partial, { force: true });
    throw new IsobuildError('artifactFailed', 'checksum mismatch', {
      problems: [
        {
          severity: 'error',
          path: `${job.step.path}.sha256Checksum`,
          message: `${label(job.step)}: the file at ${hideUrlSecrets(target)} has sha256 ${result.sha256}, but the template expects ${expected}. The artifact changed or the checksum is wrong; it was not used.`,
        },
      ],
    });
  }
  await rename(partial, final);
  return {
    stepPath: job.step.path,
    stepName: job.step.name,
    uri: hideUrlSecrets(job.uri),
    fetchedFrom: hideUrlSecrets(target),
    file: job.file,
    sha256: result.sha256,
    bytes: result.bytes,
    checksumVerified: expected !== '',
  };
}

function downloadProblem(job: Job, error: DownloadError, rewrites: readonly UriRewrite[]): Problem {
  const target = rewriteUri(job.uri, rewrites);
  const via = target !== job.uri ? ` (rewritten to ${hideUrlSecrets(target)})` : '';
  return {
    severity: 'error',
    path: `${job.step.path}.${job.field}`,
    // The download's message already says what happened, how many attempts over how long, and what to do.
    message: `${label(job.step)}: cannot fetch ${hideUrlSecrets(job.uri)}${via}: ${error.message.replace(/[^.]$/, '$&.')}`,
  };
}

function label(step: Step): string {
  return `${step.type} step ${JSON.stringify(step.name)}`;
}

function safeName(name: string): string {
  return (
    name
      .replace(/[^A-Za-z0-9._-]+/g, '_')
      .replace(/^[._]+/, '')
      .slice(0, 60) || 'artifact'
  );
}

function decodeURIComponentSafe(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
