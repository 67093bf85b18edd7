/**
 * loadTemplateText end to end, in process: the three template shapes, ARM deployment parameters and
 * variables, API-version rules (strict vs lenient, fields newer than the declared version), reporting
 * every problem at once with paths and lines, placeholders, AIB's defaults, OS inference and topology.
 * The negative corpus (one invalid file per rule) lives in test/integration/invalid-templates.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { IsobuildError, type Problem } from '../../agent/src/errors.js';
import type { JsonValue } from '../../agent/src/template/json-source.js';
import {
  loadTemplateText,
  type LoadOptions,
  type LoadedTemplate,
} from '../../agent/src/template/load-template.js';
import type { ImageTemplate } from '../../agent/src/template/model.js';
import {
  DEFAULT_PROXY_VM_SIZE,
  DEFAULT_RESTART_COMMAND,
  DEFAULT_SEARCH_CRITERIA,
} from '../../agent/src/template/normalize.js';
import { describeTopology } from '../../agent/src/template/topology.js';
import {
  GALLERY_IMAGE_ID,
  IDENTITY_ID,
  MANAGED_IMAGE_ID,
  OTHER_IDENTITY_ID,
  RESOURCE_GROUP,
  SUBSCRIPTION_ID,
  UBUNTU_SOURCE,
  WINDOWS_SOURCE,
  deployment,
  identity,
  lineOf,
  managedImageDistributor,
  powerShellStep,
  properties,
  resource,
  shellStep,
  subnetId,
  templateText,
  type Json,
  type JsonMap,
} from '../helpers/template-builders.js';

const LABEL = 'template.json';

const MANAGED_SOURCE: JsonMap = { type: 'ManagedImage', imageId: MANAGED_IMAGE_ID };

function load(
  doc: Json,
  options: LoadOptions = {},
  parameterFile: ReadonlyMap<string, JsonValue> = new Map(),
): LoadedTemplate {
  return loadTemplateText(templateText(doc), LABEL, options, parameterFile);
}

/** The problems of a template that fails to load (fails the test when it loads). */
function problemsOf(
  doc: Json,
  options: LoadOptions = {},
  parameterFile: ReadonlyMap<string, JsonValue> = new Map(),
): Problem[] {
  try {
    load(doc, options, parameterFile);
  } catch (error) {
    expect(error).toBeInstanceOf(IsobuildError);
    expect((error as IsobuildError).code).toBe('templateInvalid');
    return [...(error as IsobuildError).problems];
  }
  throw new Error('expected the template to be rejected');
}

function errorsOf(
  doc: Json,
  options: LoadOptions = {},
  parameterFile: ReadonlyMap<string, JsonValue> = new Map(),
): Problem[] {
  return problemsOf(doc, options, parameterFile).filter((p) => p.severity === 'error');
}

function warningsOf(loaded: LoadedTemplate): Problem[] {
  return loaded.warnings.filter((p) => p.severity === 'warning');
}

/** A resource with the given properties, at an API version. */
function at(
  apiVersion: string,
  props: JsonMap = properties(),
  overrides: { [key: string]: Json | undefined } = {},
): JsonMap {
  return resource(props, { apiVersion, ...overrides });
}

/** The template without where-it-came-from details (paths differ between shapes). */
function contentOf(template: ImageTemplate): unknown {
  const strip = (steps: readonly object[]): unknown[] => steps.map((step) => ({ ...step, path: undefined }));
  return {
    ...template,
    osReason: undefined,
    customize: strip(template.customize),
    validate: { ...template.validate, inVMValidations: strip(template.validate.inVMValidations) },
  };
}

describe('template shapes', () => {
  const props = properties({
    customize: [
      shellStep('echo one'),
      { type: 'File', sourceUri: 'https://example.com/f', destination: '/tmp/f' },
    ],
    distribute: [
      managedImageDistributor('managed'),
      {
        type: 'SharedImage',
        galleryImageId: GALLERY_IMAGE_ID,
        runOutputName: 'sig',
        targetRegions: [{ name: 'eastus' }],
      },
    ],
    vmProfile: { vmSize: 'Standard_D4s_v3', osDiskSizeGB: 64 },
    buildTimeoutInMinutes: 90,
  });

  it('recognises each shape', () => {
    const shapes = [
      load(props).shape,
      load(resource(props)).shape,
      load(deployment([resource(props)])).shape,
    ];

    expect(shapes).toEqual(['properties', 'resource', 'deployment']);
  });

  it('normalises an ARM resource and a deployment holding it to the same template', () => {
    const fromResource = load(resource(props)).template;
    const fromDeployment = load(deployment([resource(props)])).template;

    expect(contentOf(fromDeployment)).toEqual(contentOf(fromResource));
    expect(fromResource.customize[0]?.path).toBe('properties.customize[0]');
    expect(fromDeployment.customize[0]?.path).toBe('resources[0].properties.customize[0]');
  });

  it('normalises a bare properties object to the same template, minus the envelope', () => {
    const fromProperties = load(props, { apiVersion: '2024-02-01' }).template;
    const fromResource = load(resource(props)).template;

    expect(contentOf(fromProperties)).toEqual({
      ...(contentOf(fromResource) as object),
      name: undefined,
      location: undefined,
      identity: undefined,
    });
    expect(fromProperties.customize[0]?.path).toBe('customize[0]');
  });

  it('carries the envelope into the template', () => {
    const loaded = load(resource(props, { name: 'my-template', location: 'eastus2' }));

    expect(loaded.template).toMatchObject({
      name: 'my-template',
      location: 'eastus2',
      identity: IDENTITY_ID,
    });
  });

  it('validates a bare properties object against the latest API version when none is given', () => {
    const loaded = load(props);

    expect(loaded.template.apiVersion).toBe('2025-10-01');
    expect(loaded.template.strict).toBe(true);
  });

  it('rejects JSON that is none of the shapes', () => {
    const problems = problemsOf({ hello: 'world' });

    expect(problems).toHaveLength(1);
    expect(problems[0]?.message).toContain('does not look like an image template');
  });

  it('rejects a deployment without an imageTemplates resource, listing the types it has', () => {
    const doc = deployment([{ type: 'Microsoft.Compute/images', apiVersion: '2023-01-01', name: 'x' }]);

    const problems = problemsOf(doc);

    expect(problems[0]?.message).toContain('Microsoft.Compute/images');
  });
});

