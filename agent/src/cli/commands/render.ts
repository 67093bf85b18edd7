/** `isobuild render`: fetch and verify artifacts, then write the Packer HCL for a template. */
import { join } from 'node:path';
import { loadDownloadDeadlines } from '../../settings/build-config.js';
import { loadRenderRewrites } from '../../settings/command-settings.js';
import { optionHelp } from '../../settings/option-help.js';
import { processEnvironment } from '../../settings/process-environment.js';
import { commandOptions } from '../../settings/settings-table.js';
import { IsobuildError } from '../../errors.js';
import { detectPacker } from '../../packer/packer-version.js';
import { packerValidate } from '../../packer/validate-rendered.js';
import { renderBuild } from '../../render/render-build.js';
import { loadTemplate } from '../../template/load-template.js';
import type { CommandIo } from '../command.js';
import { formatProblems, problemsToJson } from '../output.js';
import {
  singleTemplate,
  TEMPLATE_OPTIONS_HELP,
  toLoadOptions,
  parseTemplateCommand,
} from '../template-options.js';

export const RENDER_HELP = `Usage: isobuild render <template.json> --out DIR [options]

Validates the template, downloads every scriptUri/sourceUri artifact (verifying sha256Checksum), and
writes DIR/customization.pkr.hcl, DIR/validation.pkr.hcl (when the template has in-VM validators),
DIR/artifacts/ and DIR/isobuild-render.json. DIR must be new, empty, or an earlier render output.
Credentials are never written: the files declare sensitive variables that "isobuild build" supplies.

Options:
  --out DIR                output directory (required)
${optionHelp('render', ['rewriteUri', 'skipDeprovision', 'packer'])}
  --check                  run "packer validate" on the rendered files
  --max-artifact-mb N      refuse artifacts larger than N MiB (default 512)
${optionHelp('render', ['downloadTimeout', 'downloadStallTimeout', 'downloadTotalTimeout'])}
  --json                   print the result as JSON on stdout
  -h, --help               show this help

${TEMPLATE_OPTIONS_HELP}

Exit codes: 0 rendered, 2 invalid template or arguments, 3 an artifact could not be fetched or
verified, 4 Packer missing or unable to run this template.`;

export async function runRender(argv: string[], io: CommandIo): Promise<number> {
  const parsed = parseTemplateCommand(
    argv,
    {
      out: { type: 'string' },
      ...commandOptions('render'),
      check: { type: 'boolean' },
      'max-artifact-mb': { type: 'string' },
      json: { type: 'boolean' },
    },
    RENDER_HELP,
    io.out,
  );
  if (!parsed) return 0;
  const { values, positionals } = parsed;
  const file = singleTemplate(positionals, 'render');
  if (!values.out)
    throw new IsobuildError('usage', 'render needs --out DIR: the directory to write the Packer files to.');
  const env = processEnvironment();
  const rewrites = loadRenderRewrites(values, env);
  const maxMb = values['max-artifact-mb'] === undefined ? undefined : Number(values['max-artifact-mb']);
  if (maxMb !== undefined && !(Number.isFinite(maxMb) && maxMb > 0)) {
    throw new IsobuildError(
      'usage',
      `--max-artifact-mb ${values['max-artifact-mb']}: expected a positive number.`,
    );
  }

  const deadlines = loadDownloadDeadlines(values, env);

  const loaded = await loadTemplate(file, toLoadOptions(values));
  io.registerSecrets(loaded.template.secureValues);
  const packer = await detectPacker(values.packer, io.signal);
  const result = await renderBuild(loaded.template, {
    outDir: values.out,
    sourceLabel: file,
    packer,
    skipDeprovision: values['skip-deprovision'],
    fetch: {
      rewrites,
      limits: { ...deadlines, ...(maxMb !== undefined ? { maxBytes: Math.floor(maxMb * 1024 * 1024) } : {}) },
      onProgress: (message) => io.err(`isobuild render: ${message}`),
    },
    signal: io.signal,
  });
  if (values.check) {
    for (const name of result.files) await packerValidate(packer.path, join(result.outDir, name), io.signal);
  }
  const warnings = [...loaded.warnings, ...result.warnings];
  if (values.json) {
    io.out(
      JSON.stringify(
        {
          ok: true,
          outDir: result.outDir,
          files: result.files,
          artifacts: result.artifacts,
          packerVersion: packer.version,
          checked: values.check === true,
          warnings: problemsToJson(warnings),
        },
        null,
        2,
      ),
    );
    return 0;
  }
  io.out(
    `Rendered ${loaded.template.os === 'linux' ? 'Linux' : 'Windows'} build for Packer ${packer.version} into ${result.outDir}:`,
  );
  for (const name of result.files) io.out(`  ${name}${values.check ? ' (packer validate: ok)' : ''}`);
  for (const a of result.artifacts) {
    io.out(
      `  artifacts/${a.file}  ${a.bytes} bytes  sha256 ${a.sha256}${a.checksumVerified ? ' (verified)' : ' (not pinned)'}`,
    );
  }
  if (warnings.length > 0) io.err(`${warnings.length} warning(s):\n${formatProblems(warnings)}`);
  return 0;
}
