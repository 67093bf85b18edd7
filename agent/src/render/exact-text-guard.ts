/**
 * Two things change text on its way through Packer 1.6.6, whatever the escaping (both measured):
 * HCL normalises every string to Unicode NFC, and Packer renders provisioner strings as Go templates
 * repeatedly, so a literal `{{` cannot survive. Inline commands affected by either are written to a
 * script file instead (Packer passes file contents untouched); any other affected field is refused
 * with a clear error rather than silently changed.
 */
import type { Problem } from '../errors.js';
import type { Step } from '../template/model.js';

/** Why Packer would alter `text`, or undefined when HCL can carry it exactly. */
export function packerWouldAlter(text: string): string | undefined {
  if (text.includes('{{')) return 'contains "{{", which Packer treats as a Go template';
  if (text.normalize('NFC') !== text)
    return 'is not in Unicode NFC form, and HCL normalises every string to NFC';
  return undefined;
}

/** True when an inline step must be rendered as a script file to keep its commands exact. */
export function needsInlineScriptFile(step: Step): boolean {
  return (
    (step.type === 'Shell' || step.type === 'PowerShell') &&
    !step.scriptUri &&
    (step.inline ?? []).some((line) => packerWouldAlter(line) !== undefined)
  );
}

/** The script Packer itself would have generated from `inline` (shell: inline_shebang, then one line per command). */
export function inlineScriptText(step: Step): string {
  if (step.type !== 'Shell' && step.type !== 'PowerShell') return '';
  const body = (step.inline ?? []).map((line) => `${line}\n`).join('');
  return step.type === 'Shell' ? `#!/bin/sh -e\n${body}` : body;
}

/** Values that cannot be rendered exactly and cannot be moved to a script file. */
export function exactTextProblems(steps: readonly Step[], secureValues: readonly string[]): Problem[] {
  const problems: Problem[] = [];
  const check = (path: string, text: string): void => {
    const why = packerWouldAlter(text);
    if (why) {
      problems.push({
        severity: 'error',
        path,
        message: `this value ${why}, so Packer would not receive it unchanged. Move the text into a script (scriptUri) or rewrite it.`,
      });
    }
  };
  for (const step of steps) {
    switch (step.type) {
      case 'File':
        check(`${step.path}.destination`, step.destination);
        break;
      case 'WindowsRestart':
        check(`${step.path}.restartCommand`, step.restartCommand);
        check(`${step.path}.restartCheckCommand`, step.restartCheckCommand);
        break;
      case 'WindowsUpdate':
        check(`${step.path}.searchCriteria`, step.searchCriteria);
        step.filters.forEach((filter, i) => check(`${step.path}.filters[${i}]`, filter));
        break;
      default:
        if (
          needsInlineScriptFile(step) &&
          secureValues.some((secret) => (step.inline ?? []).some((line) => line.includes(secret)))
        ) {
          problems.push({
            severity: 'error',
            path: `${step.path}.inline`,
            message:
              'these commands must be written to a script file (they contain "{{" or non-NFC text) and also contain a securestring parameter value, which must never be written to a file. Move the secret use into a separate step.',
          });
        }
    }
  }
  return problems;
}