describe('deployment templates', () => {
  const PARAMETERS: JsonMap = {
    imageName: { type: 'string' },
    vmSize: { type: 'string', defaultValue: 'Standard_D4s_v3' },
    timeout: { type: 'int', defaultValue: 60 },
    excludeFromLatest: { type: 'bool', defaultValue: false },
    regions: { type: 'array', defaultValue: [{ name: 'westus2' }] },
    tags: { type: 'object', defaultValue: { team: 'default' } },
  };

  function parameterised(parameters: JsonMap = PARAMETERS, variables?: JsonMap): JsonMap {
    const props = properties({
      distribute: [
        {
          type: 'SharedImage',
          galleryImageId: GALLERY_IMAGE_ID,
          runOutputName: 'sig',
          targetRegions: "[parameters('regions')]",
          excludeFromLatest: "[parameters('excludeFromLatest')]",
          artifactTags: "[parameters('tags')]",
        },
      ],
      vmProfile: { vmSize: "[parameters('vmSize')]" },
      buildTimeoutInMinutes: "[parameters('timeout')]",
    });
    return deployment([resource(props, { name: "[parameters('imageName')]" })], { parameters, variables });
  }

  function sharedImage(
    template: ImageTemplate,
  ): Extract<ImageTemplate['distribute'][number], { type: 'SharedImage' }> {
    const target = template.distribute[0];
    if (target?.type !== 'SharedImage') throw new Error('expected a SharedImage distributor');
    return target;
  }

  describe('parameter values', () => {
    it('takes defaultValues when nothing else is given', () => {
      const loaded = load(parameterised(), { parameters: new Map([['imageName', 'from-cli']]) });

      expect(loaded.template).toMatchObject({
        name: 'from-cli',
        vmSize: 'Standard_D4s_v3',
        buildTimeoutInMinutes: 60,
      });
      expect(sharedImage(loaded.template)).toMatchObject({
        excludeFromLatest: false,
        targetRegions: [{ name: 'westus2', replicaCount: 1, storageAccountType: 'Standard_LRS' }],
      });
    });

    it('converts --param strings to the declared int, bool, array and object types', () => {
      const cli = new Map([
        ['imageName', 'img'],
        ['timeout', '90'],
        ['excludeFromLatest', 'true'],
        ['regions', '[{"name":"eastus","replicaCount":2}]'],
        ['tags', '{"team":"images"}'],
      ]);

      const loaded = load(parameterised(), { parameters: cli });

      expect(loaded.template.buildTimeoutInMinutes).toBe(90);
      expect(sharedImage(loaded.template)).toMatchObject({
        excludeFromLatest: true,
        targetRegions: [{ name: 'eastus', replicaCount: 2 }],
      });
    });

    it.each([
      ['timeout', 'ninety', 'must be an integer'],
      ['timeout', '1.5', 'must be an integer'],
      ['excludeFromLatest', 'yes', 'must be true or false'],
      ['regions', 'westus2', 'give its value as JSON'],
      ['tags', '{team: x}', 'give its value as JSON'],
    ])('rejects --param %s=%s (%s), at the parameter', (name, raw, message) => {
      const cli = new Map([
        ['imageName', 'img'],
        [name, raw],
      ]);

      const errors = errorsOf(parameterised(), { parameters: cli });

      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatchObject({ path: `parameters.${name}` });
      expect(errors[0]?.message).toContain(message);
      expect(errors[0]?.line).toBe(lineOf(templateText(parameterised()), `"${name}": {`));
    });

    it('takes values from a parameter file, keeping their JSON types', () => {
      const file = new Map<string, JsonValue>([
        ['imageName', 'from-file'],
        ['timeout', 120],
        ['regions', [{ name: 'northeurope', replicaCount: 3 }]],
      ]);

      const loaded = load(parameterised(), {}, file);

      expect(loaded.template).toMatchObject({ name: 'from-file', buildTimeoutInMinutes: 120 });
      expect(sharedImage(loaded.template).targetRegions).toEqual([
        { name: 'northeurope', replicaCount: 3, storageAccountType: 'Standard_LRS' },
      ]);
    });

    it('rejects a parameter-file value of the wrong type', () => {
      const file = new Map<string, JsonValue>([
        ['imageName', 'img'],
        ['timeout', '120'],
      ]);

      const errors = errorsOf(parameterised(), {}, file);

      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatchObject({ path: 'parameters.timeout' });
      expect(errors[0]?.message).toContain('declared int');
    });

    it.each([
      ['the command line over the file and the default', 'cli-value', 'file-value', 'cli-value'],
      ['the file over the default', undefined, 'file-value', 'file-value'],
      ['the default when neither is given', undefined, undefined, 'default-value'],
    ])('prefers %s', (_what, cliValue, fileValue, expected) => {
      const doc = deployment([resource(properties(), { name: "[parameters('imageName')]" })], {
        parameters: { imageName: { type: 'string', defaultValue: 'default-value' } },
      });
      const cli = new Map(cliValue === undefined ? [] : [['imageName', cliValue]]);
      const file = new Map<string, JsonValue>(fileValue === undefined ? [] : [['imageName', fileValue]]);

      const loaded = load(doc, { parameters: cli }, file);

      expect(loaded.template.name).toBe(expected);
    });

    it('matches parameter names case-insensitively on the command line, in files and in expressions', () => {
      const doc = deployment(
        [
          resource(properties({ vmProfile: { vmSize: "[parameters('VMSIZE')]" } }), {
            name: "[parameters('ImageName')]",
          }),
        ],
        { parameters: { imageName: { type: 'string' }, vmSize: { type: 'string' } } },
      );

      const loaded = load(
        doc,
        { parameters: new Map([['IMAGENAME', 'from-cli']]) },
        new Map([['vmsize', 'Standard_F2s_v2']]),
      );

      expect(loaded.template).toMatchObject({ name: 'from-cli', vmSize: 'Standard_F2s_v2' });
    });

    it('evaluates an expression defaultValue such as [resourceGroup().location]', () => {
      const doc = deployment([resource(properties(), { location: "[parameters('location')]" })], {
        parameters: { location: { type: 'string', defaultValue: '[resourceGroup().location]' } },
      });

      const loaded = load(doc, {
        subscriptionId: SUBSCRIPTION_ID,
        resourceGroup: RESOURCE_GROUP,
        location: 'eastus2',
      });

      expect(loaded.template.location).toBe('eastus2');
    });

    it('evaluates [resourceGroup().location] with only --resource-group and --location', () => {
      const doc = deployment([resource(properties(), { location: "[parameters('location')]" })], {
        parameters: { location: { type: 'string', defaultValue: '[resourceGroup().location]' } },
      });

      const loaded = load(doc, { resourceGroup: RESOURCE_GROUP, location: 'eastus2' });

      expect(loaded.template.location).toBe('eastus2');
    });

    it('evaluates [resourceGroup().name] with only --resource-group', () => {
      const doc = deployment([resource(properties(), { name: '[resourceGroup().name]' })]);

      const loaded = load(doc, { resourceGroup: RESOURCE_GROUP });

      expect(loaded.template.name).toBe(RESOURCE_GROUP);
    });

    it('asks for the missing context when [resourceGroup().location] cannot be evaluated', () => {
      const doc = deployment([resource(properties(), { location: '[resourceGroup().location]' })]);

      const errors = errorsOf(doc, { subscriptionId: SUBSCRIPTION_ID, resourceGroup: RESOURCE_GROUP });

      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatchObject({ path: 'resources[0].location' });
      expect(errors[0]?.message).toContain('--location');
    });

    it('reports a parameter without any value, naming it and how to supply it', () => {
      const errors = errorsOf(parameterised());

      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatchObject({ severity: 'error', path: 'parameters.imageName' });
      expect(errors[0]?.message).toContain('"imageName"');
      expect(errors[0]?.message).toContain('--param imageName=');
    });

    it('reports a missing value even for a parameter nothing uses (ARM requires one)', () => {
      const doc = deployment([resource()], { parameters: { unused: { type: 'string' } } });

      const errors = errorsOf(doc);

      expect(errors.map((e) => e.path)).toEqual(['parameters.unused']);
    });

    it('reports an undeclared --param, listing the declared names', () => {
      const cli = new Map([
        ['imageName', 'img'],
        ['imageNmae', 'typo'],
      ]);

      const errors = errorsOf(parameterised(), { parameters: cli });

      expect(errors).toHaveLength(1);
      expect(errors[0]?.message).toContain('--param imageNmae');
      expect(errors[0]?.message).toContain('imageName, vmSize');
    });

    it('reports a parameter-file value for an undeclared parameter, as ARM does', () => {
      const file = new Map<string, JsonValue>([
        ['imageName', 'img'],
        ['vmSzie', 'Standard_D8s_v5'],
      ]);

      const errors = errorsOf(parameterised(), {}, file);

      expect(errors).toHaveLength(1);
      expect(errors[0]?.message).toContain('vmSzie');
    });

    it('reports parameters() naming an undeclared parameter at the place it is used', () => {
      const doc = deployment([resource(properties(), { name: "[parameters('nope')]" })], {
        parameters: { imageName: { type: 'string', defaultValue: 'x' } },
      });

      const errors = errorsOf(doc);

      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatchObject({ path: 'resources[0].name' });
      expect(errors[0]?.message).toContain("parameters('nope')");
    });

    describe('allowedValues', () => {
      const doc = deployment([resource(properties({ vmProfile: { vmSize: "[parameters('size')]" } }))], {
        parameters: {
          size: {
            type: 'string',
            allowedValues: ['Standard_D2s_v3', 'Standard_D4s_v3'],
            defaultValue: 'Standard_D2s_v3',
          },
        },
      });

      it('accepts an allowed value', () => {
        const loaded = load(doc, { parameters: new Map([['size', 'Standard_D4s_v3']]) });

        expect(loaded.template.vmSize).toBe('Standard_D4s_v3');
      });

      it('rejects any other value, listing the allowed ones', () => {
        const errors = errorsOf(doc, { parameters: new Map([['size', 'Standard_A0']]) });

        expect(errors).toHaveLength(1);
        expect(errors[0]).toMatchObject({ path: 'parameters.size' });
        expect(errors[0]?.message).toContain('"Standard_D2s_v3", "Standard_D4s_v3"');
        expect(errors[0]?.message).toContain('"Standard_A0"');
      });
    });

    describe('secure parameters', () => {
      const doc = deployment(
        [
          resource(
            properties({
              customize: [
                shellStep("[concat('echo ', parameters('token'))]", "[parameters('settings').key]"),
              ],
            }),
          ),
        ],
        {
          parameters: {
            token: { type: 'securestring' },
            settings: { type: 'secureObject' },
            plain: { type: 'string', defaultValue: 'not-secret' },
          },
        },
      );

      it('collects securestring and secureObject values so they can be masked', () => {
        const cli = new Map([
          ['token', 's3cr3t-token'],
          ['settings', '{"key":"object-secret","n":1}'],
        ]);

        const loaded = load(doc, { parameters: cli });

        expect(loaded.template.secureValues).toEqual(
          expect.arrayContaining(['s3cr3t-token', 'object-secret']),
        );
        expect(loaded.template.secureValues).not.toContain('not-secret');
        expect(loaded.template.customize[0]).toMatchObject({
          inline: ['echo s3cr3t-token', 'object-secret'],
        });
      });

      it('does not print a rejected secure value', () => {
        const secured = deployment([resource()], {
          parameters: { token: { type: 'securestring', allowedValues: ['a', 'b'] } },
        });

        const errors = errorsOf(secured, { parameters: new Map([['token', 'hunter2']]) });

        expect(errors).toHaveLength(1);
        expect(errors[0]?.message).not.toContain('hunter2');
      });
    });
  });

  describe('variables', () => {
    it('evaluates variables that refer to parameters and to other variables', () => {
      const doc = deployment([resource(properties(), { name: "[variables('fullName')]" })], {
        parameters: { env: { type: 'string', defaultValue: 'prod' } },
        variables: {
          fullName: "[concat(variables('prefix'), '-', parameters('env'))]",
          prefix: "[toUpper(variables('base'))]",
          base: 'img',
        },
      });

      const loaded = load(doc);

      expect(loaded.template.name).toBe('IMG-prod');
    });

    it('evaluates expressions inside object and array variables', () => {
      const doc = deployment([resource(properties({ vmProfile: "[variables('profile')]" }))], {
        variables: { size: 'Standard_D8s_v3', profile: { vmSize: "[variables('size')]", osDiskSizeGB: 100 } },
      });

      const loaded = load(doc);

      expect(loaded.template).toMatchObject({ vmSize: 'Standard_D8s_v3', osDiskSizeGB: 100 });
    });

    it('matches variable names case-insensitively', () => {
      const doc = deployment([resource(properties(), { name: "[variables('IMAGENAME')]" })], {
        variables: { imageName: 'from-variable' },
      });

      const loaded = load(doc);

      expect(loaded.template.name).toBe('from-variable');
    });

    it('detects a cycle between variables', () => {
      const doc = deployment([resource(properties(), { name: "[variables('a')]" })], {
        variables: { a: "[concat(variables('b'), '-x')]", b: "[variables('a')]" },
      });

      const errors = errorsOf(doc);

      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatchObject({ path: 'resources[0].name' });
      expect(errors[0]?.message).toContain('cycle');
    });

    it('detects a variable that refers to itself', () => {
      const doc = deployment([resource(properties(), { name: "[variables('self')]" })], {
        variables: { self: "[concat('x', variables('self'))]" },
      });

      const errors = errorsOf(doc);

      expect(errors[0]?.message).toContain("variables('self') refers to itself");
    });

    it('reports an undeclared variable at the place it is used', () => {
      const doc = deployment([resource(properties(), { name: "[variables('nope')]" })], { variables: {} });

      const errors = errorsOf(doc);

      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatchObject({ path: 'resources[0].name' });
      expect(errors[0]?.message).toContain("variables('nope')");
    });
  });

  describe('several imageTemplates resources', () => {
    const doc = deployment([
      { type: 'Microsoft.ManagedIdentity/userAssignedIdentities', apiVersion: '2023-01-31', name: 'id' },
      resource(properties({ vmProfile: { vmSize: 'Standard_A' } }), { name: 'first' }),
      resource(properties({ vmProfile: { vmSize: 'Standard_B' } }), { name: 'second' }),
    ]);

    it('picks the one named by --name (case-insensitively)', () => {
      const loaded = load(doc, { name: 'SECOND' });

      expect(loaded.template).toMatchObject({ name: 'second', vmSize: 'Standard_B' });
      expect(loaded.template.customize[0]?.path).toBe('resources[2].properties.customize[0]');
    });

    it('asks for --name, listing the names, when none is given', () => {
      const errors = errorsOf(doc);

      expect(errors).toHaveLength(1);
      expect(errors[0]?.message).toContain('--name');
      expect(errors[0]?.message).toContain('first, second');
    });

    it('lists the names when --name matches none', () => {
      const errors = errorsOf(doc, { name: 'third' });

      expect(errors).toHaveLength(1);
      expect(errors[0]?.message).toContain('--name third');
      expect(errors[0]?.message).toContain('first, second');
    });

    it('reports only the chosen resource’s problems', () => {
      const mixed = deployment([
        resource(properties({ buildTimeoutInMinutes: 5000 }), { name: 'broken' }),
        resource(properties(), { name: 'fine' }),
      ]);

      const loaded = load(mixed, { name: 'fine' });

      expect(loaded.template.name).toBe('fine');
    });

    it('accepts --name with a single resource when it matches', () => {
      const single = deployment([resource(properties(), { name: 'only' })]);

      const loaded = load(single, { name: 'only' });

      expect(loaded.template.name).toBe('only');
    });
  });

  it.each([
    [
      'an inline command',
      'customize',
      '[uniqueString(resourceGroup().id)]',
      'resources[0].properties.customize[0].inline[0]',
      'uniqueString',
    ],
    ['the name', 'name', "[reference('x').name]", 'resources[0].name', 'reference'],
  ])(
    'reports an unsupported function in %s with its JSON path and line',
    (_what, where, expression, path, fn) => {
      const props = where === 'customize' ? properties({ customize: [shellStep(expression)] }) : properties();
      const doc = deployment([resource(props, where === 'name' ? { name: expression } : {})]);
      const text = templateText(doc);

      const errors = errorsOf(doc, {
        subscriptionId: SUBSCRIPTION_ID,
        resourceGroup: RESOURCE_GROUP,
        location: 'westus2',
      });

      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatchObject({ path, line: lineOf(text, JSON.stringify(expression)) });
      expect(errors[0]?.message).toContain(`${fn}()`);
    },
  );

  it('reports each failing expression once and skips follow-on schema errors for it', () => {
    const doc = deployment([
      resource(
        properties({
          source: { type: 'ManagedImage', imageId: "[uniqueString('a')]" },
          vmProfile: { vnetConfig: { subnetId: '[utcNow()]' } },
        }),
      ),
    ]);

    const errors = errorsOf(doc);

    expect(errors.map((e) => e.path).sort()).toEqual([
      'resources[0].properties.source.imageId',
      'resources[0].properties.vmProfile.vnetConfig.subnetId',
    ]);
  });

  it('evaluates expressions in property names, such as the identity key', () => {
    const doc = deployment(
      [
        resource(properties(), {
          identity: { type: 'UserAssigned', userAssignedIdentities: { "[parameters('identityId')]": {} } },
        }),
      ],
      { parameters: { identityId: { type: 'string' } } },
    );

    const loaded = load(doc, { parameters: new Map([['identityId', IDENTITY_ID]]) });

    expect(loaded.template.identity).toBe(IDENTITY_ID);
  });

  it('reports a failing expression in a property name at that name', () => {
    const key = "[uniqueString('x')]";
    const doc = deployment([
      resource(properties(), { identity: { type: 'UserAssigned', userAssignedIdentities: { [key]: {} } } }),
    ]);

    const errors = errorsOf(doc);

    expect(errors).toEqual([
      expect.objectContaining({
        path: `resources[0].identity.userAssignedIdentities[${JSON.stringify(key)}]`,
        message: expect.stringContaining('uniqueString'),
      }),
    ]);
  });

  it('leaves [[-escaped strings as literals', () => {
    const doc = deployment([
      resource(properties({ customize: [shellStep('[[ -f /etc/os-release ] && echo ok')] })),
    ]);

    const loaded = load(doc);

    expect(loaded.template.customize[0]).toMatchObject({ inline: ['[ -f /etc/os-release ] && echo ok'] });
  });
});

