/**
 * Where a run starts when it continues an earlier one (`--resume RUN_ID`) or is told where to start
 * (`--from-step N`): which steps it skips, and what it must check before it may skip them. A resumed run
 * refuses when the earlier run succeeded, was for another template, OS or VM, or (after rendering) when a
 * step it would skip is no longer what ran there.
 */
import { IsobuildError } from '../errors.js';
import type { BuildConfig } from '../settings/build-config.js';
import type { ImageTemplate } from '../template/model.js';
import type { ResumedFrom, RunStatus, StepResult } from './run-status.js';
import type { StepKind } from './run-context.js';

/** One step in the order a build runs them, numbered as progress and `validate` number them (from 1). */
export interface PlannedStep {
  readonly position: number;
  readonly kind: StepKind;
  readonly index: number;
  /** The step's JSON path in the template ('deprovision' for AIB's deprovision step). */
  readonly path: string;
  /** `Shell "install nginx"`, as progress lines say it. */
  readonly label: string;
  readonly name: string;
}

export interface ResumePlan {
  /** The first step this run runs (1-based), and which it is (none when nothing is left to run). */
  readonly fromStep: number;
  readonly start?: PlannedStep;
  /** Steps before it: skipped, with the run they were done in (none for --from-step without --resume). */
  readonly skipped: readonly (PlannedStep & { readonly doneIn?: string; readonly digest?: string })[];
  readonly resumedFrom?: ResumedFrom;
}

/** Every step of a build in order: customizers (unless only the source is validated), validators, deprovision. */
export function orderedSteps(template: ImageTemplate, deprovisions: boolean): PlannedStep[] {
  const steps: Omit<PlannedStep, 'position'>[] = [
    ...(template.validate.sourceValidationOnly ? [] : template.customize).map((s) => ({
      kind: 'customizer' as const,
      index: s.index,
      path: s.path,
      label: `${s.type} ${JSON.stringify(s.name)}`,
      name: s.name,
    })),
    ...template.validate.inVMValidations.map((s) => ({
      kind: 'validator' as const,
      index: s.index,
      path: s.path,
      label: `${s.type} ${JSON.stringify(s.name)}`,
      name: s.name,
    })),
    ...(deprovisions
      ? [
          {
            kind: 'deprovision step' as const,
            index: 0,
            path: 'deprovision',
            label: `${template.os === 'linux' ? 'Shell' : 'PowerShell'} "deprovision"`,
            name: 'deprovision',
          },
        ]
      : []),
  ];
  return steps.map((step, i) => ({ ...step, position: i + 1 }));
}

/**
 * The plan for `--resume` and/or `--from-step`; undefined for a fresh build.
 * @throws IsobuildError 'usage' (exit 2) saying why the run cannot continue and what to do instead.
 */
export function planResume(
  template: ImageTemplate,
  config: BuildConfig,
  steps: readonly PlannedStep[],
  previous: RunStatus | undefined,
  fromStepText: string | undefined,
): ResumePlan | undefined {
  if (!previous && fromStepText === undefined) return undefined;
  if (previous) checkSameBuild(previous, template, config);
  const fromStep =
    fromStepText !== undefined ? parseFromStep(fromStepText, steps) : firstUnfinished(previous!, steps);
  const skipped = steps
    .filter((step) => step.position < fromStep)
    .map((step) => {
      const recorded = previous ? recordedStep(previous, step) : undefined;
      const doneIn = previous ? (recorded?.doneIn ?? previous.runId) : undefined;
      return {
        ...step,
        ...(doneIn ? { doneIn } : {}),
        ...(recorded?.digest ? { digest: recorded.digest } : {}),
      };
    });
  const start = steps[fromStep - 1];
  return {
    fromStep,
    ...(start ? { start } : {}),
    skipped,
    ...(previous
      ? { resumedFrom: { runId: previous.runId, fromStep, step: start ? start.label : 'the end' } }
      : {}),
  };
}

