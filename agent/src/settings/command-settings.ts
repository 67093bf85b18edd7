/**
 * The settings commands need besides a build configuration: the template file, the build timeout,
 * doctor's Packer and log-store switch, render's URI rewrites and the debug switch. Read through the table.
 */
import { parseRewrite, type UriRewrite } from '../artifacts/rewrite-uri.js';
import { readDuration } from '../duration.js';
import { IsobuildError } from '../errors.js';
import { listSetting, rawSetting, switchSetting, type SettingFlags } from './read-setting.js';
import { SETTINGS } from './settings-table.js';

/** The template file: the first argument, else ISOBUILD_TEMPLATE. */
export function loadTemplateFile(positionals: readonly string[], env: NodeJS.ProcessEnv): string | undefined {
  return positionals[0] ?? rawSetting({}, env, 'template');
}

/** The build timeout in ms, when --build-timeout or ISOBUILD_BUILD_TIMEOUT overrides the template's. */
export function loadBuildTimeout(flags: SettingFlags, env: NodeJS.ProcessEnv): number | undefined {
  const text = rawSetting(flags, env, 'buildTimeout');
  if (text === undefined) return undefined;
  const parsed = readDuration(text);
  if ('problem' in parsed) {
    const { flag, env: name } = SETTINGS.buildTimeout;
    throw new IsobuildError('usage', `--${flag} / ${name}: ${parsed.problem}`);
  }
  return parsed.ms;
}

/** The Packer binary doctor checks (a set but empty ISOBUILD_PACKER is taken as given, as doctor always did). */
export function loadPackerPath(flags: SettingFlags, env: NodeJS.ProcessEnv): string {
  return rawSetting(flags, env, 'packer') ?? SETTINGS.packer.default.value;
}

/** --local-logs-only / ISOBUILD_LOCAL_LOGS_ONLY=1: no log store at all. */
export function loadLocalLogsOnly(flags: SettingFlags, env: NodeJS.ProcessEnv): boolean {
  return switchSetting(flags, env, 'localLogsOnly');
}

/** Render's --rewrite-uri rules (render reads no variable for them); the first bad one is thrown. */
export function loadRenderRewrites(flags: SettingFlags, env: NodeJS.ProcessEnv): UriRewrite[] {
  return listSetting(flags, env, 'rewriteUri', 'render').map((spec) => parseRewrite(spec));
}

/** ISOBUILD_DEBUG=1: internal errors print their stack trace (only 1 turns it on). */
export function debugEnabled(env: NodeJS.ProcessEnv): boolean {
  return rawSetting({}, env, 'debug') === '1';
}

/** --resume RUN_ID and --from-step N of `isobuild build` (both optional). */
export function loadResume(
  flags: SettingFlags,
  env: NodeJS.ProcessEnv,
): { readonly resume?: string; readonly fromStep?: string } {
  const resume = rawSetting(flags, env, 'resume');
  const fromStep = rawSetting(flags, env, 'fromStep');
  return { ...(resume ? { resume } : {}), ...(fromStep ? { fromStep } : {}) };
}

/**
 * The flags a resumed run takes from the run it continues, where neither a flag nor a variable sets them:
 * the same VM, port, user and network path (credentials are never recorded; they come as for any build).
 */
export function flagsFromTarget(
  flags: SettingFlags,
  env: NodeJS.ProcessEnv,
  target: { host: string; port: number; topology: string; proxyHost?: string; user: string },
): SettingFlags {
  const recorded: Record<string, string | undefined> = {
    host: target.host,
    port: String(target.port),
    topology: target.topology,
    proxyHost: target.proxyHost,
    user: target.user,
  };
  const merged: Record<string, SettingFlags[string]> = { ...flags };
  for (const [key, value] of Object.entries(recorded)) {
    const setting = SETTINGS[key as 'host'];
    if (value !== undefined && rawSetting(flags, env, key as 'host') === undefined && setting.flag)
      merged[setting.flag] = value;
  }
  return merged;
}
