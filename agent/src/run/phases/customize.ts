/** The customize phase: the template's customizers, in order, in one Packer run (skipped for sourceValidationOnly). */
import { CUSTOMIZATION_FILE, stepTag } from '../../packer-contract.js';
import { anyLeftToRun, cleanUpAfterPacker, runPackerSteps } from '../packer-steps.js';
import type { Phase } from '../phase-runner.js';
import type { RunContext } from '../run-context.js';

export const customizePhase: Phase<RunContext> = {
  name: 'customize',
  // Nothing to customize when only the source is validated, or when a resumed run did it all already.
  skip: (run) =>
    run.template.validate.sourceValidationOnly ||
    !anyLeftToRun(
      run,
      run.template.customize.map((s) => s.path),
    ),
  async run(run, signal) {
    await run.update({ runSubState: 'Customizing', message: 'customizing the build VM' });
    await runPackerSteps(
      run,
      {
        file: CUSTOMIZATION_FILE,
        kind: 'customizer',
        steps: run.status.customizers,
        tags: run.template.customize.map((s) => stepTag('customization', s.index)),
        log: run.logs.customization,
        onError: run.template.errorHandling.onCustomizerError,
      },
      signal,
    );
  },
  cleanup: (run) => cleanUpAfterPacker(run, run.logs.customization),
};
