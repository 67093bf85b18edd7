/**
 * The validate phase: the in-VM validators in one Packer run. With continueDistributeOnFailure a failed
 * validation does not stop the run, but still decides it (AIB reports the run Failed).
 */
import { VALIDATION_FILE, stepTag } from '../../packer-contract.js';
import { StepFailed } from '../failure-messages.js';
import { anyLeftToRun, cleanUpAfterPacker, runPackerSteps } from '../packer-steps.js';
import type { Phase } from '../phase-runner.js';
import type { RunContext } from '../run-context.js';

export const validatePhase: Phase<RunContext> = {
  name: 'validate',
  skip: (run) =>
    !run.renderedFiles?.includes(VALIDATION_FILE) ||
    !anyLeftToRun(
      run,
      run.template.validate.inVMValidations.map((s) => s.path),
    ),
  async run(run, signal) {
    await run.update({ runSubState: 'Validating', message: 'running in-VM validations' });
    const validation = run.template.validate;
    try {
      await runPackerSteps(
        run,
        {
          file: VALIDATION_FILE,
          kind: 'validator',
          steps: run.status.validators,
          tags: validation.inVMValidations.map((s) => stepTag('validation', s.index)),
          log: run.logs.validation,
          onError: run.template.errorHandling.onValidationError,
        },
        signal,
      );
    } catch (error) {
      if (!(error instanceof StepFailed) || !validation.continueDistributeOnFailure) throw error;
      // The VM is cleaned up now, before the deprovision step changes it.
      await cleanUpAfterPacker(run, run.logs.validation);
      run.deferredFailure = error;
      run.unfinished = undefined; // the failure keeps its own copy: a later stop must not name this step
    }
  },
  cleanup: (run) => cleanUpAfterPacker(run, run.logs.validation),
};
