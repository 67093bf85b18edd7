/** The option lines of a command's --help, printed from the settings table. */
import {
  SETTING_ROWS,
  SETTINGS,
  envDisplay,
  takes,
  type CommandName,
  type OptionHelp,
  type Setting,
  type SettingGroup,
  type SettingKey,
} from './settings-table.js';

/** Where descriptions start, and where the environment variable column starts. */
const TEXT_COLUMN = 27;
const ENV_COLUMN = 81;
const INDENT = '  ';

/**
 * The option lines of the settings a command takes as flags: a group's rows in table order, or the
 * given rows in the given order.
 */
export function optionHelp(command: CommandName, select: SettingGroup | readonly SettingKey[]): string {
  const rows: readonly Setting[] =
    typeof select === 'string'
      ? SETTING_ROWS.filter((row) => row.group === select)
      : select.map((key) => SETTINGS[key]);
  return rows
    .filter((row) => takes(row, command, 'flag'))
    .flatMap((row) => optionLines(row, command))
    .join('\n');
}

/** Several settings on one line (`--a X, --b Y`), described together. */
export function combinedOptionHelp(keys: readonly SettingKey[], text: readonly string[]): string {
  const usage = keys.map((key) => usageOf(SETTINGS[key], SETTINGS[key].help)).join(', ');
  return [`${INDENT}${usage}`, ...text.map((line) => continuation(line))].join('\n');
}

function optionLines(row: Setting, command: CommandName): string[] {
  const help = row.helpIn?.[command] ?? row.help;
  const env = takes(row, command, 'env') ? envDisplay(row) : undefined;
  const text = [...help.text];
  if (env !== undefined && help.envAt === 'inline') text.push(`(default ${row.default?.text}; ${env})`);
  const usage = usageOf(row, help);
  const left = `${INDENT}${usage}`;
  // A usage longer than the column pushes the text two spaces after it.
  const textColumn = help.textColumn ?? (left.length < TEXT_COLUMN ? TEXT_COLUMN : left.length + 2);
  const lines = text.map((line, i) => (i === 0 ? left.padEnd(textColumn) + line : continuation(line)));
  if (env !== undefined && help.envAt !== 'inline') {
    const at = help.envAt === 'last' ? lines.length - 1 : 0;
    lines[at] = withColumn(lines[at]!, env, help.envColumn ?? ENV_COLUMN);
  }
  return lines;
}

function usageOf(row: Setting, help: OptionHelp): string {
  return help.arg === undefined ? `--${row.flag}` : `--${row.flag} ${help.arg}`;
}

function continuation(line: string): string {
  return ' '.repeat(TEXT_COLUMN) + line;
}

/** Appends a column at `column`, or one space after the line when it is longer. */
function withColumn(line: string, value: string, column: number): string {
  return `${line.padEnd(column - 1)} ${value}`;
}