describe('API versions', () => {
  it('takes the apiVersion from the file', () => {
    const loaded = load(at('2022-07-01'));

    expect(loaded.template).toMatchObject({ apiVersion: '2022-07-01', strict: false });
  });

  it('lets --api-version override the file, with a warning naming both', () => {
    const loaded = load(at('2024-02-01'), { apiVersion: '2023-07-01' });

    expect(loaded.template.apiVersion).toBe('2023-07-01');
    const warning = warningsOf(loaded).find((w) => w.path === 'apiVersion');
    expect(warning?.message).toContain('2024-02-01');
    expect(warning?.message).toContain('2023-07-01');
  });

  it('does not warn when --api-version matches the file', () => {
    const loaded = load(at('2023-07-01'), { apiVersion: '2023-07-01' });

    expect(warningsOf(loaded)).toEqual([]);
  });

  it('applies --api-version to a template that declares none', () => {
    const loaded = load(at('2024-02-01', properties(), { apiVersion: undefined }), {
      apiVersion: '2022-07-01',
    });

    expect(loaded.template.apiVersion).toBe('2022-07-01');
    expect(warningsOf(loaded)).toEqual([]);
  });

  it('uses the apiVersion of the resource inside a deployment', () => {
    const loaded = load(deployment([at('2022-07-01')]));

    expect(loaded.template.apiVersion).toBe('2022-07-01');
  });

  it.each(['2021-01-01', '2024-02-01-preview', 'latest'])(
    'rejects the unknown apiVersion %s in the file',
    (version) => {
      const errors = errorsOf(at(version));

      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatchObject({
        path: 'apiVersion',
        line: lineOf(templateText(at(version)), '"apiVersion"'),
      });
      expect(errors[0]?.message).toContain(`"${version}" is not an imageTemplates API version`);
      expect(errors[0]?.message).toContain('2024-02-01');
    },
  );

  it('rejects an unknown --api-version as a usage error', () => {
    const run = (): LoadedTemplate => load(at('2024-02-01'), { apiVersion: '2099-01-01' });

    expect(run).toThrow(IsobuildError);
    expect(run).toThrow(/--api-version 2099-01-01/);
  });

  it.each(['2019-02-01-preview', '2019-05-01-preview'])(
    'accepts the preview version %s with a warning',
    (version) => {
      const loaded = load(at(version));

      expect(loaded.template.apiVersion).toBe(version);
      expect(warningsOf(loaded).find((w) => w.path === 'apiVersion')?.message).toContain('preview');
    },
  );

  it('warns about a preview version given with --api-version too', () => {
    const loaded = load(at('2024-02-01', properties(), { apiVersion: undefined }), {
      apiVersion: '2019-05-01-preview',
    });

    expect(loaded.template.apiVersion).toBe('2019-05-01-preview');
    expect(
      warningsOf(loaded)
        .map((w) => w.message)
        .join('\n'),
    ).toContain('preview');
  });

  describe('strict versions (2024-02-01 and later)', () => {
    it.each(['2024-02-01', '2025-10-01'])('%s is strict', (version) => {
      const loaded = load(at(version));

      expect(loaded.template.strict).toBe(true);
    });

    it.each([
      [
        'a top-level field',
        properties({ source: undefined, Source: UBUNTU_SOURCE }),
        'properties.Source',
        'write "source"',
      ],
      [
        'a customizer field',
        properties({ customize: [{ type: 'Shell', Inline: ['echo'] }] }),
        'properties.customize[0].Inline',
        'write "inline"',
      ],
      [
        'a vmProfile field',
        properties({ vmProfile: { VmSize: 'Standard_D2s_v3' } }),
        'properties.vmProfile.VmSize',
        'write "vmSize"',
      ],
    ])('rejects a wrong-case name of %s', (_what, props, path, hint) => {
      const errors = errorsOf(at('2024-02-01', props));

      expect(errors).toContainEqual(
        expect.objectContaining({ path, message: expect.stringContaining(hint) }),
      );
      expect(errors.every((e) => e.line !== undefined)).toBe(true);
    });

    it.each([
      ['source', properties({ source: undefined, Source: UBUNTU_SOURCE }), 'properties.Source'],
      [
        'inline',
        properties({ customize: [{ type: 'Shell', Inline: ['echo'] }] }),
        'properties.customize[0].Inline',
      ],
    ])('reports a wrong-case "%s" once, without a follow-on "missing" error', (_what, props, path) => {
      const errors = errorsOf(at('2024-02-01', props));

      expect(errors.map((e) => e.path)).toEqual([path]);
    });

    it.each([
      [
        'a customizer type',
        properties({ customize: [{ type: 'shell', inline: ['echo'] }] }),
        'properties.customize[0].type',
        '"Shell"',
      ],
      [
        'a source type',
        properties({ source: { ...UBUNTU_SOURCE, type: 'platformImage' } }),
        'properties.source.type',
        '"PlatformImage"',
      ],
      [
        'an errorHandling value',
        properties({ errorHandling: { onCustomizerError: 'Abort' } }),
        'properties.errorHandling.onCustomizerError',
        '"abort"',
      ],
      [
        'a storage account type',
        properties({
          distribute: [
            {
              type: 'SharedImage',
              galleryImageId: GALLERY_IMAGE_ID,
              runOutputName: 'sig',
              targetRegions: [{ name: 'westus2', storageAccountType: 'standard_lrs' }],
            },
          ],
        }),
        'properties.distribute[0].targetRegions[0].storageAccountType',
        '"Standard_LRS"',
      ],
    ])('rejects a wrong-case value of %s', (_what, props, path, hint) => {
      const errors = errorsOf(at('2024-02-01', props));

      expect(errors).toContainEqual(
        expect.objectContaining({ path, message: expect.stringContaining(hint) }),
      );
      expect(errors.find((e) => e.path === path)?.message).toContain('case-sensitive');
    });

    it('rejects an unknown field with a suggestion', () => {
      const props = properties({ distribute: [{ ...managedImageDistributor(), aritfactTags: { a: 'b' } }] });

      const errors = errorsOf(at('2024-02-01', props));

      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatchObject({ path: 'properties.distribute[0].aritfactTags' });
      expect(errors[0]?.message).toContain('Did you mean "artifactTags"?');
    });

    it('rejects an apiVersion field inside properties as unknown', () => {
      const errors = errorsOf(at('2024-02-01', properties({ apiVersion: '2024-02-01' })));

      expect(errors.map((e) => e.path)).toEqual(['properties.apiVersion']);
    });
  });

  describe('lenient versions (before 2024-02-01)', () => {
    it('accepts wrong-case field names and enum values and canonicalises them', () => {
      const props = {
        Source: {
          Type: 'platformimage',
          Publisher: 'Canonical',
          offer: 'ubuntu',
          SKU: '22_04-lts',
          version: 'latest',
        },
        customize: [{ type: 'shell', INLINE: ['echo hi'], Name: 'hello' }],
        distribute: [
          {
            type: 'sharedimage',
            galleryImageId: GALLERY_IMAGE_ID,
            runOutputName: 'sig',
            TargetRegions: [{ Name: 'eastus', storageAccountType: 'standard_zrs' }],
          },
        ],
      };

      const loaded = load(at('2022-07-01', props));

      expect(loaded.template.source).toEqual({
        type: 'PlatformImage',
        publisher: 'Canonical',
        offer: 'ubuntu',
        sku: '22_04-lts',
        version: 'latest',
      });
      expect(loaded.template.customize[0]).toMatchObject({
        type: 'Shell',
        name: 'hello',
        inline: ['echo hi'],
      });
      expect(loaded.template.distribute[0]).toMatchObject({
        type: 'SharedImage',
        targetRegions: [{ name: 'eastus', replicaCount: 1, storageAccountType: 'Standard_ZRS' }],
      });
      expect(loaded.template.strict).toBe(false);
    });

    it('warns about an unknown field with a "did you mean" suggestion and ignores it', () => {
      const props = properties({ distribute: [{ ...managedImageDistributor(), aritfactTags: { a: 'b' } }] });

      const loaded = load(at('2022-07-01', props));

      const warning = warningsOf(loaded).find((w) => w.path === 'properties.distribute[0].aritfactTags');
      expect(warning?.message).toContain('Did you mean "artifactTags"?');
      expect(warning?.line).toBe(lineOf(templateText(at('2022-07-01', props)), '"aritfactTags"'));
    });

    it('lists the known fields when no name is close', () => {
      const loaded = load(at('2022-07-01', properties({ vmProfile: { somethingElse: 1 } })));

      const warning = warningsOf(loaded).find((w) => w.path === 'properties.vmProfile.somethingElse');
      expect(warning?.message).toContain('Known fields here: vmSize, osDiskSizeGB');
    });

    it('rejects the same field twice in different case', () => {
      const props = properties({ vmProfile: { vmSize: 'Standard_A', VMSIZE: 'Standard_B' } });

      const errors = errorsOf(at('2022-07-01', props));

      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatchObject({ path: 'properties.vmProfile.VMSIZE' });
    });
  });

  describe('fields newer than the declared version', () => {
    const sharedImageWith = (extra: JsonMap): JsonMap =>
      properties({
        distribute: [
          { type: 'SharedImage', galleryImageId: GALLERY_IMAGE_ID, runOutputName: 'sig', ...extra },
        ],
      });

    it.each([
      [
        'errorHandling',
        '2022-02-14',
        properties({ errorHandling: { onCustomizerError: 'abort' } }),
        'properties.errorHandling',
        '2023-07-01',
      ],
      [
        'targetRegions',
        '2022-02-14',
        sharedImageWith({ targetRegions: [{ name: 'westus2' }] }),
        'properties.distribute[0].targetRegions',
        '2022-07-01',
      ],
      [
        'containerInstanceSubnetId',
        '2023-07-01',
        properties({
          vmProfile: {
            vnetConfig: { subnetId: subnetId(), containerInstanceSubnetId: subnetId('build-vnet', 'aci') },
          },
        }),
        'properties.vmProfile.vnetConfig.containerInstanceSubnetId',
        '2024-02-01',
      ],
      [
        'a File validator',
        '2022-02-14',
        properties({
          validate: {
            inVMValidations: [{ type: 'File', sourceUri: 'https://example.com/f', destination: '/tmp/f' }],
          },
        }),
        'properties.validate.inVMValidations[0].type',
        '2022-07-01',
      ],
      [
        'Premium_LRS',
        '2020-02-14',
        sharedImageWith({ replicationRegions: ['westus2'], storageAccountType: 'Premium_LRS' }),
        'properties.distribute[0].storageAccountType',
        '2022-07-01',
      ],
      [
        'validate',
        '2021-10-01',
        properties({ validate: { continueDistributeOnFailure: true } }),
        'properties.validate',
        '2022-02-14',
      ],
      [
        'autoRun',
        '2023-07-01',
        properties({ autoRun: { state: 'Enabled' } }),
        'properties.autoRun',
        '2024-02-01',
      ],
      [
        'optimize.workload',
        '2024-02-01',
        properties({ optimize: { workload: { state: 'Enabled' } } }),
        'properties.optimize.workload',
        '2025-10-01',
      ],
    ])('%s in %s is an error naming the version that introduced it', (_what, version, props, path, since) => {
      const errors = errorsOf(at(version, props));

      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatchObject({ path });
      expect(errors[0]?.message).toContain(`introduced in API version ${since}`);
      expect(errors[0]?.message).toContain(`declares ${version}`);
      expect(errors[0]?.line).toBeGreaterThan(1);
    });

    it('names --api-version, not the file, when the flag chose the version', () => {
      const doc = at('2024-02-01', properties({ errorHandling: { onCustomizerError: 'abort' } }));

      const errors = errorsOf(doc, { apiVersion: '2022-02-14' });

      expect(errors).toHaveLength(1);
      expect(errors[0]?.message).toContain('--api-version selects 2022-02-14');
      expect(errors[0]?.message).toContain('introduced in API version 2023-07-01');
    });

    it.each([
      ['errorHandling', '2023-07-01', properties({ errorHandling: { onCustomizerError: 'abort' } })],
      ['targetRegions', '2022-07-01', sharedImageWith({ targetRegions: [{ name: 'westus2' }] })],
      [
        'Premium_LRS',
        '2022-07-01',
        sharedImageWith({ targetRegions: [{ name: 'westus2', storageAccountType: 'Premium_LRS' }] }),
      ],
    ])('%s is accepted from %s', (_what, version, props) => {
      const loaded = load(at(version, props));

      expect(loaded.template.apiVersion).toBe(version);
    });

    it('warns that replicationRegions is deprecated from 2022-07-01', () => {
      const loaded = load(at('2022-07-01', sharedImageWith({ replicationRegions: ['westus2'] })));

      const warning = warningsOf(loaded).find(
        (w) => w.path === 'properties.distribute[0].replicationRegions',
      );
      expect(warning?.message).toContain('targetRegions');
    });
  });
});

