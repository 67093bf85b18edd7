/** `isobuild build`: run a template's customization, validation and deprovisioning on a build VM with Packer. */
import { parseArgs } from 'node:util';
import { configSecrets, loadBuildConfig } from '../../settings/build-config.js';
import { readDuration } from '../../duration.js';
import { createStructuredLogger } from '../../logging/structured-log.js';
import { runBuild } from '../../run/run-build.js';
import { IsobuildError } from '../../errors.js';
import type { CommandIo } from '../command.js';
import { formatProblems } from '../output.js';
import { TEMPLATE_OPTIONS, TEMPLATE_OPTIONS_HELP, toLoadOptions } from '../template-options.js';

export const BUILD_HELP = `Usage: isobuild build <template.json> --host ADDRESS [options]

Builds on an existing build VM as AIB does: validates the template, downloads and verifies its artifacts
(before touching the VM), renders the Packer files, checks that the VM accepts SSH (and says exactly why
not), then runs the customizers, the in-VM validators and the deprovision step with Packer. Packer reaches
the VM through a local relay, directly or through isobuild-proxy, as vmProfile.vnetConfig says: no subnet
or subnetId + containerInstanceSubnetId → direct; subnetId only → via the proxy. Progress goes
to stderr; the run directory (WORK_DIR/RUN_ID) holds status.json, customization.log, validation.log and
the rendered files. Distribution targets are reported as skipped: isobuild captures no image.

Options (each also as an environment variable, which the flag overrides):
  --host ADDRESS           build VM address                                      ISOBUILD_HOST
  --port N                 SSH or WinRM port (default 22, or 5986 for Windows)   ISOBUILD_PORT
  --user NAME              admin user on the VM (default packer)                 ISOBUILD_USER
  --ssh-key-file FILE      private key file                                      ISOBUILD_SSH_KEY_FILE
                           (or the key itself in ISOBUILD_SSH_KEY, or a password in ISOBUILD_SSH_PASSWORD)
Windows build VMs (WinRM over HTTPS, port 5986; the password in ISOBUILD_WINRM_PASSWORD):
  --winrm-auth ntlm|basic  authentication (default ntlm, as AIB's Packer uses)  ISOBUILD_WINRM_AUTH
  --winrm-ca FILE          trust only this CA/certificate (PEM) for the VM       ISOBUILD_WINRM_CA
  --winrm-cert-sha256 HEX  accept only the certificate with this fingerprint     ISOBUILD_WINRM_CERT_SHA256
                           (default: accept the VM's self-signed certificate, as AIB does)
  --run-id ID              run id (default: a new UUID)                          ISOBUILD_RUN_ID
  --work-dir DIR           where run directories go (default .work/runs)         ISOBUILD_WORK_DIR
  --ready-timeout DUR      how long to wait for SSH or WinRM (default 5m)        ISOBUILD_READY_TIMEOUT
  --build-timeout DUR      override the template's buildTimeoutInMinutes         ISOBUILD_BUILD_TIMEOUT
  --kill-grace DUR         Packer's cleanup time after a cancel (default 15m)    ISOBUILD_KILL_GRACE
  --packer PATH            Packer binary (default packer on PATH)                ISOBUILD_PACKER
  --topology direct|proxy  override the network path vnetConfig implies       ISOBUILD_TOPOLOGY
  --proxy-host ADDRESS     isobuild-proxy for the proxy topology (:60001/60000) ISOBUILD_PROXY_HOST
  --skip-deprovision       leave out AIB's deprovision step (no Azure agent)     ISOBUILD_SKIP_DEPROVISION=1
  --rewrite-uri FROM=TO    fetch artifact URLs from a mirror (repeatable)        ISOBUILD_REWRITE_URI
  --download-timeout DUR   limit on one artifact download attempt: connect,      ISOBUILD_DOWNLOAD_TIMEOUT
                           response and transfer (default 5m)
  --download-stall-timeout DUR  an attempt fails when under 1 KiB arrives in DUR ISOBUILD_DOWNLOAD_STALL_TIMEOUT
                           (default 60s)
  --download-total-timeout DUR  limit on all attempts (up to 10) of one artifact ISOBUILD_DOWNLOAD_TOTAL_TIMEOUT
                           together (default 15m)

Log store (live logs, status.json and the build bundle under CONTAINER/RUN_ID/; default: an Azurite that
isobuild starts itself, data in WORK_DIR/.azurite, so "isobuild logs" works afterwards):
  --storage-connection-string S   Blob Storage connection string              ISOBUILD_STORAGE_CONNECTION_STRING
  --storage-sas-url URL    container or account SAS URL                          ISOBUILD_STORAGE_SAS_URL
  --storage-account-url URL  account URL, signed in with DefaultAzureCredential  ISOBUILD_STORAGE_ACCOUNT_URL
                           (managed identity in ACI)
  --storage-container NAME container (default packerlogs)                        ISOBUILD_STORAGE_CONTAINER
  --storage-timeout DUR    deadline of each request to the store (default 15s)   ISOBUILD_STORAGE_TIMEOUT
  --local-logs-only        keep logs in the run directory only                   ISOBUILD_LOCAL_LOGS_ONLY=1
  --log-drain-timeout DUR  time to upload the last lines at the end (default 1m) ISOBUILD_LOG_DRAIN_TIMEOUT
  --log-spool-limit SIZE   log bytes kept waiting for storage (default 1GiB)     ISOBUILD_LOG_SPOOL_LIMIT
  --log-max-blocks N       blocks per log blob before customization.1.log …      ISOBUILD_LOG_MAX_BLOCKS
                           (default 40000; Azure allows 50,000)
  --log-format text|json   text: progress on stderr (default); json: one pino    ISOBUILD_LOG_FORMAT
                           line per event on stdout, for container logs
  --json                   print the final status as JSON on stdout
  -h, --help               show this help
  Durations look like 90s, 5m or 1h30m. The template may also come from ISOBUILD_TEMPLATE.

${TEMPLATE_OPTIONS_HELP}

Exit codes: 0 succeeded, 1 a customizer, validator or the deprovision step failed, 2 invalid template or
configuration, 3 an artifact could not be fetched or verified, 4 Packer missing or unusable, 5 the build VM
cannot be reached or refused the login, 124 buildTimeoutInMinutes passed, 130 interrupted (SIGINT),
143 terminated (SIGTERM).`;

