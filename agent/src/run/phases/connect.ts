/**
 * The connect phase (aib-reference §4): Packer talks to a local relay, which dials the build VM directly or
 * through the proxy, as vmProfile.vnetConfig (or --topology) says. The readiness probe then proves the VM
 * accepts a login, and says exactly why not, before Packer's generic timeout would.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { seconds } from '../../format-seconds.js';
import { PACKER_VARIABLES, secureParameterVariable } from '../../packer-contract.js';
import type { Relay } from '../../relay/relay.js';
import { openVmRelay } from '../../vm-path/vm-relay.js';
import { VmUnreachable, waitUntilReachable } from '../../vm-path/vm-probe.js';
import type { Phase } from '../phase-runner.js';
import type { RunContext } from '../run-context.js';

/** How long the first step may wait for the store to open, so that its line comes first. */
const STORE_ANNOUNCE_BUDGET_MS = 3_000;

export const connectPhase: Phase<RunContext> = {
  name: 'connect',
  async run(run, signal) {
    const relay = await openRelay(run);
    run.connection = { relay, variables: {}, failureBeforePacker: undefined };
    const started = Date.now();
    try {
      await waitUntilReachable(run.vmPath, relay, {
        timeoutMs: run.config.readyTimeoutMs,
        signal,
        onAttempt: (attempt, failure) =>
          run.logs.customization.write(
            'ISOBUILD',
            `readiness attempt ${attempt}: ${relay.lastFailure() ?? failure.message}`,
          ),
      });
    } catch (error) {
      if (!signal.aborted && error instanceof VmUnreachable) run.progress.phase(run.vmPath.label, 'failed');
      throw error;
    }
    run.progress.phase(
      `${run.vmPath.label} accepts ${run.vmPath.protocol}`,
      'ok',
      `(${seconds(Date.now() - started)})`,
    );
    // Where the logs stream is said here, before the first step, not wherever the store happened to open.
    await run.store.announce(STORE_ANNOUNCE_BUDGET_MS);
    signal.throwIfAborted();
    run.connection = {
      relay,
      variables: await packerVariables(run, relay),
      failureBeforePacker: relay.lastFailure(),
    };
  },
  async cleanup(run) {
    await run.connection?.relay.close();
  },
};

function openRelay(run: RunContext): Promise<Relay> {
  return openVmRelay(run.vmPath, {
    connectTimeoutMs: Math.min(10_000, run.config.readyTimeoutMs),
    onConnection: (c) => {
      run.events.connection(c);
      run.logs.customization.write(
        'ISOBUILD',
        `relay connection ${c.connId} via ${c.hop}: ${c.bytesToUpstream} bytes out, ${c.bytesFromUpstream} bytes in, ${seconds(c.durationMs)}, ${c.end}`,
      );
    },
  });
}

/** Packer's variables: where the relay listens, who logs in and how, and the template's secure values. */
async function packerVariables(run: RunContext, relay: Relay): Promise<Record<string, string>> {
  const { config, template, vmPath } = run;
  const variables: Record<string, string> = {
    [PACKER_VARIABLES.host]: relay.host,
    [PACKER_VARIABLES.port]: String(relay.port),
    [PACKER_VARIABLES.username]: config.user,
    [PACKER_VARIABLES.runId]: config.runId,
    [PACKER_VARIABLES.connectTimeout]: `${Math.ceil(config.readyTimeoutMs / 1000)}s`,
  };
  if (vmPath.protocol === 'SSH') {
    variables[PACKER_VARIABLES.sshKeyFile] = config.sshKeyFile ?? (await keyFileFor(run));
  } else {
    variables[PACKER_VARIABLES.winrmUseNtlm] = String(config.winrmAuth === 'ntlm');
    // Packer reaches the VM through the loopback relay, so it cannot check the certificate's name; the
    // readiness probe checked it (--winrm-ca / --winrm-cert-sha256) against the VM.
    variables[PACKER_VARIABLES.winrmInsecure] = 'true';
  }
  if (config.sshPassword) variables[PACKER_VARIABLES.sshPassword] = config.sshPassword.reveal();
  if (config.winrmPassword) variables[PACKER_VARIABLES.winrmPassword] = config.winrmPassword.reveal();
  template.secureValues.forEach((value, i) => (variables[secureParameterVariable(i)] = value));
  return variables;
}

/** Packer reads keys from files: a key given as content (ISOBUILD_SSH_KEY) lives in the run's tmp dir, mode 600. */
async function keyFileFor(run: RunContext): Promise<string> {
  const key = run.config.sshPrivateKey?.reveal();
  if (!key) return '';
  const file = join(run.tmpDir, 'ssh_key');
  await writeFile(file, key.endsWith('\n') ? key : `${key}\n`, { mode: 0o600 });
  return file;
}