describe('reporting', () => {
  it('reports every independent problem at once, each with its path and line', () => {
    const doc = resource(
      properties({
        buildTimeoutInMinutes: 1000,
        vmProfile: { osDiskSizeGB: -1 },
        distribute: [managedImageDistributor('not a valid name!')],
      }),
    );
    const text = templateText(doc);

    const errors = errorsOf(doc);

    expect(errors).toHaveLength(3);
    expect(errors).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          path: 'properties.buildTimeoutInMinutes',
          line: lineOf(text, '"buildTimeoutInMinutes"'),
        }),
        expect.objectContaining({
          path: 'properties.vmProfile.osDiskSizeGB',
          line: lineOf(text, '"osDiskSizeGB"'),
        }),
        expect.objectContaining({
          path: 'properties.distribute[0].runOutputName',
          line: lineOf(text, '"runOutputName"'),
        }),
      ]),
    );
  });

  it('sorts the problems by line and counts the errors in the message', () => {
    const doc = resource(
      properties({
        buildTimeoutInMinutes: 1000,
        vmProfile: { osDiskSizeGB: -1 },
        distribute: [managedImageDistributor('not a valid name!')],
      }),
    );

    let error: IsobuildError | undefined;
    try {
      load(doc);
    } catch (caught) {
      error = caught as IsobuildError;
    }

    const lines = error?.problems.map((p) => p.line ?? 0) ?? [];
    expect(lines).toEqual([...lines].sort((a, b) => a - b));
    expect(error?.message).toContain('3 errors');
  });

  it('places a missing field at the line of its parent', () => {
    const doc = resource(properties({ source: { type: 'ManagedImage' } }));

    const errors = errorsOf(doc);

    expect(errors).toEqual([
      expect.objectContaining({
        path: 'properties.source.imageId',
        line: lineOf(templateText(doc), '"source"'),
      }),
    ]);
  });

  it('keeps warnings (such as a trailing comma) of a template that loads', () => {
    const text = templateText(resource()).replace(/"latest"\n/, '"latest",\n');

    const loaded = loadTemplateText(text, LABEL);

    expect(loaded.warnings).toEqual([
      expect.objectContaining({ severity: 'warning', message: expect.stringContaining('trailing comma') }),
    ]);
  });
});

