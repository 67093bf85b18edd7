/**
 * Renders everything Packer needs for one template into a directory: fetched artifacts,
 * customization.pkr.hcl, validation.pkr.hcl (when there are in-VM validators) and deprovision.pkr.hcl
 * with its script. It works in a scratch directory and swaps it in only when complete, so a failure never leaves a half-written output
 * and never destroys a previous one.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import {
  fetchArtifacts,
  type ArtifactRecord,
  type FetchArtifactsOptions,
} from '../artifacts/fetch-artifacts.js';
import { IsobuildError, type Problem } from '../errors.js';
import { maskSecrets } from '../mask-secrets.js';
import {
  CUSTOMIZATION_FILE,
  STAGED_FILE_MIN_BYTES,
  DEPROVISION_FILE,
  VALIDATION_FILE,
  secureParameterVariable,
  type PackerInfo,
} from '../packer-contract.js';
import type { ImageTemplate, Step } from '../template/model.js';
import { LINUX_DEPROVISION_SCRIPT, WINDOWS_DEPROVISION_SCRIPT } from './deprovision.js';
import { exactTextProblems, inlineScriptText, needsInlineScriptFile } from './exact-text-guard.js';
import type { SecretReference } from './hcl.js';
import {
  WINDOWS_UPDATE_PLUGIN,
  renderPackerFile,
  renderedProvisioner,
  type RenderedStep,
} from './packer-template.js';

export const ARTIFACTS_DIR = 'artifacts';
export const MANIFEST_FILE = 'isobuild-render.json';

export interface RenderOptions {
  readonly outDir: string;
  readonly sourceLabel: string;
  readonly packer: PackerInfo;
  readonly skipDeprovision?: boolean;
  readonly fetch?: Omit<FetchArtifactsOptions, 'directory' | 'signal'>;
  readonly signal?: AbortSignal;
  /**
   * Steps (by JSON path) left out of the rendered files: a resumed run does not run what an earlier run
   * did. Their artifacts are still fetched and their digests computed, so they can be compared.
   */
  readonly omitSteps?: ReadonlySet<string>;
  /**
   * Windows File steps move a copy that `isobuild build` uploaded itself (staged-file.ts) instead of running
   * Packer's file provisioner; `isobuild render` leaves this off, so its output runs with plain Packer.
   */
  readonly stageWindowsFiles?: boolean;
}

export interface RenderResult {
  readonly outDir: string;
  readonly files: readonly string[];
  readonly artifacts: readonly ArtifactRecord[];
  readonly warnings: readonly Problem[];
  /** Per step (by JSON path): sha256 of its rendered provisioner and of the artifact it runs or uploads. */
  readonly stepDigests: ReadonlyMap<string, string>;
  /** Windows File steps (by JSON path) whose source `isobuild build` must stage before Packer runs. */
  readonly staged: readonly string[];
}

