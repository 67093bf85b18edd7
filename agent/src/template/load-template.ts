/**
 * Turns a template file into a validated, normalised ImageTemplate. Accepts the three shapes users have:
 * a bare `properties` object, an ARM resource object, or an ARM deployment template with parameters.
 * Every problem is collected and reported at once, each with its JSON path and line.
 */
import { createHash } from 'node:crypto';
import { IsobuildError, formatPath, type Problem } from '../errors.js';
import { maskSecrets } from '../mask-secrets.js';
import { readInputFile } from '../read-input-file.js';
import {
  API_VERSIONS,
  LATEST_API_VERSION,
  isApiVersion,
  isPreview,
  isStrict,
  type ApiVersion,
} from './api-versions.js';
import { evaluateDeploymentResource, isObject, type DeploymentContext } from './arm-deployment.js';
import { checkConstraints } from './check-constraints.js';
import { checkAgainstSchema } from './check-schema.js';
import { inferOs } from './infer-os.js';
import {
  MAX_TEMPLATE_BYTES,
  decodeTemplateBytes,
  parseJsonDocument,
  type JsonDocument,
  type JsonObject,
  type JsonValue,
} from './json-source.js';
import type { ImageTemplate, OsType } from './model.js';
import { normalizeTemplate } from './normalize.js';
import { findPlaceholders } from './placeholders.js';
import { IDENTITY_SPEC, NAME_PATTERN, PROPERTIES_SPEC } from './schema.js';

export const RESOURCE_TYPE = 'Microsoft.VirtualMachineImages/imageTemplates';

export type TemplateShape = 'properties' | 'resource' | 'deployment';

export interface LoadOptions {
  /** Overrides the template's apiVersion (--api-version). */
  readonly apiVersion?: string;
  /** Selects one imageTemplates resource of a deployment template by name (--name). */
  readonly name?: string;
  readonly parameters?: ReadonlyMap<string, string>;
  readonly parameterFile?: string;
  readonly subscriptionId?: string;
  readonly resourceGroup?: string;
  readonly location?: string;
  readonly os?: OsType;
}

export interface LoadedTemplate {
  readonly template: ImageTemplate;
  readonly shape: TemplateShape;
  /** Warnings (errors make loadTemplate throw). */
  readonly warnings: readonly Problem[];
}

/** An input file as read, by sha256 of its bytes (the provenance record names the template by it). */
export interface InputDigest {
  readonly file: string;
  readonly sha256: string;
}

export interface LoadedTemplateFile extends LoadedTemplate {
  readonly digests: { readonly template: InputDigest; readonly parameters?: InputDigest };
}

const ENVELOPE_FIELDS = new Set([
  'type',
  'apiVersion',
  'name',
  'location',
  'tags',
  'identity',
  'properties',
  'dependsOn',
  'comments',
  'condition',
  'id',
  'systemData',
  'etag',
  'scope',
]);

// Input files are read synchronously (read-input-file.ts); the promise keeps callers free of that detail.
// eslint-disable-next-line @typescript-eslint/require-await
export async function loadTemplate(file: string, options: LoadOptions = {}): Promise<LoadedTemplateFile> {
  const template = readTemplateSource(file);
  const parameters = options.parameterFile
    ? readTemplateSource(options.parameterFile, 'parameters')
    : undefined;
  const values = parameters
    ? parameterValues(parameters.text, parameters.file)
    : new Map<string, JsonValue>();
  return {
    ...loadTemplateText(template.text, file, options, values),
    digests: { template: template.digest, ...(parameters ? { parameters: parameters.digest } : {}) },
  };
}

export function readTemplateText(file: string, kind: 'template' | 'parameters' = 'template'): string {
  return readTemplateSource(file, kind).text;
}

/** The file's text and the sha256 of the bytes it was decoded from. */
function readTemplateSource(
  file: string,
  kind: 'template' | 'parameters' = 'template',
): { readonly file: string; readonly text: string; readonly digest: InputDigest } {
  const bytes = readInputFile(file, {
    label: kind === 'template' ? file : `the parameters file ${file} (--param-file)`,
    maxBytes: MAX_TEMPLATE_BYTES,
    limitReason: `${kind === 'template' ? 'templates' : 'parameter files'} are limited to ${MAX_TEMPLATE_BYTES} bytes (ARM's limit)`,
    code: 'templateUnreadable',
    hint:
      kind === 'template'
        ? "pass the template's JSON file (save a template from a pipe to a file first)."
        : 'pass an ARM parameters JSON file (save it from a pipe to a file first).',
  });
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  return { file, text: decodeTemplateBytes(bytes, file), digest: { file, sha256 } };
}

