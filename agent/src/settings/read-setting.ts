/** Reads one setting of the table from parsed flags and the environment (the flag wins). */
import { SETTINGS, takes, type CommandName, type SettingKey } from './settings-table.js';

/** Parsed command-line values, by flag name. */
export interface SettingFlags {
  readonly [name: string]: string | boolean | string[] | undefined;
}

/** A setting's value, if given, and `source`: the flag or variable to name in a message about it. */
export interface SettingInput {
  readonly value?: string;
  readonly source: string;
}

export type Read = (key: SettingKey) => SettingInput;

/** The flag if given, else the environment variable; an empty variable counts as not set. */
export function settingReader(flags: SettingFlags, env: NodeJS.ProcessEnv): Read {
  return (key) => {
    const row = SETTINGS[key];
    const flagSource = 'flag' in row ? `--${row.flag}` : row.env;
    const flag = 'flag' in row ? flags[row.flag] : undefined;
    if (typeof flag === 'string') return { value: flag, source: flagSource };
    const fromEnv = env[row.env];
    return fromEnv !== undefined && fromEnv !== ''
      ? { value: fromEnv, source: row.env }
      : { source: flagSource };
  };
}

/** The flag if given, else the variable as it is, empty or not (for settings that always read it so). */
export function rawSetting(flags: SettingFlags, env: NodeJS.ProcessEnv, key: SettingKey): string | undefined {
  const row = SETTINGS[key];
  const flag = 'flag' in row ? flags[row.flag] : undefined;
  return typeof flag === 'string' ? flag : env[row.env];
}

/** A switch is on when its flag is given or its variable is 1 or true. */
export function switchSetting(flags: SettingFlags, env: NodeJS.ProcessEnv, key: SettingKey): boolean {
  const row = SETTINGS[key];
  const value = env[row.env];
  return ('flag' in row && flags[row.flag] === true) || value === '1' || value === 'true';
}

/**
 * A repeatable setting: every flag given, then the variable's space-separated values when the command
 * reads the variable.
 */
export function listSetting(
  flags: SettingFlags,
  env: NodeJS.ProcessEnv,
  key: SettingKey,
  command: CommandName,
): string[] {
  const row = SETTINGS[key];
  const given = 'flag' in row ? flags[row.flag] : undefined;
  const fromEnv = takes(row, command, 'env') ? env[row.env] : undefined;
  return [...(Array.isArray(given) ? given : []), ...(fromEnv ? fromEnv.split(/\s+/).filter(Boolean) : [])];
}