/**
 * The first skipped step whose digest differs from the one recorded in the earlier run (only when the
 * resume point came from that run: --from-step says the VM is known to be right).
 */
export function firstChangedStep(
  plan: ResumePlan,
  digests: ReadonlyMap<string, string>,
  fromStepGiven: boolean,
): PlannedStep | undefined {
  if (!plan.resumedFrom || fromStepGiven) return undefined;
  return plan.skipped.find(
    (step) => step.kind !== 'deprovision step' && step.digest !== digests.get(step.path),
  );
}

/** The error a resumed run ends with when an earlier step changed. */
export function stepChanged(step: PlannedStep, previousRunId: string): IsobuildError {
  return new IsobuildError(
    'usage',
    `cannot resume run ${previousRunId}: step ${step.position} ${step.label} changed since it ran there (its rendered provisioner or its artifact differs), so the VM may not be in the state this template expects. Undo the change, or pass --from-step ${step.position} to run again from there (or --from-step 1 for everything).`,
  );
}

function checkSameBuild(previous: RunStatus, template: ImageTemplate, config: BuildConfig): void {
  const refuse = (why: string, what: string): never => {
    throw new IsobuildError('usage', `cannot resume run ${previous.runId}: ${why}. ${what}`);
  };
  const fresh = 'Start a new build (without --resume).';
  if (previous.runState === 'Succeeded') refuse('it succeeded, so there is nothing to resume', fresh);
  if (previous.runState === 'Running')
    refuse(
      'its status still says Running (it is running, or was killed before it could record its end)',
      'Wait for it to end, or pass --from-step N to say where to start on this VM.',
    );
  const target = previous.target;
  if (!target)
    refuse(
      'it does not record which build VM it used (an older isobuild wrote it)',
      'Pass --from-step N without --resume to start there on a VM you know is in the right state.',
    );
  if ((previous.templateName ?? '') !== (template.name ?? ''))
    refuse(`it built the template "${previous.templateName ?? ''}", not "${template.name ?? ''}"`, fresh);
  if (target!.os !== template.os)
    refuse(`it built a ${target!.os} image, and this template is ${template.os}`, fresh);
  if (target!.host !== config.host)
    refuse(
      `it ran on the build VM ${target!.host}, not ${config.host}`,
      `Resume on the VM that run left in its state (--host ${target!.host}), or start a new build.`,
    );
}

/** The first step the earlier run did not finish (skipped steps done in a run before count as done). */
function firstUnfinished(previous: RunStatus, steps: readonly PlannedStep[]): number {
  const unfinished = steps.find((step) => {
    const recorded = recordedStep(previous, step);
    return (
      !recorded || !(recorded.outcome === 'succeeded' || (recorded.outcome === 'skipped' && recorded.doneIn))
    );
  });
  return unfinished?.position ?? steps.length + 1;
}

function recordedStep(previous: RunStatus, step: PlannedStep): StepResult | undefined {
  if (step.kind === 'deprovision step') return previous.deprovision;
  const list = step.kind === 'customizer' ? previous.customizers : previous.validators;
  return list?.find((recorded) => recorded.index === step.index);
}

/** `--from-step 3` or `--from-step "install nginx"`: a position as progress counts, or a step's name. */
function parseFromStep(text: string, steps: readonly PlannedStep[]): number {
  const listing = steps.map((s) => `${s.position} ${s.label}`).join(', ');
  if (/^\d+$/.test(text)) {
    const position = Number(text);
    if (position >= 1 && position <= steps.length) return position;
    throw new IsobuildError(
      'usage',
      `--from-step ${text}: this build has steps 1 to ${steps.length} (${listing}).`,
    );
  }
  const named = steps.filter((s) => s.name === text);
  if (named.length === 1) return named[0]!.position;
  throw new IsobuildError(
    'usage',
    named.length === 0
      ? `--from-step "${text}": no step has that name. Steps: ${listing}.`
      : `--from-step "${text}": ${named.length} steps have that name; give the number instead (${named.map((s) => s.position).join(' or ')}).`,
  );
}