describe('placeholders', () => {
  const GROUP = '/subscriptions/<subscriptionID>/resourceGroups/<rgName>';

  it('reports all unfilled placeholders in one error and no resource-ID errors for those fields', () => {
    const doc = resource(
      properties({
        distribute: [
          {
            type: 'ManagedImage',
            imageId: `${GROUP}/providers/Microsoft.Compute/images/<imageName>`,
            location: '<region>',
            runOutputName: '<runOutputName>',
          },
        ],
        vmProfile: {
          vnetConfig: {
            subnetId: `${GROUP}/providers/Microsoft.Network/virtualNetworks/<vnet>/subnets/<subnet>`,
          },
        },
      }),
      {
        identity: identity(
          `${GROUP}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/<identityName>`,
        ),
        location: '<region>',
      },
    );

    const errors = errorsOf(doc);

    expect(errors).toHaveLength(1);
    for (const name of [
      'subscriptionID',
      'rgName',
      'imageName',
      'region',
      'runOutputName',
      'vnet',
      'subnet',
      'identityName',
    ]) {
      expect(errors[0]?.message).toContain(`<${name}>`);
    }
    expect(errors[0]?.message).toContain('properties.distribute[0].imageId');
    expect(errors[0]?.line).toBeDefined();
  });

  it('finds placeholders in a bare properties object and a deployment too', () => {
    const props = properties({
      source: { type: 'ManagedImage', imageId: `${GROUP}/providers/Microsoft.Compute/images/x` },
    });

    const fromProperties = errorsOf(props);
    const fromDeployment = errorsOf(deployment([resource(props)]));

    expect(fromProperties).toHaveLength(1);
    expect(fromProperties[0]?.message).toContain('<subscriptionID> (at source.imageId)');
    expect(fromDeployment).toHaveLength(1);
    expect(fromDeployment[0]?.message).toContain(
      '<subscriptionID> (at resources[0].properties.source.imageId)',
    );
  });

  it.each([
    [
      'Shell inline commands',
      properties({ customize: [shellStep('sort <input.txt >output.txt', 'echo <name> | cat')] }),
    ],
    [
      'PowerShell inline commands',
      properties({
        source: WINDOWS_SOURCE,
        customize: [powerShellStep('if ($a -lt 3) { Write-Output "<b>" }')],
      }),
    ],
    [
      'WindowsUpdate filters and search criteria',
      properties({
        source: WINDOWS_SOURCE,
        customize: [
          {
            type: 'WindowsUpdate',
            searchCriteria: 'IsInstalled=0',
            filters: ['include:$_.Title -like "<KB>"'],
          },
        ],
      }),
    ],
  ])('does not treat < in %s as a placeholder', (_what, props) => {
    const loaded = load(resource(props));

    expect(loaded.template.customize).toHaveLength(1);
  });

  it('does not treat a comparison such as a<b (no closing >) as a placeholder', () => {
    const loaded = load(
      resource(properties({ customize: [{ ...shellStep(), name: 'check a<b and c > d' }] })),
    );

    expect(loaded.template.customize[0]?.name).toBe('check a<b and c > d');
  });
});

