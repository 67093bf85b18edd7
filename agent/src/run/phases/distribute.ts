/** The distribute phase: isobuild captures no image, so every distribution target is reported as skipped. */
import type { Phase } from '../phase-runner.js';
import type { RunContext } from '../run-context.js';

export const distributePhase: Phase<RunContext> = {
  name: 'distribute',
  reportsOnly: true, // after the last step, a late stop changes nothing on the VM
  async run(run) {
    await run.update({
      runSubState: 'Distributing',
      message: 'distribution targets are skipped (isobuild captures no image)',
    });
    for (const target of run.status.distribute)
      run.progress.phase(
        `distribute ${target.type} ${JSON.stringify(target.runOutputName)}`,
        'skipped',
        `(${target.reason})`,
      );
  },
};
