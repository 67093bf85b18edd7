/**
 * The prepare phase: every input is checked before anything is created, downloaded or contacted: the work
 * directory, the template, the path to the VM and its credentials (the proxy host, the key file, the
 * WinRM password), and where a resumed run starts. It runs before the run is opened, so that bad input (exit 2 or 4) leaves nothing
 * behind and the run id stays unused.
 */
import { detectPacker } from '../../packer/packer-version.js';
import { loadSsh2 } from '../../readiness/load-ssh2.js';
import { loadTemplate } from '../../template/load-template.js';
import { resolveVmPath } from '../../vm-path/vm-path.js';
import { cancelledBeforeStart } from '../failure-messages.js';
import { deprovisions } from '../open-run.js';
import { orderedSteps, planResume } from '../resume-plan.js';
import type { BuildOptions, PreparedRun } from '../run-context.js';
import { prepareWorkDir } from '../work-dir.js';
import { join } from 'node:path';

export async function prepareRun(options: BuildOptions): Promise<PreparedRun> {
  const { config } = options;
  // `packer version` runs while the template loads and ssh2 initialises (they overlap on I/O).
  const packer = detectPacker(config.packerPath, options.signal);
  packer.catch(() => undefined); // awaited (and reported) by the render phase; never an unhandled rejection
  void loadSsh2();
  await prepareWorkDir(config.workDir);
  const loaded = await loadTemplate(options.templateFile, options.load);
  const vmPath = resolveVmPath(config, loaded.template);
  const steps = orderedSteps(loaded.template, deprovisions({ config, template: loaded.template }));
  const plan = planResume(loaded.template, config, steps, options.previous, options.fromStep);
  if (options.signal.aborted) throw cancelledBeforeStart(config.runId);
  return {
    sources: loaded.digests, // the provenance record names the input files by sha256
    ...(plan ? { plan } : {}),
    options,
    config,
    template: loaded.template,
    warnings: loaded.warnings,
    vmPath,
    runDir: join(config.workDir, config.runId),
    packer,
  };
}
