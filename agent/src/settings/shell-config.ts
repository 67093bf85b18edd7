/**
 * The configuration of `isobuild shell`: where the run's VM is comes from the run's record (its target), the
 * credentials and deadlines from the same flags and ISOBUILD_* variables as `build`, checked by build's own
 * loader so that every problem reads the same. Only the settings the table gives `shell` are read.
 */
import { IsobuildError, isIsobuildError } from '../errors.js';
import { loadBuildConfig, type BuildConfig } from './build-config.js';
import type { RunTarget } from '../run/run-status.js';
import type { SettingFlags } from './read-setting.js';
import { SETTING_ROWS, SETTINGS, takes } from './settings-table.js';

/**
 * A build configuration for the run's VM (the input vm-path's resolveVmPath takes): host, port, user and
 * topology as recorded, --proxy-host replacing the recorded proxy, everything else as `build` reads it.
 * Settings a shell does not use keep build's defaults.
 * @throws IsobuildError 'usage' (exit 2) listing every problem, or for --proxy-host on a direct run.
 */
export function loadShellConfig(
  flags: SettingFlags,
  env: NodeJS.ProcessEnv,
  run: { readonly runId: string; readonly target: RunTarget },
  cwd = process.cwd(),
): BuildConfig {
  const { target } = run;
  const proxyFlag = SETTINGS.proxyHost.flag;
  const proxyOverride = flags[proxyFlag];
  if (typeof proxyOverride === 'string' && target.topology !== 'proxy')
    throw new IsobuildError(
      'usage',
      `run ${run.runId} reached its build VM directly (no proxy): --${proxyFlag} only replaces the proxy of a run that went through one; leave it out.`,
    );
  const recorded: Record<string, string> = {
    [SETTINGS.host.flag]: target.host,
    [SETTINGS.port.flag]: String(target.port),
    [SETTINGS.user.flag]: target.user,
    [SETTINGS.topology.flag]: target.topology,
    [SETTINGS.runId.flag]: run.runId,
  };
  const proxyHost = typeof proxyOverride === 'string' ? proxyOverride : target.proxyHost;
  if (target.topology === 'proxy' && proxyHost !== undefined) recorded[proxyFlag] = proxyHost;
  try {
    return loadBuildConfig({ ...shellFlags(flags), ...recorded }, shellEnvironment(env), cwd);
  } catch (error) {
    if (!isIsobuildError(error) || error.problems.length === 0) throw error;
    throw new IsobuildError(
      'usage',
      `the shell configuration has ${error.problems.length} problem(s); see isobuild shell --help.`,
      { problems: error.problems },
    );
  }
}

/** The flags the table gives `shell` (parseArgs already refused any other). */
function shellFlags(flags: SettingFlags): SettingFlags {
  const taken: Record<string, SettingFlags[string]> = {};
  for (const row of SETTING_ROWS)
    if (row.flag !== undefined && takes(row, 'shell', 'flag') && flags[row.flag] !== undefined)
      taken[row.flag] = flags[row.flag];
  return taken;
}

/** The variables `shell` reads: a build's ISOBUILD_HOST or ISOBUILD_TOPOLOGY must not redirect it. */
function shellEnvironment(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const taken: NodeJS.ProcessEnv = {};
  for (const row of SETTING_ROWS)
    if (row.env !== undefined && takes(row, 'shell', 'env') && env[row.env] !== undefined)
      taken[row.env] = env[row.env];
  return taken;
}
