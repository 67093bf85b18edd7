/** `isobuild build`: run a template's customization, validation and deprovisioning on a build VM with Packer. */
import { configSecrets, loadBuildConfig, loadLogStoreConfig } from '../../settings/build-config.js';
import {
  flagsFromTarget,
  loadBuildTimeout,
  loadResume,
  loadTemplateFile,
} from '../../settings/command-settings.js';
import { readRunRecord } from '../../run-record/run-record.js';
import { optionHelp } from '../../settings/option-help.js';
import { processEnvironment } from '../../settings/process-environment.js';
import { commandOptions } from '../../settings/settings-table.js';
import { createStructuredLogger } from '../../logging/structured-log.js';
import { runBuild } from '../../run/run-build.js';
import { IsobuildError } from '../../errors.js';
import type { CommandIo } from '../command.js';
import { formatProblems } from '../output.js';
import {
  TEMPLATE_OPTIONS_HELP,
  toLoadOptions,
  parseTemplateCommand,
  JSON_OPTION,
} from '../template-options.js';

export const BUILD_HELP = `Usage: isobuild build <template.json> --host ADDRESS [options]

Builds on an existing build VM as AIB does: validates the template, downloads and verifies its artifacts
(before touching the VM), renders the Packer files, checks that the VM accepts SSH (and says exactly why
not), then runs the customizers, the in-VM validators and the deprovision step with Packer. Packer reaches
the VM through a local relay, directly or through isobuild-proxy, as vmProfile.vnetConfig says: no subnet
or subnetId + containerInstanceSubnetId → direct; subnetId only → via the proxy. Progress goes
to stderr; the run directory (WORK_DIR/RUN_ID) holds status.json, customization.log, validation.log and
the rendered files. Distribution targets are reported as skipped: isobuild captures no image.

Options (each also as an environment variable, which the flag overrides):
${optionHelp('build', 'vm')}
Windows build VMs (WinRM over HTTPS, port 5986; the password in ISOBUILD_WINRM_PASSWORD):
${optionHelp('build', 'windows')}
${optionHelp('build', 'run')}

Log store (live logs, status.json and the build bundle under CONTAINER/RUN_ID/; default: an Azurite that
isobuild starts itself, data in WORK_DIR/.azurite, so "isobuild logs" works afterwards):
${optionHelp('build', 'store')}
  --json                   print the final status as JSON on stdout
  -h, --help               show this help
  Durations look like 90s, 5m or 1h30m. The template may also come from ISOBUILD_TEMPLATE.

${TEMPLATE_OPTIONS_HELP}

Exit codes: 0 succeeded, 1 a customizer, validator or the deprovision step failed, 2 invalid template or
configuration, 3 an artifact could not be fetched or verified, 4 Packer missing or unusable, 5 the build VM
cannot be reached or refused the login, 124 buildTimeoutInMinutes passed, 130 interrupted (SIGINT),
143 terminated (SIGTERM).`;

export async function runBuildCommand(argv: string[], io: CommandIo): Promise<number> {
  const options = { ...commandOptions('build'), ...JSON_OPTION };
  const parsed = parseTemplateCommand(argv, options, BUILD_HELP, io.out);
  if (!parsed) return 0;
  const { values, positionals } = parsed;
  const env = processEnvironment();
  const templateFile = loadTemplateFile(positionals, env);
  if (!templateFile || positionals.length > 1) {
    throw new IsobuildError(
      'usage',
      'build needs one template file: isobuild build <template.json> --host ADDRESS (or set ISOBUILD_TEMPLATE).',
    );
  }
  const { resume, fromStep } = loadResume(values, env);
  // A resumed run goes to the VM the earlier run used, the same way, unless told otherwise.
  // Its inventory before customizing is this run's baseline too: the VM is already partly customized.
  const record = resume
    ? await readRunRecord(resume, loadLogStoreConfig(values, env), io.signal, ['baseline'])
    : undefined;
  const previous = record?.status;
  const flags = previous?.target ? flagsFromTarget(values, env, previous.target) : values;
  const config = loadBuildConfig(flags, env);
  io.registerSecrets(configSecrets(config));
  const buildTimeoutMs = loadBuildTimeout(values, env);

  // Container runs log JSON lines on stdout, masked like everything else.
  const logger = config.logFormat === 'json' ? await createStructuredLogger(io.mask) : undefined;
  const outcome = await runBuild({
    templateFile,
    load: toLoadOptions(values),
    config,
    ...(buildTimeoutMs !== undefined ? { buildTimeoutMs } : {}),
    signal: io.signal,
    report: logger ? (line) => logger.info({ runId: config.runId }, line) : (line) => io.err(line),
    registerSecrets: (secrets) => io.registerSecrets(secrets),
    ...(logger ? { logger } : {}),
    ...(previous ? { previous } : {}),
    ...(record?.files.baseline ? { previousBaseline: record.files.baseline } : {}),
    ...(record?.unreadable.baseline ? { previousBaselineProblem: record.unreadable.baseline } : {}),
    ...(fromStep !== undefined ? { fromStep } : {}),
  });
  const { status } = outcome;
  if (logger) {
    logger[outcome.exitCode === 0 ? 'info' : 'error'](
      {
        runId: status.runId,
        runState: status.runState,
        runSubState: status.runSubState,
        exitCode: outcome.exitCode,
        statusFile: `${outcome.runDir}/status.json`,
        ...(status.logStore ? { logStore: status.logStore } : {}),
      },
      `${status.runState}: ${status.message}`,
    );
  } else if (values.json) {
    io.out(JSON.stringify(status, null, 2));
  } else {
    io.out(`${status.runState}: ${status.message}`);
    io.out(`Run ${status.runId}: status ${outcome.runDir}/status.json, log ${status.logs.customization}`);
    const records = [
      ...(status.sbom.file ? [`SBOM ${status.sbom.file}`] : []),
      ...(status.provenance?.file ? [`provenance ${status.provenance.file}`] : []),
    ];
    if (records.length > 0) io.out(`Records: ${records.join(', ')}`);
    if (status.logStore && status.logStore.state !== 'unavailable') {
      const workDir = config.store ? '' : ` --work-dir ${config.workDir}`;
      io.out(
        `Stored log: ${status.logStore.customization} (${status.logStore.state}); read it with: isobuild logs ${status.runId}${workDir}`,
      );
    }
    if (status.runState !== 'Succeeded' && status.target) {
      // The VM stays as the run left it: the next moves are to look at it, and to go on from the failed step.
      const workDir = ` --work-dir ${config.workDir}`;
      io.out(`Look at the build VM: isobuild shell ${status.runId}${workDir}`);
      io.out(
        `After a fix, go on from the failed step: isobuild build ${templateFile} --resume ${status.runId}${workDir}`,
      );
    }
  }
  if (outcome.problems.length > 0 && !values.json && !logger) io.err(formatProblems(outcome.problems));
  return outcome.exitCode;
}
