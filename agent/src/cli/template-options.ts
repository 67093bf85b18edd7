/** Command-line options shared by every command that reads a template, and their conversion to LoadOptions. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { IsobuildError } from '../errors.js';
import type { LoadOptions } from '../template/load-template.js';

export const TEMPLATE_OPTIONS = {
  'api-version': { type: 'string' },
  name: { type: 'string' },
  param: { type: 'string', multiple: true },
  'param-file': { type: 'string' },
  'subscription-id': { type: 'string' },
  'resource-group': { type: 'string' },
  location: { type: 'string' },
  os: { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

export const TEMPLATE_OPTIONS_HELP = `Template options:
  --api-version V          validate as this imageTemplates API version (default: the template's apiVersion,
                           else the newest, 2025-10-01). From 2024-02-01 validation is strict, like AIB.
  --name NAME              pick this image template when a deployment template defines several
  --param NAME=VALUE       value for an ARM template parameter (repeatable)
  --param-file FILE        ARM parameters file ({ "parameters": { "NAME": { "value": ... } } })
  --subscription-id GUID   value of subscription().subscriptionId in ARM expressions
  --resource-group NAME    value of resourceGroup().name in ARM expressions
  --location REGION        value of resourceGroup().location in ARM expressions
  --os linux|windows       override the OS isobuild infers from the steps and the source image`;

type TemplateValues = {
  [K in keyof typeof TEMPLATE_OPTIONS]?: (typeof TEMPLATE_OPTIONS)[K] extends { multiple: true }
    ? string[]
    : string;
};

export function toLoadOptions(values: TemplateValues): LoadOptions {
  const parameters = new Map<string, string>();
  for (const entry of values.param ?? []) {
    const eq = entry.indexOf('=');
    if (eq <= 0) throw new IsobuildError('usage', `--param ${entry}: expected NAME=VALUE.`);
    parameters.set(entry.slice(0, eq), entry.slice(eq + 1));
  }
  const os = values.os;
  if (os !== undefined && os !== 'linux' && os !== 'windows') {
    throw new IsobuildError('usage', `--os ${os}: expected linux or windows.`);
  }
  return {
    apiVersion: values['api-version'],
    name: values.name,
    parameters,
    parameterFile: values['param-file'],
    subscriptionId: values['subscription-id'],
    resourceGroup: values['resource-group'],
    location: values.location,
    os,
  };
}

/** The one template file a command takes as its positional argument. */
export function singleTemplate(positionals: string[], command: string): string {
  if (positionals.length !== 1) {
    throw new IsobuildError(
      'usage',
      positionals.length === 0
        ? `${command} needs a template file: isobuild ${command} <template.json> (see isobuild ${command} --help).`
        : `${command} takes one template file, got ${positionals.length}: ${positionals.join(' ')}.`,
    );
  }
  return positionals[0]!;
}

/** `--json`: print the result as JSON (every command that reads a template has it). */
export const JSON_OPTION = { json: { type: 'boolean' } } as const;

/**
 * Parses the arguments of a command that reads a template: the template options, the command's own, and
 * --help (-h). Returns undefined after printing `help` when --help was given.
 */
export function parseTemplateCommand<const O extends NonNullable<ParseArgsConfig['options']>>(
  argv: string[],
  options: O,
  help: string,
  out: (text: string) => void,
) {
  const parsed = parseArgs({
    args: argv,
    options: { ...TEMPLATE_OPTIONS, ...options, help: { type: 'boolean', short: 'h' } },
    allowPositionals: true,
  });
  if (!(parsed.values as { help?: boolean }).help) return parsed;
  out(help);
  return undefined;
}