describe('normalisation (AIB defaults)', () => {
  it.each([
    ['0', 0, 240],
    ['absent', undefined, 240],
    ['90', 90, 90],
    ['960', 960, 960],
  ])('buildTimeoutInMinutes %s → %i', (_what, value, expected) => {
    const loaded = load(resource(properties({ buildTimeoutInMinutes: value })));

    expect(loaded.template.buildTimeoutInMinutes).toBe(expected);
  });

  it.each([
    ['a Gen1 marketplace sku', { ...UBUNTU_SOURCE, sku: '22_04-lts' }, undefined, 'Standard_D1_v2'],
    ['a Gen2 marketplace sku', { ...UBUNTU_SOURCE, sku: '22_04-lts-gen2' }, undefined, 'Standard_D2ds_v4'],
    ['an explicit empty vmSize', UBUNTU_SOURCE, '', 'Standard_D1_v2'],
    ['an explicit vmSize', { ...UBUNTU_SOURCE, sku: '22_04-lts-gen2' }, 'Standard_D8s_v5', 'Standard_D8s_v5'],
  ])('vmSize for %s is %s', (_what, source, vmSize, expected) => {
    const props = properties({ source, vmProfile: vmSize === undefined ? undefined : { vmSize } });

    const loaded = load(resource(props));

    expect(loaded.template.vmSize).toBe(expected);
  });

  it('leaves osDiskSizeGB unset at 0 (keep the source size)', () => {
    const loaded = load(resource(properties({ vmProfile: { osDiskSizeGB: 0 } })));

    expect(loaded.template.osDiskSizeGB).toBeUndefined();
  });

  it('fills in the WindowsRestart defaults', () => {
    const props = properties({ source: WINDOWS_SOURCE, customize: [{ type: 'WindowsRestart' }] });

    const loaded = load(resource(props));

    expect(loaded.template.customize[0]).toMatchObject({
      type: 'WindowsRestart',
      restartCommand: DEFAULT_RESTART_COMMAND,
      restartCheckCommand: '',
      restartTimeout: '5m',
    });
    expect(DEFAULT_RESTART_COMMAND).toBe('shutdown /r /f /t 0 /c "packer restart"');
  });

  it('keeps WindowsRestart values that are given', () => {
    const step = {
      type: 'WindowsRestart',
      restartCommand: 'shutdown /r',
      restartCheckCommand: 'hostname',
      restartTimeout: '10m',
    };

    const loaded = load(resource(properties({ source: WINDOWS_SOURCE, customize: [step] })));

    expect(loaded.template.customize[0]).toMatchObject({
      restartCommand: 'shutdown /r',
      restartCheckCommand: 'hostname',
      restartTimeout: '10m',
    });
  });

  it.each([
    ['absent', undefined, 1000],
    ['0', 0, 1000],
    ['20', 20, 20],
  ])('WindowsUpdate updateLimit %s → %i', (_what, updateLimit, expected) => {
    const step: JsonMap = { type: 'WindowsUpdate', ...(updateLimit === undefined ? {} : { updateLimit }) };

    const loaded = load(resource(properties({ source: WINDOWS_SOURCE, customize: [step] })));

    expect(loaded.template.customize[0]).toMatchObject({
      type: 'WindowsUpdate',
      updateLimit: expected,
      searchCriteria: DEFAULT_SEARCH_CRITERIA,
      filters: [],
    });
  });

  it.each([
    ['absent', undefined, [0]],
    ['empty', [], [0]],
    ['given', [0, 3010], [0, 3010]],
  ])('PowerShell validExitCodes %s → %j', (_what, validExitCodes, expected) => {
    const step: JsonMap = {
      ...powerShellStep(),
      ...(validExitCodes === undefined ? {} : { validExitCodes }),
    };

    const loaded = load(resource(properties({ source: WINDOWS_SOURCE, customize: [step] })));

    expect(loaded.template.customize[0]).toMatchObject({
      type: 'PowerShell',
      validExitCodes: expected,
      runElevated: false,
      runAsSystem: false,
    });
  });

  it('names unnamed steps after their type and index, and lower-cases checksums', () => {
    const checksum = 'AB'.repeat(32);
    const props = properties({
      customize: [
        shellStep(),
        { type: 'Shell', name: 'named', scriptUri: 'https://example.com/s.sh', sha256Checksum: checksum },
      ],
    });

    const loaded = load(resource(props));

    expect(loaded.template.customize).toMatchObject([
      { name: 'Shell #1', hasUserName: false, sha256Checksum: '' },
      { name: 'named', hasUserName: true, sha256Checksum: checksum.toLowerCase() },
    ]);
  });

  it.each([
    ['absent', undefined, { onCustomizerError: 'cleanup', onValidationError: 'cleanup' }],
    ['partial', { onValidationError: 'abort' }, { onCustomizerError: 'cleanup', onValidationError: 'abort' }],
    [
      'both abort',
      { onCustomizerError: 'abort', onValidationError: 'abort' },
      { onCustomizerError: 'abort', onValidationError: 'abort' },
    ],
  ])('errorHandling %s', (_what, errorHandling, expected) => {
    const loaded = load(resource(properties({ errorHandling })));

    expect(loaded.template.errorHandling).toEqual(expected);
  });

  it('turns replicationRegions into targetRegions with one replica each', () => {
    const props = properties({
      distribute: [
        {
          type: 'SharedImage',
          galleryImageId: GALLERY_IMAGE_ID,
          runOutputName: 'sig',
          replicationRegions: ['westus2', 'eastus'],
          storageAccountType: 'Standard_ZRS',
        },
      ],
    });

    const loaded = load(at('2022-02-14', props));

    expect(loaded.template.distribute[0]).toEqual({
      type: 'SharedImage',
      runOutputName: 'sig',
      galleryImageId: GALLERY_IMAGE_ID,
      excludeFromLatest: false,
      targetRegions: [
        { name: 'westus2', replicaCount: 1, storageAccountType: 'Standard_ZRS' },
        { name: 'eastus', replicaCount: 1, storageAccountType: 'Standard_ZRS' },
      ],
    });
  });

  it('defaults replicationRegions storage to Standard_LRS', () => {
    const props = properties({
      distribute: [
        {
          type: 'SharedImage',
          galleryImageId: GALLERY_IMAGE_ID,
          runOutputName: 'sig',
          replicationRegions: ['westus2'],
        },
      ],
    });

    const loaded = load(at('2022-02-14', props));

    expect(loaded.template.distribute[0]).toMatchObject({
      targetRegions: [{ name: 'westus2', replicaCount: 1, storageAccountType: 'Standard_LRS' }],
    });
  });

  it('defaults each targetRegion to one Standard_LRS replica', () => {
    const props = properties({
      distribute: [
        {
          type: 'SharedImage',
          galleryImageId: GALLERY_IMAGE_ID,
          runOutputName: 'sig',
          targetRegions: [
            { name: 'westus2' },
            { name: 'eastus', replicaCount: 3, storageAccountType: 'Premium_LRS' },
          ],
        },
      ],
    });

    const loaded = load(resource(props));

    expect(loaded.template.distribute[0]).toMatchObject({
      targetRegions: [
        { name: 'westus2', replicaCount: 1, storageAccountType: 'Standard_LRS' },
        { name: 'eastus', replicaCount: 3, storageAccountType: 'Premium_LRS' },
      ],
    });
  });

  it('keeps a VHD uri only when one is given', () => {
    const props = properties({
      distribute: [
        { type: 'VHD', runOutputName: 'vhd1' },
        { type: 'VHD', runOutputName: 'vhd2', uri: 'https://account.blob.core.windows.net/vhds/out.vhd' },
      ],
    });

    const loaded = load(resource(props));

    expect(loaded.template.distribute).toEqual([
      { type: 'VHD', runOutputName: 'vhd1' },
      { type: 'VHD', runOutputName: 'vhd2', uri: 'https://account.blob.core.windows.net/vhds/out.vhd' },
    ]);
  });

  it.each([
    ['direct (no vnetConfig)', undefined, undefined],
    ['proxy, default size', { subnetId: subnetId() }, DEFAULT_PROXY_VM_SIZE],
    ['proxy, given size', { subnetId: subnetId(), proxyVmSize: 'Standard_B2s' }, 'Standard_B2s'],
    [
      'aci-subnet',
      { subnetId: subnetId(), containerInstanceSubnetId: subnetId('build-vnet', 'aci') },
      undefined,
    ],
  ])('proxyVmSize in the %s topology is %s', (_what, vnetConfig, expected) => {
    const props = properties({ vmProfile: vnetConfig === undefined ? undefined : { vnetConfig } });

    const loaded = load(resource(props));

    expect(loaded.template.vnet.proxyVmSize).toBe(expected);
    expect(DEFAULT_PROXY_VM_SIZE).toBe('Standard_A1_v2');
  });
});