function parameterValues(text: string, file: string): Map<string, JsonValue> {
  const doc = parseJsonDocument(text, file);
  const root = doc.value;
  const section = isObject(root) ? root.parameters : undefined;
  if (!isObject(section)) {
    throw new IsobuildError(
      'templateUnreadable',
      `${file} is not an ARM parameters file: expected { "parameters": { "<name>": { "value": ... } } }.`,
    );
  }
  const values = new Map<string, JsonValue>();
  for (const [name, entry] of Object.entries(section)) {
    if (isObject(entry) && 'value' in entry) values.set(name, entry.value ?? null);
    else if (isObject(entry) && 'reference' in entry) {
      throw new IsobuildError(
        'templateUnreadable',
        `${file}: parameters.${name} is a Key Vault reference, which isobuild cannot resolve; pass the value with --param ${name}=... instead.`,
      );
    } else {
      throw new IsobuildError(
        'templateUnreadable',
        `${file}: parameters.${name} must be an object with a "value".`,
      );
    }
  }
  return values;
}

export function loadTemplateText(
  text: string,
  label: string,
  options: LoadOptions = {},
  parameterFile: ReadonlyMap<string, JsonValue> = new Map(),
): LoadedTemplate {
  const doc = parseJsonDocument(text, label);
  const problems: Problem[] = doc.warnings.map((message) => ({
    severity: 'warning',
    path: '(root)',
    message,
  }));
  const root = doc.value;
  if (!isObject(root)) {
    throw invalid(label, [
      {
        severity: 'error',
        path: '(root)',
        message: `the file holds ${Array.isArray(root) ? 'an array' : `a ${root === null ? 'null' : typeof root}`}; an image template is a JSON object.`,
      },
    ]);
  }

  const secrets: string[] = [];
  try {
    const loaded = loadChecked(doc, root, label, options, parameterFile, problems, secrets);
    return { ...loaded, warnings: loaded.warnings.map((p) => maskProblem(p, secrets)) };
  } catch (error) {
    // securestring parameter values must not reach any message, even when they are what is wrong.
    if (error instanceof IsobuildError && secrets.length > 0) {
      throw new IsobuildError(error.code, maskSecrets(error.message, secrets), {
        problems: error.problems.map((p) => maskProblem(p, secrets)),
      });
    }
    throw error;
  }
}

function loadChecked(
  doc: JsonDocument,
  root: JsonObject,
  label: string,
  options: LoadOptions,
  parameterFile: ReadonlyMap<string, JsonValue>,
  problems: Problem[],
  secrets: string[],
): LoadedTemplate {
  const picked = pickShape(root, label, options, parameterFile, problems, secrets);
  const { envelope, properties, base, unresolved, secureValues } = picked;
  const apiVersion = resolveApiVersion(envelope, base, options, problems, unresolved);
  const strict = isStrict(apiVersion);

  const placeholderPaths = findPlaceholders(
    envelope ?? properties ?? {},
    envelope ? base.slice(0, -1) : base,
    problems,
  );
  const skip = new Set([...unresolved, ...placeholderPaths]);
  const ctx = {
    version: apiVersion,
    strict,
    problems,
    unresolved: skip,
    versionFromFlag: options.apiVersion !== undefined,
  };

  let identity: string | undefined;
  if (envelope) identity = checkEnvelope(envelope, base.slice(0, -1), apiVersion, problems, ctx);

  let checked: JsonObject | undefined;
  if (!isObject(properties)) {
    problems.push({
      severity: 'error',
      path: formatPath(base.length ? base : []),
      message: '"properties" must be an object holding source, customize and distribute.',
    });
  } else {
    checked = checkAgainstSchema(properties, PROPERTIES_SPEC, base, ctx) as JsonObject | undefined;
  }
  const os = checked ? inferOs(checked, base, options.os, problems) : { os: 'linux' as const, reason: '' };
  if (checked) checkConstraints(checked, base, ctx);

  const located = problems.map((p) => withLine(p, doc.lines));
  const errors = located.filter((p) => p.severity === 'error');
  if (errors.length > 0 || !checked) throw invalid(label, located);

  const template = normalizeTemplate({
    properties: checked,
    base,
    apiVersion,
    strict,
    os: os.os,
    osReason: os.reason,
    name: typeof envelope?.name === 'string' ? envelope.name : undefined,
    location: typeof envelope?.location === 'string' ? envelope.location : undefined,
    identity,
    secureValues,
  });
  return { template, shape: picked.shape, warnings: located };
}

