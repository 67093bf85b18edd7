/**
 * One image build, in AIB's phases: validate the template, fetch and verify artifacts (before any VM
 * contact), render, probe the build VM, run Packer for customization, in-VM validation and deprovisioning,
 * then report. status.json and the logs are kept current throughout. Every failure ends in a status with
 * a message that says what failed, where, and what to do; nothing of this run is left running on the VM.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EXIT_CODES, IsobuildError, type ExitCode, type Problem } from '../errors.js';
import { SecretMasker } from '../mask-secrets.js';
import { detectPacker } from '../packer/packer-version.js';
import { runPacker } from '../packer/run-packer.js';
import { describeHop, startRelay, type Hop, type Relay } from '../relay/relay.js';
import { loadSsh2 } from '../readiness/load-ssh2.js';
import { ProbeFailure, waitForSsh, type SshProbeTarget } from '../readiness/ssh-probe.js';
import { waitForWinRm } from '../readiness/winrm-probe.js';
import { WinRmError } from '../winrm/transport.js';
import {
  CUSTOMIZATION_FILE,
  DEPROVISION_FILE,
  DEPROVISION_TAG,
  PACKER_VARIABLES,
  VALIDATION_FILE,
  secureParameterVariable,
  stepTag,
} from '../packer-contract.js';
import { readPackerLine } from '../packer/packer-output.js';
import { renderBuild } from '../render/render-build.js';
import { loadTemplate, type LoadOptions } from '../template/load-template.js';
import { PROXY_PORT } from '../template/topology.js';
import { openLogStore } from '../logstore/open-log-store.js';
import { configSecrets, type BuildConfig } from '../settings/build-config.js';
import type { Logger } from '../logging/structured-log.js';
import { structuredBuildEvents } from './build-events.js';
import { BuildLog } from './build-log.js';
import { readSshKeyFile } from '../readiness/ssh-key-file.js';
import { prepareWorkDir } from './work-dir.js';
import { attachLogStore } from './attach-log-store.js';
import { Progress, TAIL_LINES, seconds } from './progress.js';
import { cleanUpRemoteRun } from './remote-cleanup.js';
import {
  StatusFile,
  endStep,
  initialStatus,
  startStep,
  type RunStatus,
  type StepResult,
} from './run-status.js';

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
}

export interface BuildOutcome {
  readonly status: RunStatus;
  readonly exitCode: ExitCode;
  readonly runDir: string;
  readonly problems: readonly Problem[];
}

interface PhaseResult {
  readonly ok: boolean;
  readonly cancelled: boolean;
  readonly timedOut: boolean;
  readonly failedStep?: StepResult;
  readonly reason?: string;
}

export async function runBuild(options: BuildOptions): Promise<BuildOutcome> {
  const { config, report } = options;
  const started = Date.now();
  // `packer version` runs while the template loads and ssh2 initialises (they overlap on I/O).
  const packerInfo = detectPacker(config.packerPath, options.signal);
  packerInfo.catch(() => undefined); // awaited (and reported) below; never an unhandled rejection
  void loadSsh2();
  // Every input is checked before anything is started, downloaded or contacted (exit 2 or 4, nothing left
  // behind): the work directory, the credentials, the run id, the template, the network path.
  await prepareWorkDir(config.workDir);
  const privateKey = config.sshKeyFile
    ? readSshKeyFile(config.sshKeyFile)
    : config.sshPrivateKey
      ? Buffer.from(config.sshPrivateKey.reveal())
      : undefined;
  const runDir = join(config.workDir, config.runId);
  const runIdTaken = (): IsobuildError =>
    new IsobuildError(
      'usage',
      `the run directory ${runDir} already exists: run ids must be unique. Pick another --run-id or remove it.`,
    );
  const loaded = await loadTemplate(options.templateFile, options.load);
  const template = loaded.template;
  const port = config.port ?? (template.os === 'linux' ? 22 : 5986);
  const topology = config.topology ?? (template.topology === 'proxy' ? 'proxy' : 'direct');
  if (topology === 'proxy' && !config.proxyHost) {
    throw new IsobuildError(
      'usage',
      "this template uses AIB's proxy topology (vmProfile.vnetConfig.subnetId without containerInstanceSubnetId), but no proxy is configured: pass --proxy-host ADDRESS (an isobuild-proxy in front of the build VM) or --topology direct.",
    );
  }
  const winrmPassword = config.winrmPassword;
  if (template.os === 'windows' && !winrmPassword) {
    throw new IsobuildError(
      'usage',
      'Windows builds need the administrator password: set ISOBUILD_WINRM_PASSWORD (for --user).',
    );
  }
  if (options.signal.aborted) {
    throw new IsobuildError(
      'cancelled',
      `cancelled before run ${config.runId} started: nothing was created or contacted, and the run id is still unused.`,
    );
  }
  // Creating the run directory is what claims the run id: two builds with one id cannot both get here.
  await mkdir(runDir).catch((error: NodeJS.ErrnoException) => {
    throw error.code === 'EEXIST' ? runIdTaken() : error;
  });

  // The embedded Azurite starts now, in its own process; for a configured store the storage SDK loads
  // once the Packer files are rendered (or the build ends first). The build never waits for the store: uploads follow the
  // local logs from their first byte whenever it is ready.
  let allowStoreLoad = (): void => undefined;
  const storeMayLoad = new Promise<void>((resolve) => (allowStoreLoad = resolve));
  // A cancel must not stop the store from opening: the cancelled run's status still belongs there. The
  // opening gets its own budget after a cancel instead.
  const storeSignal = afterAbortWithin(options.signal, STORE_CLEANUP_BUDGET_MS);
  const storeOpening = config.localLogsOnly
    ? undefined
    : openLogStore(
        config.store,
        config.storeContainer,
        config.workDir,
        storeSignal,
        // With the embedded Azurite the SDK loads while Azurite starts; it is needed as soon as it is up.
        config.store ? storeMayLoad : undefined,
        config.storageTimeoutMs,
      );
  storeOpening?.catch(() => undefined); // handled where it is awaited
  const secrets = [...configSecrets(config), ...template.secureValues];
  options.registerSecrets?.(secrets);
  const masker = new SecretMasker(secrets);
  const mask = (text: string): string => masker.mask(text);
  report(
    `validate template ${options.templateFile} ✓ (${template.os}, ${template.customize.length} customizer(s), ${template.validate.inVMValidations.length} validator(s))`,
  );

  const packerDir = join(runDir, 'packer');
  const tmpDir = join(runDir, 'tmp');
  await mkdir(tmpDir, { recursive: true });
  const logs = {
    customization: join(runDir, 'customization.log'),
    validation: join(runDir, 'validation.log'),
  };
  const status = initialStatus(config.runId, options.templateFile, template, logs);
  const statusFile = new StatusFile(join(runDir, 'status.json'), mask);
  let statusWriteFailed = false;
  statusFile.onError = (error) => {
    if (statusWriteFailed) return; // once is enough; the next successful write catches up
    statusWriteFailed = true;
    report(
      `warning: could not write ${statusFile.path} (${(error as NodeJS.ErrnoException).code ?? String(error)}); the build goes on and retries with the next change`,
    );
  };
  const customizationLog = new BuildLog(logs.customization, config.runId, mask);
  const validationLog = new BuildLog(logs.validation, config.runId, mask);
  const store = attachLogStore({
    opening: storeOpening,
    runId: config.runId,
    logs,
    customizationLog,
    validationLog,
    statusFile,
    status,
    spoolLimitBytes: config.logSpoolBytes,
    maxBlocksPerBlob: config.logMaxBlocks,
    report,
  });
  const events = structuredBuildEvents(
    options.logger,
    config.runId,
    { customization: customizationLog, validation: validationLog },
    status.runSubState,
  );
  const update = async (
    changes: Partial<Pick<RunStatus, 'runState' | 'runSubState' | 'message'>>,
  ): Promise<void> => {
    if (changes.runSubState && changes.runSubState !== status.runSubState) events.phase(changes.runSubState);
    Object.assign(status, changes);
    if (changes.message)
      customizationLog.write('ISOBUILD', `${status.runState}/${status.runSubState}: ${changes.message}`);
    await statusFile.write(status);
  };

  const timeoutMs = options.buildTimeoutMs ?? template.buildTimeoutInMinutes * 60_000;
  const deadline = AbortSignal.timeout(timeoutMs);
  const signal = AbortSignal.any([options.signal, deadline]);
  const deprovisions = !config.skipDeprovision && !template.validate.sourceValidationOnly;
  const total =
    (template.validate.sourceValidationOnly ? 0 : template.customize.length) +
    template.validate.inVMValidations.length +
    (deprovisions ? 1 : 0);
  const progress = new Progress(report, total);
  let position = 0;
  const problems: Problem[] = [];

  let relay: Relay | undefined;
  const finish = async (
    runState: RunStatus['runState'],
    message: string,
    exitCode: ExitCode,
    logKind: 'customization' | 'validation' = 'customization',
  ): Promise<BuildOutcome> => {
    progress.stopHeartbeat();
    allowStoreLoad();
    await relay?.close();
    await store.settled(10_000); // the message below names the stored log
    await store.announce(0); // a build that ends before its first step still says where its logs are
    status.endTime = new Date().toISOString();
    // Failure messages say which run and where its full log is (the stored one when there is a store).
    const reference =
      runState === 'Succeeded'
        ? ''
        : ` Run ${config.runId}, full log: ${status.logStore?.[logKind] || logs[logKind]}`;
    await update({ runState, message: `${message}${reference}` });
    await Promise.all([customizationLog.close(), validationLog.close()]);
    await rm(tmpDir, { recursive: true, force: true });
    await store.close(config.logDrainMs);
    return { status, exitCode, runDir, problems };
  };
  const stopped = (): Promise<BuildOutcome> =>
    deadline.aborted && !options.signal.aborted
      ? finish(
          'Failed',
          `the build timed out after ${seconds(timeoutMs)} (buildTimeoutInMinutes) before any customizer ran.`,
          EXIT_CODES.timedOut,
        )
      : finish(
          'Canceled',
          'the build was cancelled before any customizer ran.',
          cancelExitCode(options.signal),
        );

  try {
    await update({ runSubState: 'Building', message: `run ${config.runId} started` });

    // Artifacts and HCL, before any contact with the VM.
    let files: readonly string[];
    try {
      const packer = await packerInfo;
      const rendered = await renderBuild(template, {
        outDir: packerDir,
        sourceLabel: options.templateFile,
        packer,
        skipDeprovision: config.skipDeprovision,
        fetch: {
          rewrites: config.rewrites,
          limits: config.downloadDeadlines,
          onProgress: (line) => customizationLog.write('ISOBUILD', line),
        },
        signal,
      });
      files = rendered.files;
      problems.push(...loaded.warnings, ...rendered.warnings);
      store.bundle(runDir, config);
      allowStoreLoad(); // the CPU-heavy work is done: the SDK loads while the VM is probed
      progress.phase(
        'fetch artifacts and render Packer files',
        'ok',
        `(${rendered.artifacts.length} artifact(s), Packer ${packer.version})`,
      );
    } catch (error) {
      if (signal.aborted) return stopped();
      if (!(error instanceof IsobuildError)) throw error;
      problems.push(...error.problems);
      progress.phase('fetch artifacts and render Packer files', 'failed');
      return finish(
        'Failed',
        `${error.message}${error.problems.length > 0 ? ` ${error.problems.map((p) => `${p.path}: ${p.message}`).join(' ')}` : ''}`,
        error.exitCode,
      );
    }

    // The network path (aib-reference §4): Packer talks to a local relay, which dials the build VM
    // directly or through the proxy, as vmProfile.vnetConfig (or --topology) says.
    const hop: Hop =
      topology === 'proxy'
        ? {
            kind: 'proxy',
            host: config.proxyHost ?? '',
            port: PROXY_PORT[template.os],
            vm: `${config.host}:${port}`,
          }
        : { kind: 'direct', host: config.host, port };
    relay = await startRelay({
      upstream: hop,
      connectTimeoutMs: Math.min(10_000, config.readyTimeoutMs),
      onConnection: (c) => {
        events.connection(c);
        customizationLog.write(
          'ISOBUILD',
          `relay connection ${c.connId} via ${c.hop}: ${c.bytesToUpstream} bytes out, ${c.bytesFromUpstream} bytes in, ${seconds(c.durationMs)}, ${c.end}`,
        );
      },
    });
    const activeRelay = relay;
    const target: SshProbeTarget = {
      host: activeRelay.host,
      port: activeRelay.port,
      label: describeHop(hop),
      user: config.user,
      ...(privateKey ? { privateKey } : {}),
      ...(config.sshPassword ? { password: config.sshPassword.reveal() } : {}),
    };

    // Readiness: say exactly why the VM cannot be reached, before Packer's generic timeout would.
    const protocol = template.os === 'linux' ? 'SSH' : 'WinRM';
    const probeStart = Date.now();
    let failedAttempts = 0;
    const onAttempt = (attempt: number, failure: Error): void => {
      failedAttempts = attempt;
      customizationLog.write(
        'ISOBUILD',
        `readiness attempt ${attempt}: ${activeRelay.lastFailure() ?? failure.message}`,
      );
    };
    try {
      if (template.os === 'linux') {
        await waitForSsh(target, { timeoutMs: config.readyTimeoutMs, signal, onAttempt });
      } else if (winrmPassword) {
        // (Windows builds always have their password here: it was checked with the inputs above.)
        await waitForWinRm(
          {
            host: activeRelay.host,
            port: activeRelay.port,
            // The certificate names the VM, not the local relay in front of it.
            servername: config.host,
            tls: config.winrmTls,
            auth: { kind: config.winrmAuth, user: config.user, password: winrmPassword },
            label: describeHop(hop),
          },
          { timeoutMs: config.readyTimeoutMs, signal, onAttempt },
        );
      }
      progress.phase(
        `${describeHop(hop)} accepts ${protocol}`,
        'ok',
        `(${seconds(Date.now() - probeStart)})`,
      );
      // Where the logs stream is said here, before the first step, not wherever the store happened to open.
      await store.announce(STORE_ANNOUNCE_BUDGET_MS);
      if (signal.aborted) return stopped();
    } catch (error) {
      if (signal.aborted) return stopped();
      if (!(error instanceof ProbeFailure || error instanceof WinRmError)) throw error;
      progress.phase(describeHop(hop), 'failed');
      // The relay saw network failures first-hand (refused, unreachable, proxy without a VM behind it);
      // a rejected login or certificate is the probe's own finding.
      const ownFinding = error.kind === 'auth-rejected' || error.kind === 'tls';
      const reason = ownFinding ? error.message : (activeRelay.lastFailure() ?? error.message);
      // Retried failures say how long isobuild kept trying in all, not just the last attempt's wait.
      // What may clear up (refused, silent) was retried: say for how long in all. A rejected login or
      // certificate stops at once and needs no such note.
      const attempts = failedAttempts + 1;
      const waited = ownFinding
        ? ''
        : ` (gave up after ${seconds(Date.now() - probeStart)}, ${attempts} attempt${attempts === 1 ? '' : 's'})`;
      return finish(
        'Failed',
        `the build VM is not reachable over ${protocol}${waited}: ${reason.replace(/\.$/, '')}.`,
        EXIT_CODES.vmUnreachable,
      );
    }

    // The Packer phases. Relay failures from before this point (readiness retries) are not news.
    const relayFailureBefore = activeRelay.lastFailure();
    const keyFile =
      config.sshKeyFile ??
      (config.sshPrivateKey ? await writeKeyFile(tmpDir, config.sshPrivateKey.reveal()) : '');
    const variables: Record<string, string> = {
      [PACKER_VARIABLES.host]: activeRelay.host,
      [PACKER_VARIABLES.port]: String(activeRelay.port),
      [PACKER_VARIABLES.username]: config.user,
      [PACKER_VARIABLES.runId]: config.runId,
      [PACKER_VARIABLES.connectTimeout]: `${Math.ceil(config.readyTimeoutMs / 1000)}s`,
      ...(template.os === 'linux' ? { [PACKER_VARIABLES.sshKeyFile]: keyFile } : {}),
      ...(config.sshPassword ? { [PACKER_VARIABLES.sshPassword]: config.sshPassword.reveal() } : {}),
      ...(config.winrmPassword ? { [PACKER_VARIABLES.winrmPassword]: config.winrmPassword.reveal() } : {}),
      ...(template.os === 'windows'
        ? {
            [PACKER_VARIABLES.winrmUseNtlm]: String(config.winrmAuth === 'ntlm'),
            // Packer reaches the VM through the loopback relay, so it cannot check the certificate's name;
            // the readiness probe above checked it (--winrm-ca / --winrm-cert-sha256) against the VM.
            [PACKER_VARIABLES.winrmInsecure]: 'true',
          }
        : {}),
    };
    template.secureValues.forEach((value, i) => (variables[secureParameterVariable(i)] = value));

    const runPhase = async (
      file: string,
      steps: StepResult[],
      tags: string[],
      log: BuildLog,
      onError: 'cleanup' | 'abort',
    ): Promise<PhaseResult> => {
      // A cancel or timeout between two phases ends the build like one during a phase.
      if (signal.aborted)
        return { ok: false, cancelled: true, timedOut: deadline.aborted && !options.signal.aborted };
      const byTag = new Map(tags.map((tag, i) => [tag, steps[i]!]));
      let current: StepResult | undefined;
      let currentPosition = 0;
      let tail: string[] = [];
      let packerError: string | undefined;
      const label = (step: StepResult): string => `${step.type} ${JSON.stringify(step.name)}`;
      const begin = (step: StepResult): void => {
        finishCurrent('succeeded');
        current = step;
        currentPosition = ++position;
        tail = [];
        startStep(step);
        events.step(currentPosition, step);
        log.write(
          'PACKER ERR',
          `(telemetry) Starting provisioner ${step.type === 'Shell' ? 'shell' : step.type.toLowerCase()}`,
        );
        log.write('ISOBUILD', `step ${currentPosition}/${total}: ${label(step)} started`);
        progress.stepStarted(currentPosition, label(step), () => tail[tail.length - 1]);
        void statusFile.write(status);
      };
      const finishCurrent = (outcome: StepResult['outcome']): void => {
        if (!current) return;
        endStep(current, outcome);
        progress.stepFinished(currentPosition, label(current), current.durationMs ?? 0, outcome);
        log.write(
          'ISOBUILD',
          `step ${currentPosition}/${total}: ${label(current)} ${outcome} after ${seconds(current.durationMs ?? 0)}`,
        );
        void statusFile.write(status);
      };
      const running = runPacker({
        packerPath: config.packerPath,
        file: join(packerDir, file),
        variables,
        onError,
        tmpDir,
        killGraceMs: config.killGraceMs,
        signal,
        onLine: (stream, line) => {
          log.write(stream === 'out' ? 'PACKER OUT' : 'PACKER ERR', line);
          if (stream !== 'out') return;
          const read = readPackerLine(line);
          if (read.kind === 'step') {
            const step = byTag.get(read.tag);
            if (step) begin(step);
            return;
          }
          if (read.kind === 'error') packerError = read.message;
          if (read.kind === 'noise' || read.text === undefined) return;
          tail.push(mask(read.text));
          if (tail.length > TAIL_LINES) tail.shift();
        },
      });
      const result = await running;
      const timedOut = result.cancelled && deadline.aborted && !options.signal.aborted;
      if (result.exitCode === 0 && !result.cancelled) {
        finishCurrent('succeeded');
        return { ok: true, cancelled: false, timedOut: false };
      }
      const failedStep = current;
      const outcome = timedOut ? 'timedOut' : result.cancelled ? 'canceled' : 'failed';
      finishCurrent(outcome);
      if (outcome === 'failed' && failedStep) progress.tail(label(failedStep), tail);
      // Nothing of this run may keep running on the VM: cancel always cleans up; failures unless errorHandling says abort.
      if (template.os === 'linux' && (result.cancelled && !timedOut ? true : onError === 'cleanup')) {
        try {
          const stoppedSessions = await cleanUpRemoteRun(target, config.runId);
          log.write(
            'ISOBUILD',
            `remote cleanup: stopped ${stoppedSessions} session(s) of run ${config.runId} and removed its scripts`,
          );
        } catch (error) {
          log.write('ISOBUILD', `remote cleanup failed: ${(error as Error).message}`);
          report(`warning: could not clean up on the build VM: ${(error as Error).message}`);
        }
      }
      return {
        ok: false,
        cancelled: result.cancelled,
        timedOut,
        failedStep,
        reason: result.killed
          ? `Packer did not stop within the ${seconds(config.killGraceMs)} grace period and was killed`
          : (packerError ?? `Packer exited with code ${result.exitCode}`),
      };
    };

    const fail = (
      phase: 'customizer' | 'validator' | 'deprovision step',
      result: PhaseResult,
      onError: 'cleanup' | 'abort',
    ): Promise<BuildOutcome> => {
      const step = result.failedStep;
      const where = step
        ? ` while ${phase} ${step.index + 1} ${step.type} ${JSON.stringify(step.name)} had been running for ${seconds(step.durationMs ?? 0)}`
        : '';
      const kept =
        onError === 'abort' ? ' The build VM was left as it is for inspection (errorHandling: abort).' : '';
      const logKind = phase === 'validator' ? 'validation' : 'customization';
      if (result.timedOut) {
        return finish(
          'Failed',
          `the build timed out after ${seconds(timeoutMs)} (buildTimeoutInMinutes)${where}.${kept}`,
          EXIT_CODES.timedOut,
          logKind,
        );
      }
      if (result.cancelled) {
        return finish(
          'Canceled',
          `the build was cancelled${where}; its remote processes were stopped.`,
          cancelExitCode(options.signal),
          logKind,
        );
      }
      const which = step
        ? `${phase} ${step.index + 1} ${step.type} ${JSON.stringify(step.name)}`
        : `the ${phase} phase`;
      // When the connection broke, say which hop broke it (Packer only says "disconnected").
      const network = activeRelay.lastFailure();
      const hopNote =
        network && network !== relayFailureBefore ? ` The network path failed: ${network}.` : '';
      return finish(
        'Failed',
        `${which} failed: ${mask(result.reason ?? 'unknown error')}.${hopNote}${kept}`,
        EXIT_CODES.buildFailed,
        logKind,
      );
    };

    if (!template.validate.sourceValidationOnly) {
      await update({ runSubState: 'Customizing', message: 'customizing the build VM' });
      const tags = template.customize.map((s) => stepTag('customization', s.index));
      const result = await runPhase(
        CUSTOMIZATION_FILE,
        status.customizers,
        tags,
        customizationLog,
        template.errorHandling.onCustomizerError,
      );
      if (!result.ok) return fail('customizer', result, template.errorHandling.onCustomizerError);
    }

    let validationFailed: PhaseResult | undefined;
    if (files.includes(VALIDATION_FILE)) {
      await update({ runSubState: 'Validating', message: 'running in-VM validations' });
      const tags = template.validate.inVMValidations.map((s) => stepTag('validation', s.index));
      const result = await runPhase(
        VALIDATION_FILE,
        status.validators,
        tags,
        validationLog,
        template.errorHandling.onValidationError,
      );
      if (!result.ok && (result.cancelled || !template.validate.continueDistributeOnFailure)) {
        return fail('validator', result, template.errorHandling.onValidationError);
      }
      if (!result.ok) validationFailed = result;
    }

    if (deprovisions && files.includes(DEPROVISION_FILE)) {
      const result = await runPhase(
        DEPROVISION_FILE,
        [status.deprovision],
        [DEPROVISION_TAG],
        customizationLog,
        template.errorHandling.onCustomizerError,
      );
      if (!result.ok) return fail('deprovision step', result, template.errorHandling.onCustomizerError);
    } else {
      status.deprovision.outcome = 'skipped';
    }

    await update({
      runSubState: 'Distributing',
      message: 'distribution targets are skipped (isobuild captures no image)',
    });
    for (const target of status.distribute)
      progress.phase(
        `distribute ${target.type} ${JSON.stringify(target.runOutputName)}`,
        'skipped',
        `(${target.reason})`,
      );
    if (validationFailed) {
      // AIB reports the run Failed when validation failed, even with continueDistributeOnFailure.
      return fail('validator', validationFailed, template.errorHandling.onValidationError);
    }
    return finish('Succeeded', `the build succeeded in ${seconds(Date.now() - started)}.`, EXIT_CODES.ok);
  } catch (error) {
    // Whatever went wrong, status.json must not claim the run is still going.
    if (!status.endTime) {
      await finish(
        'Failed',
        `internal error: ${mask(error instanceof Error ? error.message : String(error))}`,
        EXIT_CODES.internal,
      ).catch(() => undefined);
    }
    throw error;
  }
}

/** How long the log store may still take to open and take the final status after a cancel. */
const STORE_CLEANUP_BUDGET_MS = 15_000;
/** How long the first step may wait for the store to open, so that its line comes first. */
const STORE_ANNOUNCE_BUDGET_MS = 3_000;

/** A signal that aborts `budgetMs` after `signal` does: cleanup work gets a fresh, bounded budget. */
function afterAbortWithin(signal: AbortSignal, budgetMs: number): AbortSignal {
  const controller = new AbortController();
  const arm = (): void => {
    setTimeout(() => controller.abort(signal.reason), budgetMs).unref();
  };
  if (signal.aborted) arm();
  else signal.addEventListener('abort', arm, { once: true });
  return controller.signal;
}

function cancelExitCode(signal: AbortSignal): ExitCode {
  const reason: unknown = signal.reason;
  return reason instanceof Error && /SIGTERM/.test(reason.message)
    ? EXIT_CODES.terminated
    : EXIT_CODES.interrupted;
}

/** Packer reads keys from files: a key given as content (ISOBUILD_SSH_KEY) lives in the run's tmp dir, mode 600. */
async function writeKeyFile(dir: string, key: string): Promise<string> {
  const file = join(dir, 'ssh_key');
  await writeFile(file, key.endsWith('\n') ? key : `${key}\n`, { mode: 0o600 });
  return file;
}
