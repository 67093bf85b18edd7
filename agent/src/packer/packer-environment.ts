/**
 * The environment of every Packer process isobuild starts (build, version, validate, plugins installed).
 * It is built from nothing, never from isobuild's own environment, which may hold credentials (store keys,
 * passwords): PATH, then only what Packer needs for this call.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { executablePath, processEnvironment } from '../settings/process-environment.js';

export interface PackerEnvironmentOptions {
  /** Packer's HOME (its config and cache directory); a run gives it its own. */
  readonly home?: string;
  /** Packer's temporary files (local scripts, logs), so a run's leftovers stay in its own directory. */
  readonly tmpDir?: string;
  /** PACKER_LOG=1: Packer's debug log on stderr, which holds the reason behind "Timeout waiting for SSH". */
  readonly log?: boolean;
  /** Values for the rendered file's variables, passed as PKR_VAR_<name>. */
  readonly variables?: Readonly<Record<string, string>>;
  /**
   * Where the user's Packer plugins are installed: HOME, PACKER_CONFIG_DIR and PACKER_PLUGIN_PATH from
   * isobuild's own environment (`home` wins over HOME). Only for calls that must see those plugins.
   */
  readonly userPlugins?: boolean;
}

/**
 * Where Packer keeps plugins for a user whose home is `home`: the legacy ~/.packer.d/plugins when that
 * exists (Packer prefers it, as 1.7 did), else the XDG $XDG_CONFIG_HOME/packer/plugins (~/.config by
 * default) of Packer 1.8+.
 */
export function userPluginDirectory(home: string, xdgConfigHome?: string): string | undefined {
  const candidates = [
    join(home, '.packer.d', 'plugins'),
    join(xdgConfigHome || join(home, '.config'), 'packer', 'plugins'),
  ];
  return candidates.find((dir) => existsSync(dir));
}

/** Packer's own settings for finding its config and plugin directories (none holds a secret). */
const PLUGIN_LOCATION = ['HOME', 'XDG_CONFIG_HOME', 'PACKER_CONFIG_DIR', 'PACKER_PLUGIN_PATH'] as const;

export function packerEnvironment(options: PackerEnvironmentOptions = {}): Record<string, string> {
  const env: Record<string, string> = { PATH: executablePath() };
  if (options.userPlugins) {
    const own = processEnvironment();
    for (const name of PLUGIN_LOCATION) {
      const value = own[name];
      if (value !== undefined) env[name] = value;
    }
    // A run's own HOME would hide the plugins installed under the user's (Packer 1.7+ looks there when
    // PACKER_PLUGIN_PATH and PACKER_CONFIG_DIR are unset): point Packer at the user's plugin directory.
    const userPlugins = own.HOME ? userPluginDirectory(own.HOME, own.XDG_CONFIG_HOME) : undefined;
    if (options.home !== undefined && !env.PACKER_PLUGIN_PATH && !env.PACKER_CONFIG_DIR && userPlugins)
      env.PACKER_PLUGIN_PATH = userPlugins;
  }
  if (options.home !== undefined) env.HOME = options.home;
  if (options.tmpDir !== undefined) env.TMPDIR = options.tmpDir;
  env.CHECKPOINT_DISABLE = '1';
  if (options.log) env.PACKER_LOG = '1';
  env.PACKER_NO_COLOR = '1';
  for (const [name, value] of Object.entries(options.variables ?? {})) env[`PKR_VAR_${name}`] = value;
  return env;
}