interface PickedShape {
  readonly shape: TemplateShape;
  readonly envelope?: JsonObject;
  readonly properties: JsonValue | undefined;
  /** Path of the properties object inside the file. */
  readonly base: (string | number)[];
  readonly unresolved: ReadonlySet<string>;
  readonly secureValues: readonly string[];
}

function pickShape(
  root: JsonObject,
  label: string,
  options: LoadOptions,
  parameterFile: ReadonlyMap<string, JsonValue>,
  problems: Problem[],
  secrets: string[],
): PickedShape {
  if (Array.isArray(root.resources) && ('$schema' in root || 'contentVersion' in root)) {
    return pickFromDeployment(root, label, options, parameterFile, problems, secrets);
  }
  if (isObject(root.properties) || 'type' in root || 'identity' in root) {
    return {
      shape: 'resource',
      envelope: root,
      properties: root.properties,
      base: ['properties'],
      unresolved: new Set(),
      secureValues: [],
    };
  }
  if ('source' in root || 'customize' in root || 'distribute' in root) {
    return { shape: 'properties', properties: root, base: [], unresolved: new Set(), secureValues: [] };
  }
  throw invalid(label, [
    {
      severity: 'error',
      path: '(root)',
      message:
        'this does not look like an image template: expected an ARM deployment template (with "resources"), an imageTemplates resource (with "properties"), or a bare properties object (with "source" and "distribute").',
    },
  ]);
}

function pickFromDeployment(
  root: JsonObject,
  label: string,
  options: LoadOptions,
  parameterFile: ReadonlyMap<string, JsonValue>,
  problems: Problem[],
  secrets: string[],
): PickedShape {
  const resources = root.resources as JsonValue[];
  const candidates = resources.flatMap((resource, index) => {
    if (!isObject(resource) || typeof resource.type !== 'string') return [];
    const type = resource.type.toLowerCase();
    if (type !== RESOURCE_TYPE.toLowerCase() && type !== 'microsoft.virtualmachineimages') return [];
    return [{ index, resource }];
  });
  if (candidates.length === 0) {
    const types = resources.map((r) => (isObject(r) && typeof r.type === 'string' ? r.type : '?')).join(', ');
    throw invalid(label, [
      {
        severity: 'error',
        path: 'resources',
        message: `no ${RESOURCE_TYPE} resource in this deployment template (resource types: ${types || 'none'}).`,
      },
    ]);
  }
  const context: DeploymentContext = {
    cliParameters: options.parameters ?? new Map(),
    fileParameters: parameterFile,
    subscriptionId: options.subscriptionId,
    resourceGroup: options.resourceGroup,
    location: options.location,
  };
  const evaluated = candidates.map((c) => ({
    ...c,
    result: evaluateDeploymentResource(root, ['resources', c.index], context, problems),
  }));
  for (const e of evaluated) secrets.push(...e.result.secureValues);
  // The same parameter problems are found for every candidate: keep one copy of each.
  const unique = dedupe(problems);
  problems.length = 0;
  problems.push(...unique);

  let chosen = evaluated[0]!;
  if (evaluated.length > 1 || options.name) {
    const names = evaluated.map((e) =>
      typeof e.result.value.name === 'string' ? e.result.value.name : `(resources[${e.index}] has no name)`,
    );
    if (!options.name) {
      throw invalid(label, [
        ...problems,
        {
          severity: 'error',
          path: 'resources',
          message: `this deployment defines ${evaluated.length} image templates (${names.join(', ')}); pick one with --name.`,
        },
      ]);
    }
    const wanted = options.name.toLowerCase();
    const match = evaluated.find(
      (e) => typeof e.result.value.name === 'string' && e.result.value.name.toLowerCase() === wanted,
    );
    if (!match) {
      throw invalid(label, [
        ...problems,
        {
          severity: 'error',
          path: 'resources',
          message: `--name ${options.name} matches no image template here (names: ${names.join(', ')}).`,
        },
      ]);
    }
    chosen = match;
  }
  for (const other of evaluated) {
    if (other === chosen) continue;
    // Keep only the problems of the chosen resource (or of the deployment itself).
    const prefix = formatPath(['resources', other.index]);
    const keep = problems.filter((p) => !p.path.startsWith(prefix));
    problems.length = 0;
    problems.push(...keep);
  }
  return {
    shape: 'deployment',
    envelope: chosen.result.value,
    properties: chosen.result.value.properties,
    base: ['resources', chosen.index, 'properties'],
    unresolved: chosen.result.unresolved,
    secureValues: chosen.result.secureValues,
  };
}

