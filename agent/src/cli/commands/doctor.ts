/** `isobuild doctor`: checks that everything a build needs is there and reachable, as a table. */
import {
  configSecrets,
  loadBuildConfig,
  loadLogStoreConfig,
  type BuildFlags,
} from '../../settings/build-config.js';
import { loadLocalLogsOnly, loadPackerPath, loadTemplateFile } from '../../settings/command-settings.js';
import { processEnvironment } from '../../settings/process-environment.js';
import { settingReader } from '../../settings/read-setting.js';
import { commandOptions } from '../../settings/settings-table.js';
import { checkBuildVm, checkPacker, checkStore, type CheckResult } from '../../doctor/checks.js';
import { EXIT_CODES } from '../../errors.js';
import { loadTemplate } from '../../template/load-template.js';
import type { ImageTemplate } from '../../template/model.js';
import { resolveVmPath, type VmPath } from '../../vm-path/vm-path.js';
import type { CommandIo } from '../command.js';
import { toLoadOptions, parseTemplateCommand, JSON_OPTION } from '../template-options.js';

export const DOCTOR_HELP = `Usage: isobuild doctor [template.json] [build options]

Checks what a build needs and prints a table: Packer and its version; the plugins the template needs; the log
store (the configured one, or the embedded Azurite) reachable and writable, and the clock against it; and,
with --host, the build VM along every hop (relay → proxy → VM) with the same readiness probe a build runs.
It takes the options and ISOBUILD_* variables of "isobuild build" (see isobuild build --help), plus --json.

Exit codes: 0 everything needed is there (warnings may be printed), 4 something a build needs is missing or
failing (the table says what), 2 bad arguments or template.`;

export async function runDoctor(argv: string[], io: CommandIo): Promise<number> {
  const options = { ...commandOptions('doctor'), ...JSON_OPTION };
  const parsed = parseTemplateCommand(argv, options, DOCTOR_HELP, io.out);
  if (!parsed) return 0;
  const { values, positionals } = parsed;
  const flags: BuildFlags = values;
  const env = processEnvironment();
  // Inputs first: a bad flag or template is invalid input (exit 2), not a failed check of the machine.
  const templateFile = loadTemplateFile(positionals, env);
  const loaded = templateFile ? await loadTemplate(templateFile, toLoadOptions(values)) : undefined;
  const template: ImageTemplate | undefined = loaded?.template;
  const store = loadLocalLogsOnly(flags, env) ? undefined : loadLogStoreConfig(flags, env);
  // The build VM is checked only when one is named.
  const named = settingReader(flags, env)('host').value !== undefined;
  const config = named ? loadBuildConfig(flags, env) : undefined;
  let vmPath: VmPath | undefined;
  if (config) {
    io.registerSecrets(configSecrets(config));
    // The same input checks and messages as build, so that doctor says "bad input" (exit 2) where build would.
    vmPath = resolveVmPath(config, template ?? { os: 'linux', topology: 'direct' });
  }

  const results: CheckResult[] = [];
  if (templateFile && template) {
    results.push({
      check: 'template',
      status: 'ok',
      detail: `${templateFile} (${template.os}, ${template.topology} topology)`,
    });
  }
  const packerPath = loadPackerPath(flags, env);
  results.push(...(await checkPacker(packerPath, template)));
  if (store) results.push(...(await checkStore(store, io.signal)));
  if (config && vmPath) {
    results.push(...(await checkBuildVm(vmPath, config.readyTimeoutMs, io.signal)));
  } else {
    results.push({
      check: 'build VM',
      status: 'warn',
      detail: 'not checked: pass --host (and its credentials) to check it',
    });
  }

  if (values.json)
    io.out(JSON.stringify({ ok: !results.some((r) => r.status === 'fail'), checks: results }, null, 2));
  else io.out(formatTable(results));
  return results.some((r) => r.status === 'fail') ? EXIT_CODES.environment : EXIT_CODES.ok;
}

function formatTable(results: readonly CheckResult[]): string {
  const width = Math.max(5, ...results.map((r) => r.check.length));
  const mark = { ok: 'ok  ', warn: 'WARN', fail: 'FAIL' } as const;
  return [
    `${'CHECK'.padEnd(width)}  STATUS  DETAIL`,
    ...results.map((r) => `${r.check.padEnd(width)}  ${mark[r.status]}    ${r.detail}`),
  ].join('\n');
}
