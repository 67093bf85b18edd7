/**
 * `isobuild doctor`'s checks: what a build needs, each answered ok, warn or fail with the detail a user acts
 * on. Packer and its version; the plugins a template needs; the log store reachable and writable, and the
 * clock against it; the build VM along every hop (relay → proxy → VM) with the readiness probe's diagnostics.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { connect } from 'node:net';
import type { LogStoreConfig } from '../settings/build-config.js';
import { describeStorageError } from '../logstore/append-uploader.js';
import { ensureContainer } from '../logstore/blob-store.js';
import { openConfiguredLogStore } from '../logstore/open-log-store.js';
import { detectPacker } from '../packer/packer-version.js';
import { packerEnvironment } from '../packer/packer-environment.js';
import type { ImageTemplate } from '../template/model.js';
import { WINDOWS_UPDATE_PLUGIN } from '../render/packer-template.js';
import type { VmPath } from '../vm-path/vm-path.js';
import { VmUnreachable, waitUntilReachable } from '../vm-path/vm-probe.js';
import { openVmRelay } from '../vm-path/vm-relay.js';

export interface CheckResult {
  readonly check: string;
  readonly status: 'ok' | 'warn' | 'fail';
  readonly detail: string;
}

/** Azure rejects requests signed with a clock more than 15 minutes off; warn well before that. */
const CLOCK_SKEW_WARN_MS = 5 * 60_000;

export async function checkPacker(packerPath: string, template?: ImageTemplate): Promise<CheckResult[]> {
  try {
    const packer = await detectPacker(packerPath);
    // Which plugins this Packer has matters most in a container image, where nothing can be added later.
    const plugins = packer.supportsPlugins ? await installedPlugins(packer.path) : undefined;
    const pluginText = !packer.supportsPlugins
      ? 'loads no external plugins (Packer 1.7+ is needed for WindowsUpdate steps)'
      : plugins === undefined
        ? 'plugins: cannot be listed (`packer plugins installed` needs Packer 1.8+)'
        : `plugins: ${plugins.length > 0 ? plugins.join(', ') : 'none installed'}`;
    const results: CheckResult[] = [
      { check: 'Packer', status: 'ok', detail: `${packer.path} ${packer.version}; ${pluginText}` },
    ];
    if (template?.customize.some((s) => s.type === 'WindowsUpdate')) {
      const source = WINDOWS_UPDATE_PLUGIN.source;
      const missing = plugins !== undefined && !plugins.some((p) => p.startsWith(`${source} `));
      results.push(
        !packer.supportsPlugins
          ? {
              check: `plugin ${source}`,
              status: 'fail',
              detail: `the template's WindowsUpdate steps need it, and Packer ${packer.version} cannot load plugins: install Packer 1.7+ (--packer)`,
            }
          : missing
            ? {
                check: `plugin ${source}`,
                status: 'fail',
                detail: `the template's WindowsUpdate steps need it, and it is not installed: run "packer plugins install ${source}"`,
              }
            : {
                check: `plugin ${source}`,
                status: 'ok',
                detail: `Packer ${packer.version} loads plugins; the rendered template declares it in required_plugins`,
              },
      );
    }
    return results;
  } catch (error) {
    return [{ check: 'Packer', status: 'fail', detail: (error as Error).message }];
  }
}

/**
 * The plugins `packer plugins installed` lists, as "source version" (e.g. "github.com/rgl/windows-update
 * 0.16.10"), or undefined when this Packer cannot list them.
 */
function installedPlugins(packerPath: string): Promise<string[] | undefined> {
  return new Promise((resolve) => {
    execFile(
      packerPath,
      ['plugins', 'installed'],
      // Not isobuild's own environment (it may hold credentials): only where the user's plugins live.
      { timeout: 30_000, env: packerEnvironment({ userPlugins: true }) },
      (error, stdout) => {
        if (error) return resolve(undefined);
        const plugins = stdout
          .split('\n')
          .map((line) => /\/((?:[^/\s]+\/){2}[^/\s]+)\/packer-plugin-[^/\s]*_v(\d+\.\d+\.\d+)/.exec(line))
          .filter((match) => match !== null)
          .map((match) => `${match[1]} ${match[2]}`);
        resolve(plugins);
      },
    );
  });
}

