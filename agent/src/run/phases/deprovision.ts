/** The deprovision phase: AIB's generalisation step (waagent / sysprep), unless it is skipped. */
import { DEPROVISION_FILE, DEPROVISION_TAG } from '../../packer-contract.js';
import { deprovisions } from '../open-run.js';
import { anyLeftToRun, cleanUpAfterPacker, runPackerSteps } from '../packer-steps.js';
import type { Phase } from '../phase-runner.js';
import type { RunContext } from '../run-context.js';

export const deprovisionPhase: Phase<RunContext> = {
  name: 'deprovision',
  // Skipped (and recorded so) without AIB's deprovision step; passed over when a resumed run did it.
  skip(run) {
    if (!deprovisions(run) || !run.renderedFiles?.includes(DEPROVISION_FILE)) {
      run.status.deprovision.outcome = 'skipped';
      return true;
    }
    return !anyLeftToRun(run, ['deprovision']);
  },
  async run(run, signal) {
    await runPackerSteps(
      run,
      {
        file: DEPROVISION_FILE,
        kind: 'deprovision step',
        steps: [run.status.deprovision],
        tags: [DEPROVISION_TAG],
        log: run.logs.customization,
        onError: run.template.errorHandling.onCustomizerError,
      },
      signal,
    );
  },
  cleanup: (run) => cleanUpAfterPacker(run, run.logs.customization),
};
