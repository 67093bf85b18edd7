/** Where a resumed run starts, what it skips, and when it refuses (templates through the real loader). */
import { describe, expect, it } from 'vitest';
import { loadBuildConfig } from '../../agent/src/settings/build-config.js';
import { firstChangedStep, orderedSteps, planResume } from '../../agent/src/run/resume-plan.js';
import { initialStatus, type RunStatus } from '../../agent/src/run/run-status.js';
import { loadTemplateText } from '../../agent/src/template/load-template.js';
import { linuxTemplate, templateText } from '../helpers/template-builders.js';

const template = loadTemplateText(
  templateText(
    linuxTemplate({
      customize: [
        { type: 'Shell', name: 'one', inline: ['true'] },
        { type: 'Shell', name: 'two', inline: ['true'] },
      ],
      validate: { inVMValidations: [{ type: 'Shell', name: 'check', inline: ['true'] }] },
    }),
  ),
  'template.json',
).template;
const config = loadBuildConfig({ host: '10.0.0.4' }, {});
const steps = orderedSteps(template, true);
const target = { os: 'linux', host: '10.0.0.4', port: 22, topology: 'direct', user: 'packer' } as const;

/** The status a run with these step outcomes (customizers, validators, deprovision) left. */
function previous(outcomes: string[], changes: Partial<RunStatus> = {}): RunStatus {
  const status = initialStatus(
    'old',
    'template.json',
    template,
    { customization: '', validation: '' },
    target,
  );
  const all = [...status.customizers, ...status.validators, status.deprovision];
  all.forEach((step, i) => {
    step.outcome = (outcomes[i] ?? 'pending') as RunStatus['deprovision']['outcome'];
    step.digest = `digest-${i}`;
  });
  return { ...status, runState: 'Failed', ...changes };
}

describe('planResume', () => {
  it('numbers steps as progress does: customizers, validators, the deprovision step', () => {
    expect(steps.map((s) => `${s.position} ${s.label}`)).toEqual([
      '1 Shell "one"',
      '2 Shell "two"',
      '3 Shell "check"',
      '4 Shell "deprovision"',
    ]);
  });

  it('starts at the first step that did not succeed, and says where each skipped step was done', () => {
    const plan = planResume(template, config, steps, previous(['succeeded', 'failed']), undefined)!;
    expect(plan.fromStep).toBe(2);
    expect(plan.skipped.map((s) => [s.position, s.doneIn, s.digest])).toEqual([[1, 'old', 'digest-0']]);
    expect(plan.resumedFrom).toEqual({ runId: 'old', fromStep: 2, step: 'Shell "two"' });
  });

  it('resumes at a failed deprovision step, skipping every customizer and validator', () => {
    const plan = planResume(
      template,
      config,
      steps,
      previous(['succeeded', 'succeeded', 'succeeded', 'failed']),
      undefined,
    )!;
    expect(plan.fromStep).toBe(4);
    expect(plan.skipped).toHaveLength(3);
  });

  it('a chain of resumes keeps the run where a skipped step really ran', () => {
    const old = previous(['skipped', 'failed']);
    old.customizers[0]!.doneIn = 'first';
    const plan = planResume(template, config, steps, old, undefined)!;
    expect(plan.skipped[0]!.doneIn).toBe('first');
    // A step skipped without being done anywhere (--from-step) is not done: the resume starts there.
    const notDone = previous(['skipped', 'succeeded']);
    expect(planResume(template, config, steps, notDone, undefined)!.fromStep).toBe(1);
  });

  it('--from-step takes a number or a unique name, and lists the steps when it matches none', () => {
    expect(planResume(template, config, steps, undefined, '3')!.fromStep).toBe(3);
    expect(planResume(template, config, steps, undefined, 'two')!.fromStep).toBe(2);
    expect(planResume(template, config, steps, undefined, '3')!.skipped.every((s) => !s.doneIn)).toBe(true);
    expect(() => planResume(template, config, steps, undefined, '9')).toThrow(
      /--from-step 9: this build has steps 1 to 4 \(1 Shell "one", 2 Shell "two"/,
    );
    expect(() => planResume(template, config, steps, undefined, 'nope')).toThrow(/no step has that name/);
  });

  it.each([
    [{ runState: 'Succeeded' }, 'it succeeded, so there is nothing to resume'],
    [{ runState: 'Running' }, 'its status still says Running'],
    [{ templateName: 'other' }, 'it built the template "other"'],
    [{ target: { ...target, os: 'windows' } }, 'it built a windows image, and this template is linux'],
    [{ target: { ...target, host: '10.0.0.9' } }, 'it ran on the build VM 10.0.0.9, not 10.0.0.4'],
    [{ target: undefined }, 'it does not record which build VM it used'],
  ] as const)('refuses %j (exit 2)', (changes, message) => {
    const old = previous(['succeeded', 'failed'], changes);
    let thrown: unknown;
    try {
      planResume(template, config, steps, old, undefined);
    } catch (error) {
      thrown = error;
    }
    expect((thrown as Error).message).toContain(`cannot resume run old: ${message}`);
    expect((thrown as { exitCode: number }).exitCode).toBe(2);
  });

  it('finds the first skipped step whose digest changed, unless --from-step said where to start', () => {
    const plan = planResume(
      template,
      config,
      steps,
      previous(['succeeded', 'succeeded', 'failed']),
      undefined,
    )!;
    const digests = new Map(template.customize.map((s, i) => [s.path, `digest-${i}`]));
    expect(firstChangedStep(plan, digests, false)).toBeUndefined();
    digests.set(template.customize[1]!.path, 'edited');
    expect(firstChangedStep(plan, digests, false)?.label).toBe('Shell "two"');
    expect(firstChangedStep(plan, digests, true)).toBeUndefined();
  });
});