function resolveApiVersion(
  envelope: JsonObject | undefined,
  base: (string | number)[],
  options: LoadOptions,
  problems: Problem[],
  unresolved: ReadonlySet<string>,
): ApiVersion {
  const declared = typeof envelope?.apiVersion === 'string' ? envelope.apiVersion : undefined;
  const path = formatPath([...base.slice(0, -1), 'apiVersion']);
  const known = API_VERSIONS.filter((v) => !isPreview(v)).join(', ');
  if (options.apiVersion !== undefined) {
    if (!isApiVersion(options.apiVersion)) {
      throw new IsobuildError(
        'usage',
        `--api-version ${options.apiVersion} is not an imageTemplates API version isobuild knows (${known}).`,
      );
    }
    if (declared && declared !== options.apiVersion) {
      problems.push({
        severity: 'warning',
        path,
        message: `the template declares ${declared}; validating as ${options.apiVersion} because of --api-version.`,
      });
    }
    if (isPreview(options.apiVersion)) problems.push(previewWarning(options.apiVersion, path));
    return options.apiVersion;
  }
  if (declared === undefined) {
    if (envelope && envelope.apiVersion !== undefined) {
      problems.push({
        severity: 'error',
        path,
        message: 'apiVersion must be a string such as "2024-02-01".',
      });
    }
    return LATEST_API_VERSION;
  }
  if (!isApiVersion(declared)) {
    // An expression that failed (e.g. a parameter without a value) already has its own error.
    if (unresolved.has(path)) return LATEST_API_VERSION;
    problems.push({
      severity: 'error',
      path,
      message: `"${declared}" is not an imageTemplates API version; use one of ${known}.`,
    });
    return LATEST_API_VERSION;
  }
  if (isPreview(declared)) problems.push(previewWarning(declared, path));
  return declared;
}

function previewWarning(version: ApiVersion, path: string): Problem {
  return {
    severity: 'warning',
    path,
    message: `${version} is a deprecated preview API version; AIB still accepts it, but move to 2024-02-01 or later.`,
  };
}

