/** `isobuild validate`: check a template like AIB does and summarise what it would build. */
import { hideUrlSecrets } from '../../hide-query.js';
import { loadTemplate, type LoadedTemplate } from '../../template/load-template.js';
import { describeTopology } from '../../template/topology.js';
import { formatProblems, problemsToJson } from '../output.js';
import {
  singleTemplate,
  parseTemplateCommand,
  TEMPLATE_OPTIONS_HELP,
  toLoadOptions,
} from '../template-options.js';
import type { CommandIo } from '../command.js';

export const VALIDATE_HELP = `Usage: isobuild validate <template.json> [options]

Checks an AIB image template the way AIB does when you submit it (types, enums, ranges, resource IDs,
cross-field rules, fields too new for the declared apiVersion, unfilled <placeholders>) and prints what
it would build. All problems are reported at once, each with its JSON path and line.

Options:
  --json                   print the result as JSON on stdout
  -h, --help               show this help

${TEMPLATE_OPTIONS_HELP}

Exit codes: 0 valid (warnings allowed), 2 invalid template or arguments.`;

export async function runValidate(argv: string[], io: CommandIo): Promise<number> {
  const parsed = parseTemplateCommand(argv, { json: { type: 'boolean' } }, VALIDATE_HELP, io.out);
  if (!parsed) return 0;
  const { values, positionals } = parsed;
  const file = singleTemplate(positionals, 'validate');
  const loaded = await loadTemplate(file, toLoadOptions(values));
  io.registerSecrets(loaded.template.secureValues);
  if (values.json)
    io.out(
      JSON.stringify(
        { ok: true, summary: summarize(file, loaded), warnings: problemsToJson(loaded.warnings) },
        null,
        2,
      ),
    );
  else io.out(formatSummary(file, loaded));
  return 0;
}

export function summarize(file: string, loaded: LoadedTemplate): Record<string, unknown> {
  const t = loaded.template;
  return {
    file,
    shape: loaded.shape,
    name: t.name,
    apiVersion: t.apiVersion,
    strict: t.strict,
    os: t.os,
    osReason: t.osReason,
    source: t.source,
    vmSize: t.vmSize,
    buildTimeoutInMinutes: t.buildTimeoutInMinutes,
    topology: t.topology,
    customize: t.customize.map((s) => ({ index: s.index, type: s.type, name: s.name })),
    inVMValidations: t.validate.inVMValidations.map((s) => ({ index: s.index, type: s.type, name: s.name })),
    distribute: t.distribute.map((d) => ({ type: d.type, runOutputName: d.runOutputName })),
    errorHandling: t.errorHandling,
  };
}

const SHAPES = {
  properties: 'bare properties object',
  resource: 'ARM resource',
  deployment: 'ARM deployment template',
};

export function formatSummary(file: string, loaded: LoadedTemplate): string {
  const t = loaded.template;
  const lines: string[] = [];
  const row = (label: string, value: string): void => {
    lines.push(`${label.padEnd(11)}${value}`);
  };
  row(
    'Template',
    `${file}${t.name ? ` (${t.name})` : ''}: ${SHAPES[loaded.shape]}, API ${t.apiVersion}${t.strict ? ' (strict)' : ' (lenient)'}`,
  );
  const s = t.source;
  row(
    'Source',
    s.type === 'PlatformImage'
      ? `PlatformImage ${s.publisher}:${s.offer}:${s.sku}:${s.version}${s.planInfo ? ` (plan ${s.planInfo.planName})` : ''}`
      : s.type === 'ManagedImage'
        ? `ManagedImage ${s.imageId}`
        : `SharedImageVersion ${s.imageVersionId}`,
  );
  row(
    'OS',
    `${t.os === 'linux' ? 'Linux (SSH, port 22)' : 'Windows (WinRM over HTTPS, port 5986)'}: ${t.osReason}`,
  );
  row(
    'Build VM',
    `${t.vmSize}${t.osDiskSizeGB ? `, ${t.osDiskSizeGB} GB OS disk` : ''}; build timeout ${t.buildTimeoutInMinutes} min`,
  );
  row('Network', describeTopology(t));
  const steps = (list: typeof t.customize): string[] =>
    list.map(
      (step) =>
        `${String(step.index + 1).padStart(2)}. ${step.type.padEnd(14)} ${step.hasUserName ? JSON.stringify(step.name) : '(unnamed)'}${stepDetail(step)}`,
    );
  const block = (label: string, entries: string[]): void => {
    if (entries.length === 0) row(label, '(none)');
    entries.forEach((entry, i) => row(i === 0 ? label : '', entry));
  };
  block('Customize', steps(t.customize));
  block('Validate', steps(t.validate.inVMValidations));
  block(
    'Distribute',
    t.distribute.map((d) => `${d.type} ${JSON.stringify(d.runOutputName)}${distributeDetail(d)}`),
  );
  row(
    'On error',
    `customizers: ${t.errorHandling.onCustomizerError}, validation: ${t.errorHandling.onValidationError}`,
  );
  if (loaded.warnings.length > 0)
    lines.push('', `${loaded.warnings.length} warning(s):`, formatProblems(loaded.warnings));
  return lines.join('\n');
}

function stepDetail(step: LoadedTemplate['template']['customize'][number]): string {
  switch (step.type) {
    case 'Shell':
    case 'PowerShell': {
      const where = step.scriptUri
        ? ` ${hideUrlSecrets(step.scriptUri)}`
        : ` ${step.inline?.length ?? 0} inline command(s)`;
      const elevated =
        step.type === 'PowerShell' && step.runElevated
          ? step.runAsSystem
            ? ', as SYSTEM'
            : ', elevated'
          : '';
      return `${where}${elevated}`;
    }
    case 'File':
      return ` ${hideUrlSecrets(step.sourceUri)} -> ${step.destination}`;
    case 'WindowsRestart':
      return ` timeout ${step.restartTimeout}`;
    case 'WindowsUpdate':
      return ` limit ${step.updateLimit}`;
  }
}

function distributeDetail(d: LoadedTemplate['template']['distribute'][number]): string {
  if (d.type === 'ManagedImage') return ` -> ${d.imageId} (${d.location})`;
  if (d.type === 'SharedImage')
    return ` -> ${d.galleryImageId} in ${d.targetRegions.map((r) => r.name).join(', ')}`;
  return d.uri ? ` -> ${hideUrlSecrets(d.uri)}` : ' (staging storage account)';
}
