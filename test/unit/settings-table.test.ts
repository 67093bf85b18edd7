/**
 * The settings table is the one list of isobuild's settings: parsing, --help and the environment list come
 * from it, and must come out exactly as they were before the table existed.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { BUILD_HELP } from '../../agent/src/cli/commands/build.js';
import { DIFF_HELP } from '../../agent/src/cli/commands/diff.js';
import { DOCTOR_HELP } from '../../agent/src/cli/commands/doctor.js';
import { LOGS_HELP } from '../../agent/src/cli/commands/logs.js';
import { RENDER_HELP } from '../../agent/src/cli/commands/render.js';
import { SHELL_HELP } from '../../agent/src/cli/commands/shell.js';
import { TESTVM_HELP } from '../../agent/src/cli/commands/testvm.js';
import { parseDuration, parseSize } from '../../agent/src/settings/build-config.js';
import {
  debugEnabled,
  loadBuildTimeout,
  loadLocalLogsOnly,
  loadPackerPath,
  loadRenderRewrites,
  loadTemplateFile,
} from '../../agent/src/settings/command-settings.js';
import { listSetting } from '../../agent/src/settings/read-setting.js';
import {
  BUILD_ENVIRONMENT,
  SETTING_ROWS,
  commandOptions,
  takes,
  type CommandName,
} from '../../agent/src/settings/settings-table.js';

const HELP: Record<string, string> = {
  build: BUILD_HELP,
  diff: DIFF_HELP,
  doctor: DOCTOR_HELP,
  logs: LOGS_HELP,
  render: RENDER_HELP,
  shell: SHELL_HELP,
  testvm: TESTVM_HELP,
};
const fixture = (name: string): string => readFileSync(`test/fixtures/help/${name}.txt`, 'utf8');
/** `isobuild doctor` takes the build settings and points to build's help for them. */
const helpOf = (command: CommandName): string => HELP[command === 'doctor' ? 'build' : command] ?? '';

describe('help derived from the settings table', () => {
  it.each(Object.keys(HELP))('isobuild %s --help prints what it printed before the table', (name) => {
    expect(`${HELP[name]}\n`).toBe(fixture(name));
  });

  it.each(['build', 'doctor', 'logs', 'render', 'shell'] as const)(
    'every flag %s takes has a parseArgs option of its kind and a help line',
    (command) => {
      const options: Record<string, { type: string; multiple?: boolean }> = commandOptions(command);
      const rows = SETTING_ROWS.filter((row) => takes(row, command, 'flag'));
      expect(rows.length).toBeGreaterThan(0);
      for (const row of rows) {
        expect(options[row.flag!], row.key).toEqual(
          row.kind === 'switch'
            ? { type: 'boolean' }
            : row.kind === 'list'
              ? { type: 'string', multiple: true }
              : { type: 'string' },
        );
        expect(helpOf(command), row.key).toMatch(new RegExp(`^  (\\S.*, )?--${row.flag}\\b`, 'm'));
      }
      expect(Object.keys(options).sort()).toEqual(rows.map((row) => row.flag).sort());
    },
  );

  it('help names a variable only where the command reads it', () => {
    expect(RENDER_HELP).not.toContain('ISOBUILD_REWRITE_URI');
    expect(RENDER_HELP).toContain('(default 60s; ISOBUILD_DOWNLOAD_STALL_TIMEOUT)');
    for (const row of SETTING_ROWS.filter((r) => takes(r, 'build', 'env') && r.flag))
      expect(BUILD_HELP, row.key).toMatch(new RegExp(`--${row.flag}\\b.*\\s${row.env}(=1)?$`, 'm'));
  });
});