/** The options of `isobuild build` (also taken by `isobuild doctor`). */
export const BUILD_OPTIONS = {
  host: { type: 'string' },
  port: { type: 'string' },
  user: { type: 'string' },
  'ssh-key-file': { type: 'string' },
  'run-id': { type: 'string' },
  'work-dir': { type: 'string' },
  'ready-timeout': { type: 'string' },
  'build-timeout': { type: 'string' },
  'kill-grace': { type: 'string' },
  packer: { type: 'string' },
  topology: { type: 'string' },
  'proxy-host': { type: 'string' },
  'skip-deprovision': { type: 'boolean' },
  'rewrite-uri': { type: 'string', multiple: true },
  'download-timeout': { type: 'string' },
  'download-stall-timeout': { type: 'string' },
  'download-total-timeout': { type: 'string' },
  'storage-connection-string': { type: 'string' },
  'storage-sas-url': { type: 'string' },
  'storage-account-url': { type: 'string' },
  'storage-container': { type: 'string' },
  'storage-timeout': { type: 'string' },
  'local-logs-only': { type: 'boolean' },
  'log-drain-timeout': { type: 'string' },
  'log-spool-limit': { type: 'string' },
  'log-format': { type: 'string' },
  'log-max-blocks': { type: 'string' },
  'winrm-auth': { type: 'string' },
  'winrm-ca': { type: 'string' },
  'winrm-cert-sha256': { type: 'string' },
} as const;

export async function runBuildCommand(argv: string[], io: CommandIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      ...TEMPLATE_OPTIONS,
      ...BUILD_OPTIONS,
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    allowPositionals: true,
  });
  if (values.help) {
    io.out(BUILD_HELP);
    return 0;
  }
  const templateFile = positionals[0] ?? process.env.ISOBUILD_TEMPLATE;
  if (!templateFile || positionals.length > 1) {
    throw new IsobuildError(
      'usage',
      'build needs one template file: isobuild build <template.json> --host ADDRESS (or set ISOBUILD_TEMPLATE).',
    );
  }
  const config = loadBuildConfig(values, process.env);
  io.registerSecrets(configSecrets(config));
  const timeoutText = values['build-timeout'] ?? process.env.ISOBUILD_BUILD_TIMEOUT;
  const parsedTimeout = timeoutText === undefined ? undefined : readDuration(timeoutText);
  if (parsedTimeout && 'problem' in parsedTimeout) {
    throw new IsobuildError('usage', `--build-timeout / ISOBUILD_BUILD_TIMEOUT: ${parsedTimeout.problem}`);
  }
  const buildTimeoutMs = parsedTimeout?.ms;

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
    if (status.logStore && status.logStore.state !== 'unavailable') {
      const workDir = config.store ? '' : ` --work-dir ${config.workDir}`;
      io.out(
        `Stored log: ${status.logStore.customization} (${status.logStore.state}); read it with: isobuild logs ${status.runId}${workDir}`,
      );
    }
  }
  if (outcome.problems.length > 0 && !values.json && !logger) io.err(formatProblems(outcome.problems));
  return outcome.exitCode;
}