describe('OS inference', () => {
  const noSteps = (source: JsonMap): JsonMap => properties({ source, customize: undefined });

  it.each([
    [
      'a Shell step',
      properties({ source: MANAGED_SOURCE, customize: [shellStep()] }),
      'linux',
      'customize[0] is a Shell step',
    ],
    [
      'a PowerShell step',
      properties({ source: MANAGED_SOURCE, customize: [powerShellStep()] }),
      'windows',
      'PowerShell',
    ],
    [
      'a WindowsRestart step',
      properties({ source: MANAGED_SOURCE, customize: [{ type: 'WindowsRestart' }] }),
      'windows',
      'WindowsRestart',
    ],
    [
      'a WindowsUpdate step',
      properties({ source: MANAGED_SOURCE, customize: [{ type: 'WindowsUpdate' }] }),
      'windows',
      'WindowsUpdate',
    ],
    [
      'a File step to c:\\',
      properties({
        source: MANAGED_SOURCE,
        customize: [
          { type: 'File', sourceUri: 'https://example.com/a.zip', destination: 'c:\\buildArtifacts\\a.zip' },
        ],
      }),
      'windows',
      'File',
    ],
    [
      'a Shell validator',
      properties({
        source: MANAGED_SOURCE,
        customize: undefined,
        validate: { inVMValidations: [shellStep()] },
      }),
      'linux',
      'validate.inVMValidations[0]',
    ],
    [
      'a Windows marketplace image without steps',
      noSteps(WINDOWS_SOURCE),
      'windows',
      'MicrosoftWindowsServer',
    ],
    ['a Linux marketplace image without steps', noSteps(UBUNTU_SOURCE), 'linux', 'Canonical'],
    [
      'a Windows marketplace image whose only step (a File step) does not tell',
      properties({
        source: WINDOWS_SOURCE,
        customize: [{ type: 'File', sourceUri: 'https://example.com/a', destination: '/tmp/a' }],
      }),
      'windows',
      'MicrosoftWindowsServer',
    ],
  ])('%s → %s', (_what, props, os, reason) => {
    const loaded = load(resource(props));

    expect(loaded.template.os).toBe(os);
    expect(loaded.template.osReason).toContain(reason);
    expect(warningsOf(loaded)).toEqual([]);
  });

  it('rejects mixing Shell and PowerShell steps', () => {
    const props = properties({ source: MANAGED_SOURCE, customize: [shellStep(), powerShellStep()] });

    const errors = errorsOf(resource(props));

    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ path: 'properties.customize' });
    expect(errors[0]?.message).toContain('mixes Linux and Windows steps');
  });

  it('rejects a Linux validator in a Windows build', () => {
    const props = properties({
      source: MANAGED_SOURCE,
      customize: [powerShellStep()],
      validate: { inVMValidations: [shellStep()] },
    });

    const errors = errorsOf(resource(props));

    expect(errors.map((e) => e.message).join('\n')).toContain('mixes Linux and Windows steps');
  });

  it.each([
    ['a Windows image with Shell steps', properties({ source: WINDOWS_SOURCE, customize: [shellStep()] })],
    [
      'a Linux image with PowerShell steps',
      properties({ source: UBUNTU_SOURCE, customize: [powerShellStep()] }),
    ],
  ])('rejects %s (the source contradicts the steps)', (_what, props) => {
    const errors = errorsOf(resource(props));

    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ path: 'properties.source' });
    expect(errors[0]?.message).toContain('--os');
  });

  it('lets the os option override the publisher', () => {
    const loaded = load(resource(noSteps(WINDOWS_SOURCE)), { os: 'linux' });

    expect(loaded.template).toMatchObject({ os: 'linux', osReason: 'set with --os' });
    expect(loaded.warnings).toEqual([]);
  });

  it('lets the os option decide when nothing else does, without a warning', () => {
    const loaded = load(resource(noSteps(MANAGED_SOURCE)), { os: 'windows' });

    expect(loaded.template).toMatchObject({ os: 'windows', osReason: 'set with --os' });
    expect(loaded.warnings).toEqual([]);
  });

  it.each([
    ['a managed image without steps', noSteps(MANAGED_SOURCE)],
    [
      'a gallery image with only a File step to /tmp',
      properties({
        source: { type: 'SharedImageVersion', imageVersionId: `${GALLERY_IMAGE_ID}/versions/1.0.0` },
        customize: [{ type: 'File', sourceUri: 'https://example.com/a', destination: '/tmp/a' }],
      }),
    ],
    [
      'an unknown marketplace publisher',
      noSteps({ ...UBUNTU_SOURCE, publisher: 'contoso', offer: 'base', sku: 'v1' }),
    ],
  ])('assumes Linux with a warning for %s', (_what, props) => {
    const loaded = load(resource(props));

    expect(loaded.template.os).toBe('linux');
    expect(warningsOf(loaded)).toEqual([
      expect.objectContaining({
        path: 'properties.source',
        message: expect.stringContaining('assuming Linux'),
      }),
    ]);
  });
});

