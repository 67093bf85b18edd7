/**
 * Secrets of a deployment template: every value computed from a securestring or secureObject parameter,
 * through functions, variables, parameter defaults, objects and arrays, however nested, is collected
 * for masking, and nothing else is; secure values too short to mask are refused (securestring) or
 * warned about (secureObject) without being shown.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IsobuildError, type Problem } from '../../agent/src/errors.js';
import { MIN_SECRET_LENGTH, SecretMasker } from '../../agent/src/mask-secrets.js';
import { evaluateDeploymentResource } from '../../agent/src/template/arm-deployment.js';
import type { JsonObject, JsonValue } from '../../agent/src/template/json-source.js';
import { loadTemplateText } from '../../agent/src/template/load-template.js';
import { deployment, properties, resource, shellStep, templateText } from '../helpers/template-builders.js';

const SECRET = 'Sw0rd#fish"\\';

interface Evaluation {
  readonly value: JsonObject;
  readonly secureValues: readonly string[];
  readonly problems: Problem[];
}

/** Evaluates `{ x: <value> }` in a deployment with the given parameters, variables and values. */
function evaluateX(
  x: JsonValue,
  options: {
    parameters?: JsonObject;
    variables?: JsonObject;
    values?: Record<string, string>;
  } = {},
): Evaluation {
  const problems: Problem[] = [];
  const doc: JsonObject = {
    parameters: options.parameters ?? {
      s: { type: 'securestring' },
      name: { type: 'string', defaultValue: 'web' },
    },
    variables: options.variables ?? {},
    resources: [{ x }],
  };
  const result = evaluateDeploymentResource(
    doc,
    ['resources', 0],
    { cliParameters: new Map(Object.entries(options.values ?? { s: SECRET })), fileParameters: new Map() },
    problems,
  );
  return { value: result.value, secureValues: result.secureValues, problems };
}

describe('values derived from secure parameters', () => {
  it("collects the issue's nested expression and every step of it", () => {
    const { value, secureValues } = evaluateX("[replace(concat('x', parameters('s')), '#', '!')]");

    expect(value.x).toBe('xSw0rd!fish"\\');
    expect(secureValues).toEqual([SECRET, `x${SECRET}`, 'xSw0rd!fish"\\']);
  });

  it('follows variables that refer to variables that refer to the parameter', () => {
    const { secureValues } = evaluateX("[toUpper(variables('outer'))]", {
      variables: {
        outer: "[concat(variables('inner'), '-outer')]",
        inner: "[substring(parameters('s'), 2)]",
      },
    });

    expect(secureValues).toEqual(
      expect.arrayContaining([
        SECRET.slice(2),
        `${SECRET.slice(2)}-outer`,
        `${SECRET.slice(2)}-outer`.toUpperCase(),
      ]),
    );
  });

  it('treats a parameter whose default is computed from a secret as secret', () => {
    const { secureValues } = evaluateX("[concat(parameters('derived'), '!')]", {
      parameters: {
        s: { type: 'securestring' },
        derived: { type: 'string', defaultValue: "[base64(parameters('s'))]" },
      },
    });

    const encoded = Buffer.from(SECRET).toString('base64');
    expect(secureValues).toEqual(expect.arrayContaining([encoded, `${encoded}!`]));
  });

  it('keeps the non-secret parts of an object variable out, and the secret parts in', () => {
    const { value, secureValues } = evaluateX(
      ["[toUpper(variables('login').user)]", "[toUpper(variables('login').password)]"],
      { variables: { login: { user: 'administrator', password: "[concat('pw-', parameters('s'))]" } } },
    );

    expect(value.x).toEqual(['ADMINISTRATOR', `PW-${SECRET.toUpperCase()}`]);
    expect(secureValues).toEqual(expect.arrayContaining([`pw-${SECRET}`, `PW-${SECRET.toUpperCase()}`]));
    expect(secureValues).not.toContain('ADMINISTRATOR');
  });

  it('collects the strings and numbers of a secureObject, not its booleans', () => {
    const { value, secureValues } = evaluateX(
      "[format('{0}:{1}', parameters('o').pin, parameters('o').on)]",
      {
        parameters: { o: { type: 'secureObject' } },
        values: { o: '{"pin": 48151623, "on": true, "key": "object-secret"}' },
      },
    );

    expect(value.x).toBe('48151623:true');
    expect(secureValues).toEqual(expect.arrayContaining(['48151623', 'object-secret', '48151623:true']));
    expect(secureValues).not.toContain('true');
  });

  it('treats a value picked with a secret index as secret', () => {
    const { secureValues } = evaluateX("[variables('byName')[parameters('s')]]", {
      variables: { byName: { [SECRET]: 'picked-by-secret', other: 'not-picked' } },
    });

    expect(secureValues).toContain('picked-by-secret');
    expect(secureValues).not.toContain('not-picked');
  });

  it('registers nothing for expressions that do not use a secret', () => {
    const { secureValues } = evaluateX(["[toUpper(parameters('name'))]", "[concat('Sw0rd', '#fish')]"]);

    expect(secureValues).toEqual([SECRET]);
  });

  it('leaves out derived values too short to mask', () => {
    const { value, secureValues } = evaluateX("[substring(parameters('s'), 0, 3)]");

    expect(value.x).toBe('Sw0');
    expect(secureValues).toEqual([SECRET]);
  });

  it('follows a secret through 40 levels of nesting', () => {
    let expression = "parameters('s')";
    for (let i = 0; i < 40; i++)
      expression = i % 2 ? `concat('<', ${expression}, '>')` : `replace(${expression}, '#', '!#')`;

    const { value, secureValues } = evaluateX(`[${expression}]`);

    expect(secureValues).toContain(value.x);
    expect(secureValues).toHaveLength(41);
  });

  it('collects every value computed from the secret, whatever the nesting and the secret (property)', () => {
    fc.assert(
      fc.property(treeArbitrary(), secretArbitrary(), (tree, secret) => {
        const { value, secureValues } = evaluateX(`[${render(tree)}]`, { values: { s: secret } });

        const masker = new SecretMasker(secureValues);
        for (const sub of [tree, ...subtrees(tree)].filter(usesSecret)) {
          // Evaluated on its own: the value this step of the expression had.
          const step = evaluateX(`[${render(sub)}]`, { values: { s: secret } }).value.x as string;
          if (step.length >= MIN_SECRET_LENGTH) expect(secureValues).toContain(step);
          expect(masker.mask(`[${step}]`)).toBe(step.length >= MIN_SECRET_LENGTH ? '[***]' : `[${step}]`);
        }
        if (!usesSecret(tree)) expect(secureValues).toEqual([secret]);
        expect(typeof value.x).toBe('string');
      }),
      { numRuns: 150 },
    );
  });
});