/** Writes and deletes a small blob, and compares the local clock with the service's. */
export async function checkStore(config: LogStoreConfig, signal?: AbortSignal): Promise<CheckResult[]> {
  const where = config.store ? 'log store' : `embedded log store (${config.workDir}/.azurite)`;
  let opened;
  try {
    opened = await openConfiguredLogStore(config, signal);
  } catch (error) {
    return [{ check: where, status: 'fail', detail: (error as Error).message }];
  }
  try {
    const { container, deadlines } = opened.store;
    // Each request has the build's own deadline: a frozen path fails the check instead of hanging it.
    const request = <T>(call: (abortSignal: AbortSignal) => Promise<T>): Promise<T> =>
      deadlines.run(call, signal ? { signal } : {});
    await request((abortSignal) => ensureContainer(container, abortSignal));
    const blob = container.getBlockBlobClient(`doctor/${randomUUID()}`);
    const reply = await request((abortSignal) => blob.upload('isobuild doctor', 15, { abortSignal }));
    await request((abortSignal) => blob.delete({ abortSignal }));
    const results: CheckResult[] = [
      { check: where, status: 'ok', detail: `${opened.store.displayUrl} is writable` },
    ];
    const serverDate = reply.date?.getTime();
    if (serverDate) {
      // The Date header has one-second resolution; anything below that is noise.
      const skewMs = Date.now() - serverDate;
      results.push({
        check: 'clock skew',
        status: Math.abs(skewMs) > CLOCK_SKEW_WARN_MS ? 'warn' : 'ok',
        detail: `${(skewMs / 1000).toFixed(0)} s against the storage service${Math.abs(skewMs) > CLOCK_SKEW_WARN_MS ? ': fix the clock (NTP); Azure refuses requests more than 15 minutes off' : ''}`,
      });
    }
    return results;
  } catch (error) {
    return [
      {
        check: where,
        status: 'fail',
        detail: `${opened.store.displayUrl}: ${describeStorageError(error)}. ${
          (error as { statusCode?: number }).statusCode === undefined
            ? 'Is the storage endpoint reachable from here (address, firewall, private endpoint)?'
            : 'Check the credentials, and that the identity may create containers and write blobs.'
        }`,
      },
    ];
  } finally {
    await opened.close();
  }
}

/** The path to the build VM, hop by hop, ending with the same readiness probe a build runs (at most 20 s). */
export async function checkBuildVm(
  path: VmPath,
  readyTimeoutMs: number,
  signal?: AbortSignal,
): Promise<CheckResult[]> {
  const { hop } = path;
  const results: CheckResult[] = [];
  if (hop.kind === 'proxy') {
    const reached = await tcpConnect(hop.host, hop.port, 5_000);
    results.push({
      check: `proxy ${hop.host}:${hop.port}`,
      status: reached === true ? 'ok' : 'fail',
      detail:
        reached === true
          ? 'accepts connections'
          : `${reached}: is isobuild-proxy running there, and does the network allow it?`,
    });
    if (reached !== true) return results;
  }
  const relay = await openVmRelay(path, { connectTimeoutMs: 10_000 });
  results.push({ check: 'relay', status: 'ok', detail: `listening on ${relay.host}:${relay.port}` });
  const check = hop.kind === 'proxy' ? `build VM ${hop.vm} (through the proxy)` : path.label;
  try {
    await waitUntilReachable(path, relay, {
      timeoutMs: Math.min(readyTimeoutMs, 20_000),
      ...(signal ? { signal } : {}),
    });
    results.push({ check, status: 'ok', detail: `accepts ${path.protocol} login as ${path.user}` });
  } catch (error) {
    // Anything else (a cancel, say) still ends as a row: doctor reports, it does not crash.
    const detail =
      error instanceof VmUnreachable ? error.reason : (relay.lastFailure() ?? (error as Error).message);
    results.push({ check, status: 'fail', detail });
  } finally {
    await relay.close();
  }
  return results;
}

function tcpConnect(host: string, port: number, timeoutMs: number): Promise<true | string> {
  return new Promise((resolve) => {
    const socket = connect({ host, port, timeout: timeoutMs });
    const done = (result: true | string): void => {
      socket.destroy();
      resolve(result);
    };
    socket.once('connect', () => done(true));
    socket.once('timeout', () => done(`no answer within ${timeoutMs / 1000} s`));
    socket.once('error', (error: NodeJS.ErrnoException) =>
      done(error.code === 'ECONNREFUSED' ? 'refused the connection' : (error.code ?? error.message)),
    );
  });
}
