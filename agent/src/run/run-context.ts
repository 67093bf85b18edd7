/**
 * What one run's phases share: the checked inputs (PreparedRun), the run's own records (status, logs,
 * store, progress), and what earlier phases hand to later ones (the rendered files, the relay, Packer's
 * variables, the step that was running when the run stopped).
 */
import type { ArtifactRecord } from '../artifacts/fetch-artifacts.js';
import type { ExitCode, Problem } from '../errors.js';
import type { Inventory } from '../sbom/inventory.js';
import type { Logger } from '../logging/structured-log.js';
import type { PackerInfo } from '../packer-contract.js';
import type { Relay } from '../relay/relay.js';
import type { BuildConfig } from '../settings/build-config.js';
import type { LoadOptions } from '../template/load-template.js';
import type { ImageTemplate } from '../template/model.js';
import type { VmPath } from '../vm-path/vm-path.js';
import type { AttachedLogStore } from './attach-log-store.js';
import type { BuildEvents } from './build-events.js';
import type { BuildLog } from './build-log.js';
import type { Progress } from './progress.js';
import type { ResumePlan } from './resume-plan.js';
import type { RunStatus, StatusFile, StepOutcome, StepResult } from './run-status.js';

export interface BuildOptions {
  readonly templateFile: string;
  readonly load: LoadOptions;
  readonly config: BuildConfig;
  /** Overrides the template's buildTimeoutInMinutes (tests, CI). */
  readonly buildTimeoutMs?: number;
  /** Cancels the build (SIGINT/SIGTERM). Its reason decides the exit code. */
  readonly signal: AbortSignal;
  /** Human progress lines. */
  readonly report: (line: string) => void;
  /** Called once the run's secrets are known, so every output channel can mask them. */
  readonly registerSecrets?: (values: readonly string[]) => void;
  /** Structured events (container runs): phases, steps, log lines and relay connections. */
  readonly logger?: Logger;
  /** The earlier run this one continues (`--resume RUN_ID`), as its status.json recorded it. */
  readonly previous?: RunStatus;
  /** The earlier run's inventory before customizing (inventory-before.json), where it was read from. */
  readonly previousBaseline?: { readonly text: string; readonly source: string };
  /** Why the earlier run's inventory-before.json could not be read (it is optional: the run goes on). */
  readonly previousBaselineProblem?: string;
  /** `--from-step N` (a position or a step name): where to start on a VM known to be in the right state. */
  readonly fromStep?: string;
}

export interface BuildOutcome {
  readonly status: RunStatus;
  readonly exitCode: ExitCode;
  readonly runDir: string;
  readonly problems: readonly Problem[];
}

/** Every input of a run, checked before anything is created, downloaded or contacted. */
export interface PreparedRun {
  readonly options: BuildOptions;
  readonly config: BuildConfig;
  readonly template: ImageTemplate;
  /** The template's warnings, reported with the outcome. */
  readonly warnings: readonly Problem[];
  readonly vmPath: VmPath;
  readonly runDir: string;
  /** `packer version`, started early: it overlaps with loading the template. */
  readonly packer: Promise<PackerInfo>;
  /** Where a resumed (or --from-step) run starts, and what it skips. */
  readonly plan?: ResumePlan;
  /** The input files, by sha256 (the provenance record names them). */
  readonly sources: {
    readonly template: { readonly file: string; readonly sha256: string };
    readonly parameters?: { readonly file: string; readonly sha256: string };
  };
}

/** Which Packer phase a step belongs to, as failure messages name it. */
export type StepKind = 'customizer' | 'validator' | 'deprovision step';

/** The Packer phase that ended without success: what was running, and what errorHandling said to do. */
export interface UnfinishedPhase {
  readonly kind: StepKind;
  readonly onError: 'cleanup' | 'abort';
  readonly outcome: Extract<StepOutcome, 'failed' | 'canceled' | 'timedOut'>;
  readonly step?: StepResult;
}

/** The path through the relay that Packer and the remote cleanup use, once the VM answered. */
export interface Connection {
  readonly relay: Relay;
  /** Packer's variables for this run: where the relay listens, the user and credentials. */
  readonly variables: Readonly<Record<string, string>>;
  /** The relay's last failure before Packer started (readiness retries): not news when a step fails. */
  readonly failureBeforePacker: string | undefined;
}

export interface RunContext extends PreparedRun {
  readonly packerDir: string;
  readonly tmpDir: string;
  readonly timeoutMs: number;
  readonly status: RunStatus;
  readonly statusFile: StatusFile;
  readonly logs: { readonly customization: BuildLog; readonly validation: BuildLog };
  readonly store: AttachedLogStore;
  readonly events: BuildEvents;
  readonly progress: Progress;
  readonly mask: (text: string) => string;
  /** Problems reported with the outcome (the template's and the renderer's warnings, render errors). */
  readonly problems: Problem[];
  /** Lets the storage SDK load (it waits until the CPU-heavy render is done, or the run ends). */
  readonly allowStoreLoad: () => void;
  /** Changes runState/runSubState/message: status.json, the customization log and the structured log follow. */
  update(changes: Partial<Pick<RunStatus, 'runState' | 'runSubState' | 'message'>>): Promise<void>;
  /** Steps counted so far (progress says `[position/total]`). */
  position: number;
  readonly totalSteps: number;

  /** Set by the render phase: the files, and each step's digest (by JSON path). */
  renderedFiles?: readonly string[];
  stepDigests?: ReadonlyMap<string, string>;
  /** Set by the render phase: the Windows File steps (by JSON path) whose sources isobuild stages. */
  stagedPaths?: readonly string[];
  /** Set by the render phase: every downloaded artifact with its sha256 (the provenance record lists them). */
  artifacts?: readonly ArtifactRecord[];
  /** Set by the connect phase. */
  connection?: Connection;
  /** Set once the Windows staging directory is gone (after the customizers, or by the cleanup). */
  stagingRemoved?: boolean;
  /** Set by the inventory phase before customizing: the source image's inventory (or the earlier run's). */
  baseline?: Inventory;
  /** Set by a Packer phase that ended without success; failure messages say where the run stopped. */
  unfinished?: UnfinishedPhase;
  /** A failure that does not stop the run (validation with continueDistributeOnFailure) but decides it. */
  deferredFailure?: Error;
}