export async function renderBuild(template: ImageTemplate, options: RenderOptions): Promise<RenderResult> {
  checkPackerCanRun(template, options.packer);
  const allSteps = [...template.customize, ...template.validate.inVMValidations];
  const conflicts = exactTextProblems(allSteps, template.secureValues);
  if (conflicts.length > 0) {
    throw new IsobuildError(
      'templateInvalid',
      `${conflicts.length} value(s) cannot be rendered for Packer exactly; nothing was written.`,
      { problems: conflicts },
    );
  }
  const outDir = resolve(options.outDir);
  const replacing = await assertReplaceable(outDir);
  const scratch = join(dirname(outDir), `.${basename(outDir)}.rendering-${process.pid}`);
  try {
    await rm(scratch, { recursive: true, force: true });
    await mkdir(scratch);
    await mkdir(join(scratch, ARTIFACTS_DIR));
  } catch (error) {
    throw outputError(outDir, error);
  }
  try {
    const fetched = await fetchArtifacts(template, {
      ...options.fetch,
      directory: join(scratch, ARTIFACTS_DIR),
      signal: options.signal,
      // AIB's 20 MB advice is about Packer's WinRM file provisioner; isobuild's own upload has no such limit.
      warnLargeFiles: !(options.stageWindowsFiles === true && template.os === 'windows'),
    });
    const secrets: SecretReference[] = template.secureValues.map((value, i) => ({
      value,
      variable: secureParameterVariable(i),
    }));
    const inlineScripts = new Map<string, string>();
    for (const step of allSteps.filter(needsInlineScriptFile)) {
      const name = `${step.path.includes('inVMValidations') ? 'validate' : 'customize'}-${String(step.index).padStart(2, '0')}-inline.${step.type === 'PowerShell' ? 'ps1' : 'sh'}`;
      await writeFile(join(scratch, ARTIFACTS_DIR, name), inlineScriptText(step), { mode: 0o644 });
      inlineScripts.set(step.path, name);
    }
    const staging = options.stageWindowsFiles === true && template.os === 'windows';
    const renderedStep = (step: Step): RenderedStep => {
      const fetchedFile = fetched.byStep.get(step.path);
      const file = fetchedFile?.file ?? inlineScripts.get(step.path);
      if (!file) return { step };
      const artifact = `${ARTIFACTS_DIR}/${file}`;
      return staging && step.type === 'File' && fetchedFile && fetchedFile.bytes >= STAGED_FILE_MIN_BYTES
        ? { step, artifact, staged: { sha256: fetchedFile.sha256 } }
        : { step, artifact };
    };
    const stepsOf = (steps: readonly Step[]): RenderedStep[] =>
      steps.filter((step) => !options.omitSteps?.has(step.path)).map(renderedStep);
    const stepDigests = new Map<string, string>();
    for (const [kind, steps] of [
      ['customization', template.customize],
      ['validation', template.validate.inVMValidations],
    ] as const)
      for (const step of steps) {
        const rendered = renderedStep(step);
        const artifact = rendered.artifact ? await sha256File(join(scratch, rendered.artifact)) : '';
        // Who copied a File step (isobuild or Packer) does not change what it put on the VM: the digest is
        // of Packer's form, so a resume may switch --windows-upload.
        const provisioner = renderedProvisioner(
          { step, ...(rendered.artifact ? { artifact: rendered.artifact } : {}) },
          kind,
          secrets,
        );
        stepDigests.set(step.path, sha256(`${provisioner}\n${artifact}`));
      }

    const files: string[] = [];
    const common = {
      template,
      supportsPlugins: options.packer.supportsPlugins,
      secrets,
      sourceLabel: options.sourceLabel,
    };
    await writeFile(
      join(scratch, CUSTOMIZATION_FILE),
      renderPackerFile({ ...common, kind: 'customization', steps: stepsOf(template.customize) }),
    );
    files.push(CUSTOMIZATION_FILE);
    if (template.validate.inVMValidations.length > 0) {
      await writeFile(
        join(scratch, VALIDATION_FILE),
        renderPackerFile({
          ...common,
          kind: 'validation',
          steps: stepsOf(template.validate.inVMValidations),
        }),
      );
      files.push(VALIDATION_FILE);
    }
    // Deprovisioning runs last, after in-VM validation, so it is a file of its own.
    let deprovisionScript: string | undefined;
    if (!options.skipDeprovision) {
      const name = template.os === 'linux' ? 'isobuild-deprovision.sh' : 'isobuild-deprovision.ps1';
      await writeFile(
        join(scratch, ARTIFACTS_DIR, name),
        template.os === 'linux' ? LINUX_DEPROVISION_SCRIPT : WINDOWS_DEPROVISION_SCRIPT,
      );
      deprovisionScript = `${ARTIFACTS_DIR}/${name}`;
      await writeFile(
        join(scratch, DEPROVISION_FILE),
        renderPackerFile({ ...common, kind: 'deprovision', steps: [], deprovisionScript }),
      );
      files.push(DEPROVISION_FILE);
    }
    const artifacts = [...fetched.byStep.values()].sort((a, b) => a.file.localeCompare(b.file));
    const manifest = {
      renderedBy: 'isobuild',
      source: options.sourceLabel,
      os: template.os,
      apiVersion: template.apiVersion,
      packerVersion: options.packer.version,
      files,
      deprovision: deprovisionScript ?? null,
      artifacts,
    };
    // Step names and URLs may carry securestring values: the manifest is masked like every output.
    await writeFile(
      join(scratch, MANIFEST_FILE),
      `${maskSecrets(JSON.stringify(manifest, null, 2), template.secureValues)}\n`,
    );
    options.signal?.throwIfAborted();
    await swapIn(scratch, outDir, replacing);
    const staged = template.customize.filter((step) => renderedStep(step).staged).map((step) => step.path);
    return { outDir, files, artifacts, warnings: fetched.warnings, stepDigests, staged };
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/** Refuses constructs the installed Packer cannot run, naming the step and what to do. */
function checkPackerCanRun(template: ImageTemplate, packer: PackerInfo): void {
  if (packer.supportsPlugins) return;
  const steps = [...template.customize, ...template.validate.inVMValidations].filter(
    (s) => s.type === 'WindowsUpdate',
  );
  if (steps.length === 0) return;
  throw new IsobuildError(
    'packerUnsupported',
    `this template needs the Packer plugin ${WINDOWS_UPDATE_PLUGIN.source}, which Packer ${packer.version} (${packer.path}) cannot load: external plugins need Packer 1.7 or newer.`,
    {
      problems: steps.map((step) => ({
        severity: 'error' as const,
        path: step.path,
        message: `the WindowsUpdate step ${JSON.stringify(step.name)} runs through the ${WINDOWS_UPDATE_PLUGIN.source} plugin. Install Packer 1.7+ and point --packer at it, or replace the step with a PowerShell step that installs updates.`,
      })),
    },
  );
}

/** What an earlier render leaves in its directory; anything else there belongs to someone else. */
const RENDER_ENTRIES = new Set([
  CUSTOMIZATION_FILE,
  VALIDATION_FILE,
  DEPROVISION_FILE,
  ARTIFACTS_DIR,
  MANIFEST_FILE,
  'packer_cache',
]);

/**
 * The output directory may be replaced only if it is missing, empty, or exactly an earlier isobuild render.
 * Missing parents are created. Returns whether there is an old directory to replace.
 */
async function assertReplaceable(outDir: string): Promise<boolean> {
  const refuse = (why: string): IsobuildError =>
    new IsobuildError(
      'outputUnwritable',
      `${outDir} ${why}; refusing to replace it. Choose an empty or new directory for --out.`,
    );
  // Like mkdir -p: a new user's --out under a directory that does not exist yet just works.
  try {
    await mkdir(dirname(outDir), { recursive: true });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    const why =
      code === 'EEXIST' || code === 'ENOTDIR' ? 'a part of that path is a file' : `${code}: not writable`;
    throw new IsobuildError(
      'outputUnwritable',
      `cannot create the parent of --out, ${dirname(outDir)} (${why}); choose another --out.`,
      { cause: error },
    );
  }
  let entries: string[];
  try {
    const info = await stat(outDir);
    if (!info.isDirectory()) throw refuse('exists and is not a directory');
    entries = await readdir(outDir);
  } catch (error) {
    if (error instanceof IsobuildError) throw error;
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw outputError(outDir, error);
  }
  if (entries.length === 0) return true;
  if (!entries.includes(MANIFEST_FILE) || entries.some((entry) => !RENDER_ENTRIES.has(entry))) {
    throw refuse('is not empty and was not written by isobuild render');
  }
  const manifest = await readFile(join(outDir, MANIFEST_FILE), 'utf8').catch(() => '');
  if (!manifest.includes('"renderedBy": "isobuild"'))
    throw refuse(`has an ${MANIFEST_FILE} that isobuild did not write`);
  return true;
}

/** Replaces the old output only once the new one is complete: old aside, new in, old deleted. */
async function swapIn(scratch: string, outDir: string, replacing: boolean): Promise<void> {
  const old = join(dirname(outDir), `.${basename(outDir)}.old-${process.pid}`);
  try {
    if (replacing) await rename(outDir, old);
    try {
      await rename(scratch, outDir);
    } catch (error) {
      if (replacing) await rename(old, outDir);
      throw error;
    }
    if (replacing) await rm(old, { recursive: true, force: true });
  } catch (error) {
    throw outputError(outDir, error);
  }
}

function outputError(outDir: string, error: unknown): IsobuildError {
  const code = (error as NodeJS.ErrnoException).code ?? 'error';
  return new IsobuildError(
    'outputUnwritable',
    `cannot write the output directory ${outDir} (${code}); check the path and its permissions, or choose another --out.`,
    {
      cause: error,
    },
  );
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

async function sha256File(file: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(file))
    .digest('hex');
}
