/**
 * The render phase: fetch and verify every artifact and write the Packer files, all before any contact
 * with the build VM. Then the run's bundle is archived, and the storage SDK may load.
 */
import { IsobuildError } from '../../errors.js';
import { renderBuild } from '../../render/render-build.js';
import type { Phase } from '../phase-runner.js';
import type { RunContext } from '../run-context.js';

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
      });
      run.renderedFiles = rendered.files;
      run.problems.push(...run.warnings, ...rendered.warnings);
      run.store.bundle(run.runDir, run.config);
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