describe('secure values too short to mask', () => {
  const doc = deployment(
    [resource(properties({ customize: [shellStep("[concat('login ', parameters('token'))]")] }))],
    { parameters: { token: { type: 'securestring' }, settings: { type: 'secureObject', defaultValue: {} } } },
  );

  function load(values: Record<string, string>) {
    return loadTemplateText(templateText(doc), 'template.json', {
      parameters: new Map(Object.entries(values)),
    });
  }

  it.each(['x', 'ab', 'a#c'])(
    'refuses a securestring of %j, naming the parameter but not the value',
    (token) => {
      let error: unknown;
      try {
        load({ token });
      } catch (caught) {
        error = caught;
      }

      expect(error).toBeInstanceOf(IsobuildError);
      const problems = (error as IsobuildError).problems.filter((p) => p.severity === 'error');
      expect(problems).toHaveLength(1);
      expect(problems[0]?.path).toBe('parameters.token');
      expect(problems[0]?.message).toContain(`shorter than ${MIN_SECRET_LENGTH} characters`);
      expect(problems[0]?.message).toContain('parameter "token"');
      expect(JSON.stringify(problems)).not.toMatch(new RegExp(`"${token}"|login ${token}`));
    },
  );

  it('accepts an empty securestring and one of the minimum length', () => {
    expect(load({ token: '' }).template.customize[0]).toMatchObject({ inline: ['login '] });
    expect(load({ token: 'abcd' }).template.secureValues).toContain('abcd');
  });

  it('accepts a short secureObject value with a warning that names its path, not its value', () => {
    const loaded = load({
      token: 'long-enough',
      settings: '{"user": "sa", "port": 22, "password": "p4ssw0rd!"}',
    });

    const warnings = loaded.warnings.filter((p) => p.path.startsWith('parameters.settings'));
    expect(warnings.map((p) => p.path)).toEqual(['parameters.settings.user', 'parameters.settings.port']);
    expect(warnings[0]?.message).toContain('too short to mask');
    expect(JSON.stringify(warnings)).not.toMatch(/"sa"|\b22\b/);
    expect(loaded.template.secureValues).toContain('p4ssw0rd!');
    expect(loaded.template.secureValues).not.toContain('sa');
  });
});

type Tree = { leaf: string; secret: boolean } | { fn: string; args: Tree[] };

function treeArbitrary(): fc.Arbitrary<Tree> {
  const leaf = fc.constantFrom<Tree>(
    { leaf: "parameters('s')", secret: true },
    { leaf: "parameters('name')", secret: false },
    { leaf: "'#lit'", secret: false },
  );
  const { tree } = fc.letrec<{ tree: Tree }>((tie) => ({
    tree: fc.oneof(
      { depthSize: 'medium', withCrossShrink: true },
      leaf,
      fc.array(tie('tree'), { minLength: 1, maxLength: 3 }).map((args) => ({ fn: 'concat', args })),
      fc.tuple(tie('tree'), tie('tree')).map((args) => ({ fn: 'format', args })),
      fc
        .constantFrom(
          'toUpper',
          'toLower',
          'trim',
          'base64',
          'uriComponent',
          'string',
          'replace',
          'substring',
        )
        .chain((fn) => tie('tree').map((arg) => ({ fn, args: [arg] }))),
    ),
  }));
  return tree;
}

function render(tree: Tree): string {
  if ('leaf' in tree) return tree.leaf;
  const args = tree.args.map(render);
  if (tree.fn === 'format') return `format('{1}/{0}', ${args.join(', ')})`;
  if (tree.fn === 'replace') return `replace(${args[0]}, '#', '%')`;
  if (tree.fn === 'substring') return `substring(concat(${args[0]}, '..'), 1)`;
  return `${tree.fn}(${args.join(', ')})`;
}

function subtrees(tree: Tree): Tree[] {
  return 'leaf' in tree ? [] : tree.args.flatMap((arg) => [arg, ...subtrees(arg)]);
}

function usesSecret(tree: Tree): boolean {
  return 'leaf' in tree ? tree.secret : tree.args.some(usesSecret);
}

/** Secrets long enough to mask, with characters that functions and encodings change. */
function secretArbitrary(): fc.Arbitrary<string> {
  const char = fc.constantFrom(...'abcXYZ09#"\\\' %&<>+/=é'.split(''));
  return fc.array(char, { minLength: MIN_SECRET_LENGTH + 2, maxLength: 16 }).map((chars) => chars.join(''));
}