describe('the settings table', () => {
  it('names every flag and every environment variable once', () => {
    const envs = SETTING_ROWS.flatMap((row) => (row.env ? [row.env] : []));
    const flags = SETTING_ROWS.flatMap((row) => (row.flag ? [row.flag] : []));
    expect(new Set(envs).size).toBe(envs.length);
    expect(new Set(flags).size).toBe(flags.length);
    for (const env of envs) expect(env).toMatch(/^ISOBUILD_[A-Z0-9_]+$/);
  });

  it('never shows a default for a secret', () => {
    const secrets = SETTING_ROWS.filter((row) => row.secret);
    expect(secrets.map((row) => row.env).sort()).toEqual([
      'ISOBUILD_SSH_KEY',
      'ISOBUILD_SSH_PASSWORD',
      'ISOBUILD_STORAGE_CONNECTION_STRING',
      'ISOBUILD_STORAGE_SAS_URL',
      'ISOBUILD_WINRM_PASSWORD',
    ]);
    for (const row of secrets) {
      expect(row.default, row.key).toBeUndefined();
      for (const help of [row.help, ...Object.values(row.helpIn ?? {})])
        expect(help.text.join(' '), row.key).not.toMatch(/default/i);
    }
  });

  it('shows each default as the value it stands for', () => {
    const shown = SETTING_ROWS.filter((row) => typeof row.default?.value === 'number');
    expect(shown.length).toBeGreaterThan(5);
    for (const row of shown) {
      const text = row.default!.text;
      const value = parseDuration(text) ?? parseSize(text);
      expect(value, row.key).toBe(row.default!.value);
    }
    for (const row of SETTING_ROWS.filter((r) => r.default?.value !== undefined && r.flag))
      expect(row.help.text.join(' '), row.key).toContain(row.default!.text);
  });

  it('keeps the list of variables isobuild build reads', () => {
    expect([...BUILD_ENVIRONMENT].sort()).toEqual(
      [
        'ISOBUILD_HOST',
        'ISOBUILD_PORT',
        'ISOBUILD_USER',
        'ISOBUILD_SSH_KEY_FILE',
        'ISOBUILD_RUN_ID',
        'ISOBUILD_RESUME',
        'ISOBUILD_FROM_STEP',
        'ISOBUILD_NO_SBOM',
        'ISOBUILD_WINDOWS_UPLOAD',
        'ISOBUILD_WORK_DIR',
        'ISOBUILD_READY_TIMEOUT',
        'ISOBUILD_KILL_GRACE',
        'ISOBUILD_PACKER',
        'ISOBUILD_TOPOLOGY',
        'ISOBUILD_PROXY_HOST',
        'ISOBUILD_STORAGE_CONNECTION_STRING',
        'ISOBUILD_STORAGE_SAS_URL',
        'ISOBUILD_STORAGE_ACCOUNT_URL',
        'ISOBUILD_STORAGE_CONTAINER',
        'ISOBUILD_STORAGE_TIMEOUT',
        'ISOBUILD_LOG_DRAIN_TIMEOUT',
        'ISOBUILD_LOG_SPOOL_LIMIT',
        'ISOBUILD_LOG_FORMAT',
        'ISOBUILD_LOG_MAX_BLOCKS',
        'ISOBUILD_WINRM_AUTH',
        'ISOBUILD_WINRM_CA',
        'ISOBUILD_WINRM_CERT_SHA256',
        'ISOBUILD_DOWNLOAD_TIMEOUT',
        'ISOBUILD_DOWNLOAD_STALL_TIMEOUT',
        'ISOBUILD_DOWNLOAD_TOTAL_TIMEOUT',
        'ISOBUILD_SSH_KEY',
        'ISOBUILD_SSH_PASSWORD',
        'ISOBUILD_WINRM_PASSWORD',
        'ISOBUILD_SKIP_DEPROVISION',
        'ISOBUILD_LOCAL_LOGS_ONLY',
        'ISOBUILD_REWRITE_URI',
        'ISOBUILD_TEMPLATE',
        'ISOBUILD_BUILD_TIMEOUT',
        'ISOBUILD_DEBUG',
      ].sort(),
    );
  });

  it('keeps the flags of build (and doctor), logs and render', () => {
    const flags = (command: CommandName): string[] => Object.keys(commandOptions(command)).sort();
    expect(flags('build')).toHaveLength(34);
    // Only a build resumes, starts later, collects an SBOM or uploads files; doctor checks what any build needs.
    const buildOnly = new Set(['resume', 'from-step', 'no-sbom', 'windows-upload']);
    expect(flags('doctor')).toEqual(flags('build').filter((f) => !buildOnly.has(f)));
    expect(flags('logs')).toEqual(
      [
        'work-dir',
        'storage-connection-string',
        'storage-sas-url',
        'storage-account-url',
        'storage-container',
        'storage-timeout',
      ].sort(),
    );
    expect(flags('render')).toEqual(
      [
        'rewrite-uri',
        'skip-deprovision',
        'packer',
        'download-timeout',
        'download-stall-timeout',
        'download-total-timeout',
      ].sort(),
    );
  });
});

