/**
 * The render phase: fetch and verify every artifact and write the Packer files, all before any contact
 * with the build VM. Then the run's bundle is archived, and the storage SDK may load.
 */
import { IsobuildError } from '../../errors.js';
import { renderBuild } from '../../render/render-build.js';
import type { Phase } from '../phase-runner.js';
import type { RunContext } from '../run-context.js';

/** Each step's digest goes into status.json, where a later --resume compares it. */
function recordDigests(run: RunContext, digests: ReadonlyMap<string, string>): void {
  const { customize, validate } = run.template;
  customize.forEach((step, i) => setDigest(run.status.customizers[i], digests.get(step.path)));
  validate.inVMValidations.forEach((step, i) => setDigest(run.status.validators[i], digests.get(step.path)));
}

function setDigest(step: { digest?: string } | undefined, digest: string | undefined): void {
  if (step && digest) step.digest = digest;
}

const LABEL = 'fetch artifacts and render Packer files';

export const renderPhase: Phase<RunContext> = {
  name: 'render',
  async run(run, signal) {
    try {
      const packer = await run.packer;
      const rendered = await renderBuild(run.template, {
        outDir: run.packerDir,
        sourceLabel: run.options.templateFile,
        packer,
        skipDeprovision: run.config.skipDeprovision,
        fetch: {
          rewrites: run.config.rewrites,
          limits: run.config.downloadDeadlines,
          onProgress: (line) => run.logs.customization.write('ISOBUILD', line),
        },
        signal,
        omitSteps: new Set(run.plan?.skipped.map((step) => step.path)),
        stageWindowsFiles: run.config.windowsUpload === 'isobuild',
      });
      run.renderedFiles = rendered.files;
      run.stepDigests = rendered.stepDigests;
      run.artifacts = rendered.artifacts;
      run.stagedPaths = rendered.staged.filter(
        (path) => !run.plan?.skipped.some((step) => step.path === path),
      );
      recordDigests(run, rendered.stepDigests);
      run.problems.push(...run.warnings, ...rendered.warnings);
      void run.store.bundle(run.runDir, run.config);
      run.allowStoreLoad(); // the CPU-heavy work is done: the SDK loads while the VM is probed
      run.progress.phase(LABEL, 'ok', `(${rendered.artifacts.length} artifact(s), Packer ${packer.version})`);
    } catch (error) {
      if (!signal.aborted && error instanceof IsobuildError) {
        run.problems.push(...error.problems);
        run.progress.phase(LABEL, 'failed');
      }
      throw error;
    }
  },
};
