/**
 * The run state of a build, modelled on AIB's lastRunStatus (runState, runSubState, message, times)
 * plus a result per customizer, validator and distribution target. Kept in status.json in the run
 * directory and rewritten atomically on every change, so a reader never sees half a file.
 */
import { rename, writeFile } from 'node:fs/promises';
import type { ImageTemplate, Step } from '../template/model.js';

export type RunState = 'Running' | 'Succeeded' | 'PartiallySucceeded' | 'Failed' | 'Canceled';
export type RunSubState = 'Queued' | 'Building' | 'Customizing' | 'Validating' | 'Distributing';
export type StepOutcome =
  'pending' | 'running' | 'succeeded' | 'failed' | 'canceled' | 'timedOut' | 'skipped';

export interface StepResult {
  readonly index: number;
  readonly name: string;
  readonly type: string;
  outcome: StepOutcome;
  startTime?: string;
  endTime?: string;
  durationMs?: number;
  /** sha256 of what the step runs (its rendered provisioner and its artifact): a resume compares it. */
  digest?: string;
  /** Set on a step a resumed run skipped: the run in which it succeeded. */
  doneIn?: string;
}

/** How the run reached its build VM (no credentials): `isobuild shell` and `--resume` go the same way. */
export interface RunTarget {
  readonly os: 'linux' | 'windows';
  readonly host: string;
  readonly port: number;
  readonly topology: 'direct' | 'proxy';
  readonly proxyHost?: string;
  readonly user: string;
}

/** The run a resumed run continues, and the step (1-based, as progress counts) it starts from. */
export interface ResumedFrom {
  readonly runId: string;
  readonly fromStep: number;
  readonly step: string;
}

export interface RunStatus {
  readonly runId: string;
  readonly template: string;
  /** The image template's own name (ARM resource name), when it has one. */
  readonly templateName?: string;
  readonly target?: RunTarget;
  resumedFrom?: ResumedFrom;
  runState: RunState;
  runSubState: RunSubState;
  message: string;
  readonly startTime: string;
  endTime?: string;
  readonly customizers: StepResult[];
  readonly validators: StepResult[];
  readonly deprovision: StepResult;
  readonly distribute: { runOutputName: string; type: string; outcome: 'skipped'; reason: string }[];
  readonly logs: { customization: string; validation: string };
  /** The run's blobs in the log store, once it is open; `state` says whether they are complete. */
  logStore?: LogStoreStatus;
  /** The software inventory and SBOM of the customized VM (off with --no-sbom). */
  sbom: SbomStatus;
  /** The provenance record (provenance.json in the run directory), written when the run ends. */
  provenance?: ProvenanceStatus;
}

/** written (file says where), or failed (detail says why; the build's outcome does not change). */
export interface ProvenanceStatus {
  readonly state: 'written' | 'failed';
  readonly file?: string;
  readonly detail?: string;
}

/** Package changes between the source image and the customized VM. */
export interface PackageChanges {
  readonly added: number;
  readonly removed: number;
  readonly upgraded: number;
  readonly downgraded: number;
  readonly unchanged?: number;
  /** The OS's name, version or build changed (an in-place upgrade). */
  readonly osChanged?: boolean;
}

/**
 * pending until the last step that changes the VM is done; collected (file says where); failed (detail says
 * why: a failure to collect never fails the build); off (--no-sbom); not collected (the run ended first).
 */
export interface SbomStatus {
  state: 'pending' | 'collected' | 'failed' | 'off' | 'not collected';
  /** sbom.cdx.json in the run directory. */
  file?: string;
  packages?: number;
  /** What the customization changed, against the baseline. */
  changes?: PackageChanges;
  /** Where the inventory before customizing came from: this run, an earlier run it resumes, or none. */
  baseline?: { readonly source: 'collected' | 'earlier run' | 'unavailable'; readonly detail?: string };
  detail?: string;
}

export interface LogStoreStatus {
  customization: string;
  validation: string;
  status: string;
  bundle: string;
  /** The SBOM, the inventory before customizing and the provenance record, when the run wrote them. */
  sbom?: string;
  baseline?: string;
  provenance?: string;
  /**
   * streaming while the build runs; uploading once it has ended and its last lines are on their way;
   * stored (every byte confirmed) or incomplete at the end; unavailable if the store never opened.
   */
  state: 'streaming' | 'uploading' | 'stored' | 'incomplete' | 'unavailable';
  detail?: string;
  /** Once the run has ended: each log's size as written locally, which a complete stored log matches. */
  written?: { customization: number; validation: number };
  /** Until the status is final: a newer one is stored by then, unless the build stopped or lost the store. */
  refreshBy?: string;
}

export function initialStatus(
  runId: string,
  templateLabel: string,
  template: ImageTemplate,
  logs: RunStatus['logs'],
  target?: RunTarget,
  sbom = true,
): RunStatus {
  const step = (s: Step): StepResult => ({ index: s.index, name: s.name, type: s.type, outcome: 'pending' });
  return {
    runId,
    template: templateLabel,
    ...(template.name ? { templateName: template.name } : {}),
    ...(target ? { target } : {}),
    runState: 'Running',
    runSubState: 'Queued',
    message: 'queued',
    startTime: new Date().toISOString(),
    customizers: template.customize.map(step),
    validators: template.validate.inVMValidations.map(step),
    deprovision: {
      index: 0,
      name: 'deprovision',
      type: template.os === 'linux' ? 'Shell' : 'PowerShell',
      outcome: 'pending',
    },
    distribute: template.distribute.map((d) => ({
      runOutputName: d.runOutputName,
      type: d.type,
      outcome: 'skipped',
      reason:
        'isobuild customizes an existing build VM and captures no image; distribute it with your own pipeline',
    })),
    logs,
    sbom: { state: sbom ? 'pending' : 'off' },
  };
}

export function startStep(step: StepResult): void {
  step.outcome = 'running';
  step.startTime = new Date().toISOString();
}

export function endStep(step: StepResult, outcome: StepOutcome): void {
  if (step.outcome !== 'running') return;
  step.outcome = outcome;
  step.endTime = new Date().toISOString();
  step.durationMs = Date.parse(step.endTime) - Date.parse(step.startTime ?? step.endTime);
}

/** Writes status.json atomically; writes are serialised so the file always holds the latest state. */
export class StatusFile {
  private pending: Promise<void> = Promise.resolve();

  /** Called with every version written (the live upload to the log store). */
  onWrite: ((text: string) => void) | undefined;

  constructor(
    readonly path: string,
    private readonly mask: (text: string) => string,
  ) {}

  /** Told about a failed write (a full disk, say); the build goes on and later writes still happen. */
  onError: ((error: unknown) => void) | undefined;

  /** Never rejects: callers write and go on, often without awaiting. */
  write(status: RunStatus): Promise<void> {
    const text = `${this.mask(JSON.stringify(status, null, 2))}\n`;
    this.onWrite?.(text);
    this.pending = this.pending.then(async () => {
      const temp = `${this.path}.tmp`;
      try {
        await writeFile(temp, text);
        await rename(temp, this.path);
      } catch (error) {
        this.onError?.(error);
      }
    });
    return this.pending;
  }
}
