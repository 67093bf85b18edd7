/**
 * The resume check, after rendering and before any contact with the VM: a resumed run may skip only steps
 * that are still what ran in the earlier run (same rendered provisioner, same artifact bytes).
 */
import type { Phase } from '../phase-runner.js';
import type { RunContext } from '../run-context.js';
import { firstChangedStep, stepChanged } from '../resume-plan.js';

export const resumeCheckPhase: Phase<RunContext> = {
  name: 'resume-check',
  run(run) {
    const plan = run.plan;
    if (!plan?.resumedFrom) return Promise.resolve();
    const changed = firstChangedStep(plan, run.stepDigests ?? new Map(), run.options.fromStep !== undefined);
    return changed ? Promise.reject(stepChanged(changed, plan.resumedFrom.runId)) : Promise.resolve();
  },
};