describe('settings the commands read through the table', () => {
  it('takes the template from the argument, else ISOBUILD_TEMPLATE', () => {
    expect(loadTemplateFile(['a.json'], { ISOBUILD_TEMPLATE: 'b.json' })).toBe('a.json');
    expect(loadTemplateFile([], { ISOBUILD_TEMPLATE: 'b.json' })).toBe('b.json');
    expect(loadTemplateFile([], {})).toBeUndefined();
  });

  it('reads the build timeout from the flag over the variable, naming both when it is bad', () => {
    expect(loadBuildTimeout({ 'build-timeout': '2m' }, { ISOBUILD_BUILD_TIMEOUT: '1h' })).toBe(120_000);
    expect(loadBuildTimeout({}, { ISOBUILD_BUILD_TIMEOUT: '1h' })).toBe(3_600_000);
    expect(loadBuildTimeout({}, {})).toBeUndefined();
    expect(() => loadBuildTimeout({}, { ISOBUILD_BUILD_TIMEOUT: 'soon' })).toThrow(
      /^--build-timeout \/ ISOBUILD_BUILD_TIMEOUT: /,
    );
  });

  it("reads doctor's Packer and log-store switch like it always did", () => {
    expect(loadPackerPath({}, {})).toBe('packer');
    expect(loadPackerPath({ packer: '/opt/packer' }, { ISOBUILD_PACKER: '/usr/bin/packer' })).toBe(
      '/opt/packer',
    );
    expect(loadPackerPath({}, { ISOBUILD_PACKER: '/usr/bin/packer' })).toBe('/usr/bin/packer');
    expect(loadLocalLogsOnly({}, { ISOBUILD_LOCAL_LOGS_ONLY: 'true' })).toBe(true);
    expect(loadLocalLogsOnly({ 'local-logs-only': true }, {})).toBe(true);
    expect(loadLocalLogsOnly({}, { ISOBUILD_LOCAL_LOGS_ONLY: 'yes' })).toBe(false);
  });

  it('reads rewrites from the variable for build, not for render', () => {
    const env = { ISOBUILD_REWRITE_URI: 'https://a/=https://b/  https://c/=https://d/' };
    const flags = { 'rewrite-uri': ['https://e/=https://f/'] };

    expect(listSetting(flags, env, 'rewriteUri', 'build')).toEqual([
      'https://e/=https://f/',
      'https://a/=https://b/',
      'https://c/=https://d/',
    ]);
    expect(loadRenderRewrites(flags, env)).toEqual([{ from: 'https://e/', to: 'https://f/' }]);
    expect(() => loadRenderRewrites({ 'rewrite-uri': ['nothing'] }, {})).toThrow(
      /^--rewrite-uri nothing: expected FROM=TO/,
    );
  });

  it('prints stack traces only for ISOBUILD_DEBUG=1', () => {
    expect(debugEnabled({ ISOBUILD_DEBUG: '1' })).toBe(true);
    expect(debugEnabled({ ISOBUILD_DEBUG: 'true' })).toBe(false);
    expect(debugEnabled({})).toBe(false);
  });
});