function checkEnvelope(
  envelope: JsonObject,
  base: (string | number)[],
  version: ApiVersion,
  problems: Problem[],
  ctx: Parameters<typeof checkAgainstSchema>[3],
): string | undefined {
  const at = (key: string): string => formatPath([...base, key]);
  const type = envelope.type;
  if (typeof type === 'string' && type.toLowerCase() === 'microsoft.virtualmachineimages') {
    problems.push({
      severity: 'warning',
      path: at('type'),
      message: `"${type}" lacks "/imageTemplates"; the full type is ${RESOURCE_TYPE}.`,
    });
  } else if (
    type !== undefined &&
    (typeof type !== 'string' || type.toLowerCase() !== RESOURCE_TYPE.toLowerCase())
  ) {
    problems.push({
      severity: 'error',
      path: at('type'),
      message: `the resource type must be ${RESOURCE_TYPE}, not ${JSON.stringify(type)}.`,
    });
  }
  if (envelope.name !== undefined && !ctx.unresolved.has(at('name'))) {
    if (typeof envelope.name !== 'string' || !NAME_PATTERN.test(envelope.name)) {
      problems.push({
        severity: 'error',
        path: at('name'),
        message: `${JSON.stringify(envelope.name)} is not a valid template name: use 1–64 letters, digits, -, _ or .`,
      });
    }
  }
  if (envelope.location === undefined || envelope.location === null) {
    problems.push({
      severity: 'error',
      path: at('location'),
      message:
        'missing required field "location": the Azure region of the image template, such as "westus2".',
    });
  } else if (typeof envelope.location !== 'string' || envelope.location.trim() === '') {
    problems.push({
      severity: 'error',
      path: at('location'),
      message: 'location must name an Azure region, such as "westus2".',
    });
  }
  if (envelope.tags !== undefined)
    checkAgainstSchema(envelope.tags, { kind: 'stringMap' }, [...base, 'tags'], ctx);
  if (envelope.copy !== undefined) {
    problems.push({
      severity: 'error',
      path: at('copy'),
      message: 'ARM copy loops are not supported; write one resource per image template.',
    });
  }
  for (const key of Object.keys(envelope)) {
    if (!ENVELOPE_FIELDS.has(key) && key !== 'copy') {
      problems.push({
        severity: 'warning',
        path: at(key),
        message: `"${key}" is not an imageTemplates resource field; it is ignored.`,
      });
    }
  }

  const identity = envelope.identity;
  if (identity === undefined || identity === null) {
    problems.push({
      severity: isStrict(version) ? 'error' : 'warning',
      path: at('identity'),
      message:
        'no identity: AIB needs a user-assigned identity to read artifacts from storage and to write images. ' +
        'Add "identity": { "type": "UserAssigned", "userAssignedIdentities": { "<identity resource ID>": {} } }.',
    });
    return undefined;
  }
  const checked = checkAgainstSchema(identity, IDENTITY_SPEC, [...base, 'identity'], ctx);
  if (!isObject(checked)) return undefined;
  const ids = isObject(checked.userAssignedIdentities) ? Object.keys(checked.userAssignedIdentities) : [];
  if (checked.type === 'UserAssigned' && ids.length !== 1) {
    problems.push({
      severity: 'error',
      path: at('identity'),
      message: `AIB supports exactly one template identity; ${ids.length === 0 ? 'none is listed' : `${ids.length} are listed`} in userAssignedIdentities.`,
    });
  }
  if (checked.type === 'None' && ids.length === 0 && isStrict(version)) {
    problems.push({
      severity: 'error',
      path: at('identity'),
      message:
        'identity type "None" leaves the template without the user-assigned identity AIB requires from API version 2024-02-01; add one.',
    });
  }
  if (checked.type === 'None' && ids.length > 0) {
    problems.push({
      severity: 'error',
      path: at('identity'),
      message:
        'type is "None" but userAssignedIdentities lists identities; set type to "UserAssigned" or remove them.',
    });
  }
  return ids[0];
}

function withLine(problem: Problem, lines: ReadonlyMap<string, number>): Problem {
  if (problem.line !== undefined) return problem;
  // Walk up to the nearest ancestor that exists in the file (a missing field has no line of its own).
  let path = problem.path;
  for (;;) {
    const line = lines.get(path);
    if (line !== undefined) return { ...problem, line };
    const cut = Math.max(path.lastIndexOf('.'), path.lastIndexOf('['));
    if (cut <= 0) return problem;
    path = path.slice(0, cut);
  }
}

function maskProblem(problem: Problem, secrets: readonly string[]): Problem {
  return secrets.length === 0
    ? problem
    : {
        ...problem,
        message: maskSecrets(problem.message, secrets),
        path: maskSecrets(problem.path, secrets),
      };
}

function dedupe(problems: Problem[]): Problem[] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const key = `${p.severity}|${p.path}|${p.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

function invalid(label: string, problems: readonly Problem[]): IsobuildError {
  const sorted = [...problems].sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
  const count = sorted.filter((p) => p.severity === 'error').length;
  const warnings = sorted.length - count;
  const also = warnings > 0 ? ` (and ${warnings} warning${warnings === 1 ? '' : 's'})` : '';
  return new IsobuildError(
    'templateInvalid',
    `${label}: ${count} error${count === 1 ? '' : 's'}${also} found; the template cannot be built as it is.`,
    { problems: sorted },
  );
}