describe('topology', () => {
  const withVnet = (vnetConfig: JsonMap | undefined): JsonMap =>
    resource(properties({ vmProfile: vnetConfig === undefined ? undefined : { vnetConfig } }));

  it.each([
    ['no vmProfile', undefined, 'direct'],
    ['an empty vnetConfig', {}, 'direct'],
    ['subnetId', { subnetId: subnetId() }, 'proxy'],
    [
      'subnetId + containerInstanceSubnetId',
      { subnetId: subnetId(), containerInstanceSubnetId: subnetId('build-vnet', 'aci') },
      'aci-subnet',
    ],
  ])('%s → %s', (_what, vnetConfig, topology) => {
    const loaded = load(withVnet(vnetConfig));

    expect(loaded.template.topology).toBe(topology);
  });

  it('compares the virtual network case-insensitively', () => {
    const vnetConfig = {
      subnetId: subnetId('Build-VNet', 'build'),
      containerInstanceSubnetId: subnetId('build-vnet', 'aci').replace(
        '/resourceGroups/',
        '/resourcegroups/',
      ),
    };

    const loaded = load(withVnet(vnetConfig));

    expect(loaded.template.topology).toBe('aci-subnet');
  });

  it.each([
    [
      'containerInstanceSubnetId without subnetId',
      { containerInstanceSubnetId: subnetId('build-vnet', 'aci') },
      'properties.vmProfile.vnetConfig.containerInstanceSubnetId',
      'requires "subnetId"',
    ],
    [
      'subnets in different virtual networks',
      { subnetId: subnetId('vnet-a', 'build'), containerInstanceSubnetId: subnetId('vnet-b', 'aci') },
      'properties.vmProfile.vnetConfig.containerInstanceSubnetId',
      'same virtual network',
    ],
    [
      'the same subnet twice',
      { subnetId: subnetId('vnet-a', 'build'), containerInstanceSubnetId: subnetId('vnet-a', 'BUILD') },
      'properties.vmProfile.vnetConfig.containerInstanceSubnetId',
      'different subnet',
    ],
    [
      'proxyVmSize with containerInstanceSubnetId',
      {
        subnetId: subnetId(),
        containerInstanceSubnetId: subnetId('build-vnet', 'aci'),
        proxyVmSize: 'Standard_A2_v2',
      },
      'properties.vmProfile.vnetConfig.proxyVmSize',
      'no proxy VM',
    ],
    [
      'proxyVmSize without subnetId',
      { proxyVmSize: 'Standard_A2_v2' },
      'properties.vmProfile.vnetConfig.proxyVmSize',
      'only applies with "subnetId"',
    ],
  ])('rejects %s', (_what, vnetConfig, path, message) => {
    const doc = withVnet(vnetConfig);

    const errors = errorsOf(doc);

    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ path });
    expect(errors[0]?.message).toContain(message);
    expect(errors[0]?.line).toBe(lineOf(templateText(doc), `"${path.split('.').pop() ?? ''}"`));
  });

  it.each([
    ['direct', 'linux', 'direct', ':22'],
    ['proxy', 'windows', 'via proxy VM', ':60000'],
    ['aci-subnet', 'linux', 'ACI subnet', ':22'],
  ] as const)('describes the %s topology for %s', (topology, os, words, port) => {
    const text = describeTopology({ topology, os, vnet: { proxyVmSize: 'Standard_A1_v2' } });

    expect(text).toContain(words);
    expect(text).toContain(port);
  });
});

describe('identity', () => {
  it.each([
    ['2022-07-01', 'warning'],
    ['2023-07-01', 'warning'],
    ['2024-02-01', 'error'],
  ])('a missing identity in %s is a %s', (version, severity) => {
    const doc = at(version, properties(), { identity: undefined });

    const problems = severity === 'error' ? errorsOf(doc) : load(doc).warnings;

    expect(problems).toEqual([
      expect.objectContaining({
        severity,
        path: 'identity',
        message: expect.stringContaining('UserAssigned'),
      }),
    ]);
  });

  it('reports identity problems of a deployment at the resource’s path', () => {
    const doc = deployment([resource(properties(), { identity: identity(IDENTITY_ID, OTHER_IDENTITY_ID) })]);

    const errors = errorsOf(doc);

    expect(errors).toEqual([expect.objectContaining({ path: 'resources[0].identity' })]);
  });

  it('rejects two identities', () => {
    const doc = resource(properties(), { identity: identity(IDENTITY_ID, OTHER_IDENTITY_ID) });

    const errors = errorsOf(doc);

    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ path: 'identity' });
    expect(errors[0]?.message).toContain('exactly one template identity; 2 are listed');
  });

  it('rejects UserAssigned without any identity', () => {
    const errors = errorsOf(
      resource(properties(), { identity: { type: 'UserAssigned', userAssignedIdentities: {} } }),
    );

    expect(errors[0]?.message).toContain('none is listed');
  });

  it('rejects type None with identities listed', () => {
    const doc = resource(properties(), {
      identity: { type: 'None', userAssignedIdentities: { [IDENTITY_ID]: {} } },
    });

    const errors = errorsOf(doc);

    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ path: 'identity' });
    expect(errors[0]?.message).toContain('"None"');
  });

  it('accepts type None without identities before 2024-02-01 and records no identity', () => {
    const loaded = load(resource(properties(), { apiVersion: '2022-07-01', identity: { type: 'None' } }));

    expect(loaded.template.identity).toBeUndefined();
  });

  it('rejects type None from 2024-02-01, where AIB requires the identity', () => {
    const errors = errorsOf(resource(properties(), { apiVersion: '2024-02-01', identity: { type: 'None' } }));

    expect(errors.map((p) => p.path)).toContain('identity');
  });

  it('records the one identity', () => {
    const loaded = load(resource());

    expect(loaded.template.identity).toBe(IDENTITY_ID);
  });

  it('rejects an identity key that is not a user-assigned identity resource ID', () => {
    const doc = resource(properties(), {
      identity: identity('/subscriptions/x/resourceGroups/rg/identities/a'),
    });

    const errors = errorsOf(doc);

    expect(errors.map((e) => e.message).join('\n')).toContain('not a user-assigned identity resource ID');
  });
});
