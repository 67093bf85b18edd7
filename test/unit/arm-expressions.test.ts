/**
 * The ARM expression subset: what each supported function returns, how literals, escapes, property and
 * index access behave, and that anything unsupported or malformed fails with a message naming it.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ExpressionError,
  SUPPORTED_FUNCTIONS,
  evaluateString,
  isExpression,
  isTainted,
  taintedLeaves,
  untainted,
  type ArmValue,
  type Evaluated,
  type ExpressionScope,
  type Taint,
} from '../../agent/src/template/arm-expressions.js';

const SUBSCRIPTION = '11111111-2222-3333-4444-555555555555';

const PARAMETERS: Record<string, ArmValue> = {
  name: 'web',
  count: 3,
  enabled: true,
  regions: ['westus2', 'eastus'],
  more: ['northeurope'],
  settings: { Size: 'Standard_D2s_v3', tags: { owner: 'ops' }, list: [10, 20] },
  empty: '',
};

const VARIABLES: Record<string, ArmValue> = {
  prefix: 'img',
};

function scope(overrides: Partial<ExpressionScope> = {}): ExpressionScope {
  return {
    parameter(name) {
      if (!(name in PARAMETERS)) throw new ExpressionError(`unknown parameter ${name}`);
      return untainted(PARAMETERS[name] ?? null);
    },
    variable(name) {
      if (!(name in VARIABLES)) throw new ExpressionError(`unknown variable ${name}`);
      return untainted(VARIABLES[name] ?? null);
    },
    subscriptionId: () => SUBSCRIPTION,
    resourceGroupName: () => 'images-rg',
    resourceGroupLocation: () => 'westus2',
    ...overrides,
  };
}

function evaluate(expression: string): ArmValue {
  return evaluateString(expression, scope()).value;
}

function errorOf(expression: string): ExpressionError {
  try {
    evaluate(expression);
  } catch (error) {
    expect(error).toBeInstanceOf(ExpressionError);
    return error as ExpressionError;
  }
  throw new Error(`expected ${expression} to fail`);
}

describe('isExpression', () => {
  it.each([
    ['[parameters(1)]', true],
    ["[concat('a')]", true],
    ['[[escaped]', false],
    ['plain', false],
    ['[not closed', false],
    ['not opened]', false],
    ['[', false],
    ['', false],
  ])('%j → %s', (value, expected) => {
    expect(isExpression(value)).toBe(expected);
  });
});

describe('evaluateString', () => {
  describe('literals and escapes', () => {
    it.each([
      ['a plain string', 'hello world', 'hello world'],
      ['an empty string', '', ''],
      ['a string with brackets inside', 'a [b] c', 'a [b] c'],
      ['a string that only starts with [', "[concat('a'", "[concat('a'"],
      ['a string that only ends with ]', "concat('a')]", "concat('a')]"],
      ['text after the closing ]', "[concat('a')] x", "[concat('a')] x"],
    ])('returns %s unchanged', (_what, input, expected) => {
      const value = evaluate(input);

      expect(value).toBe(expected);
    });

    it.each([
      ['[[escaped]', '[escaped]'],
      ["[[concat('a', 'b')]", "[concat('a', 'b')]"],
      ['[[]', '[]'],
    ])('unescapes the literal %j by dropping one [', (input, expected) => {
      const value = evaluate(input);

      expect(value).toBe(expected);
    });

    it.each([
      ["['text']", 'text'],
      ["['it''s']", "it's"],
      ["['']", ''],
      ["['a, b (c)']", 'a, b (c)'],
      ['[42]', 42],
      ['[-7]', -7],
    ])('evaluates the literal expression %s', (input, expected) => {
      const value = evaluate(input);

      expect(value).toEqual(expected);
    });

    it('tolerates spaces and tabs between tokens', () => {
      const value = evaluate("[ concat (\t'a' ,  'b' ) ]");

      expect(value).toBe('ab');
    });
  });

  describe('parameters and variables', () => {
    it.each([
      ["[parameters('name')]", 'web'],
      ["[parameters('count')]", 3],
      ["[parameters('enabled')]", true],
      ["[parameters('regions')]", ['westus2', 'eastus']],
      ["[variables('prefix')]", 'img'],
    ])('%s returns the value with its type', (input, expected) => {
      const value = evaluate(input);

      expect(value).toEqual(expected);
    });

    it('passes the parameter name to the scope exactly as written', () => {
      const asked: string[] = [];
      const recording = scope({
        parameter: (name) => {
          asked.push(name);
          return untainted('v');
        },
      });

      evaluateString("[parameters('ImageName')]", recording);

      expect(asked).toEqual(['ImageName']);
    });

    it('propagates the scope’s error for an unknown parameter', () => {
      const error = errorOf("[parameters('missing')]");

      expect(error.message).toContain('unknown parameter missing');
    });
  });

  describe('concat', () => {
    it.each([
      ["[concat('a', '-', 'b')]", 'a-b'],
      ["[concat(variables('prefix'), '-', parameters('name'))]", 'img-web'],
      ["[concat('n', parameters('count'))]", 'n3'],
      ["[concat('x')]", 'x'],
      ["[concat(concat('a', 'b'), concat('c'))]", 'abc'],
    ])('joins strings: %s → %j', (input, expected) => {
      const value = evaluate(input);

      expect(value).toBe(expected);
    });

    it('joins arrays into one array', () => {
      const value = evaluate("[concat(parameters('regions'), parameters('more'))]");

      expect(value).toEqual(['westus2', 'eastus', 'northeurope']);
    });

    it('does not flatten nested arrays beyond one level', () => {
      const nested = scope({ parameter: () => untainted([['a'], 'b']) });

      const { value } = evaluateString("[concat(parameters('x'), parameters('x'))]", nested);

      expect(value).toEqual([['a'], 'b', ['a'], 'b']);
    });

    it.each([
      ["[concat('a', parameters('regions'))]", 'array'],
      ["[concat('a', parameters('settings'))]", 'object'],
    ])('refuses to mix strings with an %s (%s)', (input, kind) => {
      const error = errorOf(input);

      expect(error.message).toContain(`concat() cannot join a ${kind}`);
    });
  });

  describe('format', () => {
    it.each([
      ["[format('{0}-{1}', 'a', 'b')]", 'a-b'],
      ["[format('{1}{0}{1}', 'a', 'b')]", 'bab'],
      ["[format('{0} of {1}', parameters('count'), 5)]", '3 of 5'],
      ["[format('{{0}} is {0}', 'x')]", '{0} is x'],
      ["[format('{{literal}}')]", '{literal}'],
      ["[format('no placeholders')]", 'no placeholders'],
      ["[format('{0}', parameters('enabled'))]", 'true'],
    ])('%s → %j', (input, expected) => {
      const value = evaluate(input);

      expect(value).toBe(expected);
    });

    it('fails when a placeholder has no argument', () => {
      const error = errorOf("[format('{0}-{2}', 'a', 'b')]");

      expect(error.message).toContain('no argument for {2}');
    });

    it('fails on format specifiers it cannot honour', () => {
      const error = errorOf("[format('{0:N2}', 1)]");

      expect(error.message).toContain('{0:N2}');
    });

    it('refuses to insert an array', () => {
      const error = errorOf("[format('{0}', parameters('regions'))]");

      expect(error.message).toContain('cannot insert');
    });
  });

  describe('string functions', () => {
    it.each([
      ["[toLower('MiXeD Case')]", 'mixed case'],
      ["[toUpper('MiXeD Case')]", 'MIXED CASE'],
      ["[toLower(parameters('settings').Size)]", 'standard_d2s_v3'],
      ["[replace('a-b-c', '-', '_')]", 'a_b_c'],
      ["[replace('aaa', 'a', 'bb')]", 'bbbbbb'],
      ["[replace('abc', 'x', 'y')]", 'abc'],
      ["[replace('a.b', '.', '')]", 'ab'],
    ])('%s → %j', (input, expected) => {
      const value = evaluate(input);

      expect(value).toBe(expected);
    });

    it.each(["[toLower(parameters('count'))]", "[replace(parameters('regions'), 'a', 'b')]"])(
      '%s fails: the argument is not a string',
      (input) => {
        const error = errorOf(input);

        expect(error.message).toMatch(/expects a string as argument 1/);
      },
    );
  });

  describe('resourceId', () => {
    const group = `/subscriptions/${SUBSCRIPTION}/resourceGroups/images-rg`;

    it.each([
      [
        'type and name (subscription and group from the scope)',
        "[resourceId('Microsoft.Compute/images', 'out')]",
        `${group}/providers/Microsoft.Compute/images/out`,
      ],
      [
        'a resource group before the type',
        "[resourceId('other-rg', 'Microsoft.Compute/images', 'out')]",
        `/subscriptions/${SUBSCRIPTION}/resourceGroups/other-rg/providers/Microsoft.Compute/images/out`,
      ],
      [
        'a subscription and a resource group before the type',
        "[resourceId('99999999-0000-0000-0000-000000000000', 'other-rg', 'Microsoft.Compute/images', 'out')]",
        '/subscriptions/99999999-0000-0000-0000-000000000000/resourceGroups/other-rg/providers/Microsoft.Compute/images/out',
      ],
      [
        'a child type with one name per segment',
        "[resourceId('Microsoft.Compute/galleries/images', 'gallery', 'definition')]",
        `${group}/providers/Microsoft.Compute/galleries/gallery/images/definition`,
      ],
      [
        'a grandchild type',
        "[resourceId('Microsoft.Compute/galleries/images/versions', 'g', 'd', '1.0.0')]",
        `${group}/providers/Microsoft.Compute/galleries/g/images/d/versions/1.0.0`,
      ],
      [
        'a child type in another group and subscription',
        "[resourceId('99999999-0000-0000-0000-000000000000', 'net-rg', 'Microsoft.Network/virtualNetworks/subnets', 'vnet', 'snet')]",
        '/subscriptions/99999999-0000-0000-0000-000000000000/resourceGroups/net-rg/providers/Microsoft.Network/virtualNetworks/vnet/subnets/snet',
      ],
      [
        'names built from expressions',
        "[resourceId('Microsoft.ManagedIdentity/userAssignedIdentities', concat(variables('prefix'), '-id'))]",
        `${group}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/img-id`,
      ],
    ])('builds an ID from %s', (_what, input, expected) => {
      const value = evaluate(input);

      expect(value).toBe(expected);
    });

    it.each([
      ["[resourceId('Microsoft.Compute/images', 'a', 'b')]", 'needs 1 name(s) after the type, got 2'],
      ["[resourceId('Microsoft.Compute/galleries/images', 'g')]", 'needs 2 name(s) after the type, got 1'],
      ["[resourceId('just-a-name')]", 'needs a resource type'],
      ["[resourceId('a', 'b', 'c', 'Microsoft.Compute/images', 'x')]", 'needs a resource type'],
    ])('%s fails: %s', (input, message) => {
      const error = errorOf(input);

      expect(error.message).toContain(message);
    });

    it('fails when an argument is not a string', () => {
      const error = errorOf("[resourceId('Microsoft.Compute/images', parameters('count'))]");

      expect(error.message).toContain('resourceId() expects a string');
    });
  });

  describe('subscription() and resourceGroup()', () => {
    it.each([
      ['[subscription().subscriptionId]', SUBSCRIPTION],
      ['[subscription().id]', `/subscriptions/${SUBSCRIPTION}`],
      ['[resourceGroup().name]', 'images-rg'],
      ['[resourceGroup().location]', 'westus2'],
      ['[resourceGroup().id]', `/subscriptions/${SUBSCRIPTION}/resourceGroups/images-rg`],
    ])('%s → %j', (input, expected) => {
      const value = evaluate(input);

      expect(value).toBe(expected);
    });

    it('propagates a scope that cannot tell the subscription', () => {
      const noSubscription = scope({
        subscriptionId: () => {
          throw new ExpressionError('pass --subscription-id');
        },
      });

      const run = (): ArmValue => evaluateString('[subscription().subscriptionId]', noSubscription).value;

      expect(run).toThrow('pass --subscription-id');
    });
  });

  describe('property and index access', () => {
    it.each([
      ["[parameters('settings').Size]", 'Standard_D2s_v3'],
      ["[parameters('settings').size]", 'Standard_D2s_v3'],
      ["[parameters('settings').tags.owner]", 'ops'],
      ["[parameters('settings')['tags']['owner']]", 'ops'],
      ["[parameters('settings')['SIZE']]", 'Standard_D2s_v3'],
      ["[parameters('regions')[0]]", 'westus2'],
      ["[parameters('regions')[1]]", 'eastus'],
      ["[parameters('settings').list[1]]", 20],
      ["[parameters('settings')[toLower('TAGS')].owner]", 'ops'],
    ])('%s → %j', (input, expected) => {
      const value = evaluate(input);

      expect(value).toBe(expected);
    });

    it.each([
      ["[parameters('settings').missing]", 'no property "missing"'],
      ["[parameters('settings')['missing']]", 'no property "missing"'],
      ["[parameters('regions')[2]]", 'index 2 is outside the array'],
      ["[parameters('regions')[-1]]", 'index -1 is outside the array'],
      ["[parameters('regions')[parameters('count')]]", 'index 3 is outside the array'],
      ["[parameters('name').length]", 'cannot read .length of a string'],
      ["[parameters('regions').first]", 'cannot read .first of a array'],
      ["[parameters('regions')['a']]", 'cannot index a array with a string'],
      ["[parameters('settings')[0]]", 'cannot index a object with a number'],
    ])('%s fails: %s', (input, message) => {
      const error = errorOf(input);

      expect(error.message).toContain(message);
    });
  });

  describe('function names', () => {
    it.each([
      ["[CONCAT('a', 'b')]", 'ab'],
      ["[Concat('a', 'b')]", 'ab'],
      ["[tolower('AB')]", 'ab'],
      ["[TOLOWER('AB')]", 'ab'],
      ["[ToUpper('ab')]", 'AB'],
      ["[PARAMETERS('name')]", 'web'],
      ["[Variables('prefix')]", 'img'],
      ["[FORMAT('{0}', 'x')]", 'x'],
      ["[REPLACE('a', 'a', 'b')]", 'b'],
      ['[RESOURCEGROUP().NAME]', 'images-rg'],
      ['[Subscription().SubscriptionId]', SUBSCRIPTION],
      [
        "[resourceid('Microsoft.Compute/images', 'x')]",
        `/subscriptions/${SUBSCRIPTION}/resourceGroups/images-rg/providers/Microsoft.Compute/images/x`,
      ],
    ])('are case-insensitive: %s', (input, expected) => {
      const value = evaluate(input);

      expect(value).toBe(expected);
    });

    it.each([
      ['[uniqueString(resourceGroup().id)]', 'uniqueString'],
      ["[reference('identity').principalId]", 'reference'],
      ['[utcNow()]', 'utcNow'],
      ["[concat('a', guid('x'))]", 'guid'],
      ["[toLower(last('abc'))]", 'last'],
      ["[if(parameters('enabled'), 'a', 'b')]", 'if'],
    ])('an unsupported function is named in the error: %s', (input, name) => {
      const error = errorOf(input);

      expect(error.message).toContain(`the ARM function ${name}() is not supported`);
      expect(error.message).toContain('supported: ');
    });

    it('lists every supported function in that error', () => {
      const error = errorOf("[uniqueString('x')]");

      for (const name of SUPPORTED_FUNCTIONS) expect(error.message).toContain(name);
    });
  });

  describe('parse errors', () => {
    it.each([
      ['an empty expression', '[]', 'expected a function or property name'],
      ['a bare name', '[foo]', '"foo" must be followed by ('],
      ['a bare boolean', "[concat('a', true)]", '"true" must be followed by ('],
      ['an unclosed call', "[concat('a', 'b']", 'expected , or ) in the arguments of concat()'],
      ['an unclosed string', "[concat('a)]", 'never closed'],
      ['a double-quoted string', '[concat("a")]', 'expected a function or property name'],
      ['trailing tokens', "[concat('a') concat('b')]", 'unexpected "concat(\'b\'"'],
      ['an unclosed index', "[parameters('regions')[0]", 'expected ]'],
      ['a missing property name', "[parameters('settings').]", 'expected a function or property name'],
      ['a missing argument', "[concat('a',)]", 'expected a function or property name'],
    ])('%s: %s', (_what, input, message) => {
      const error = errorOf(input);

      expect(error.message).toContain('cannot parse the expression');
      expect(error.message).toContain(message);
    });

    it('quotes the expression text in a parse error', () => {
      const error = errorOf('[foo bar]');

      expect(error.message).toContain('[foo bar]');
    });
  });
});

describe('new string functions', () => {
  it.each([
    ["[substring('abcdef', 1, 3)]", 'bcd'],
    ["[substring('abcdef', 2)]", 'cdef'],
    ["[substring('abc', 3, 0)]", ''],
    ["[trim('  a b  ')]", 'a b'],
    ["[base64('one, two, three')]", 'b25lLCB0d28sIHRocmVl'],
    ["[base64ToString('b25lLCB0d28sIHRocmVl')]", 'one, two, three'],
    ["[uriComponent('a b&c')]", 'a%20b%26c'],
    ["[uriComponentToString('a%20b%26c')]", 'a b&c'],
    ["[string(parameters('settings').tags)]", '{"owner":"ops"}'],
    ["[string(parameters('count'))]", '3'],
    ["[string('as is')]", 'as is'],
    ['[json(\'{"a": [1, "x"]}\').a[1]]', 'x'],
  ])('%s → %j', (input, expected) => {
    expect(evaluate(input)).toEqual(expected);
  });

  it.each([
    ["[substring('abc', 4)]", 'start index 4 is outside'],
    ["[substring('abc', 1, 5)]", 'length 5 runs past the end'],
    ["[substring('abc', 'x')]", 'expects an integer as argument 2'],
    ["[json('{not json')]", 'not valid JSON'],
    ["[uriComponentToString('%E0%A4%A')]", 'not URI-encoded'],
  ])('%s fails: %s', (input, message) => {
    expect(errorOf(input).message).toContain(message);
  });
});

describe('taint', () => {
  const SECRET = 'Sw0rd#fish';

  /** A scope where `s` and `key` are secure and `cfg` is an object with one secret property. */
  function taintScope(reported: Evaluated[] = []): ExpressionScope {
    return scope({
      parameter(name) {
        if (name === 's') return { value: SECRET, taint: true };
        if (name === 'key') return { value: 'Size', taint: true };
        if (!(name in PARAMETERS)) throw new ExpressionError(`unknown parameter ${name}`);
        return untainted(PARAMETERS[name] ?? null);
      },
      variable(name) {
        if (name === 'cfg')
          return {
            value: { user: 'admin', pass: SECRET, list: ['plain', SECRET] },
            taint: new Map<string, Taint>([
              ['user', false],
              ['pass', true],
              [
                'list',
                new Map([
                  [0, false],
                  [1, true],
                ]),
              ],
            ]),
          };
        return untainted(VARIABLES[name] ?? null);
      },
      tainted: (value) => reported.push(value),
    });
  }

  it.each([
    ["[replace(concat('x', parameters('s')), '#', '!')]", 'xSw0rd!fish'],
    ["[toUpper(replace(concat('x', parameters('s')), '#', '!'))]", 'XSW0RD!FISH'],
    ["[format('{0}-{1}', 'a', toLower(parameters('s')))]", 'a-sw0rd#fish'],
    ["[substring(parameters('s'), 1, 4)]", 'w0rd'],
    ["[base64(parameters('s'))]", Buffer.from(SECRET).toString('base64')],
    ["[uriComponent(trim(concat(' ', parameters('s'))))]", encodeURIComponent(SECRET)],
    ["[string(json(concat('{\"k\":\"', parameters('s'), '\"}')))]", `{"k":"${SECRET}"}`],
    ["[json(concat('{\"k\":\"', parameters('s'), '\"}')).k]", SECRET],
    ["[variables('cfg').pass]", SECRET],
    ["[variables('cfg').list[1]]", SECRET],
    ["[parameters('settings')[parameters('key')]]", 'Standard_D2s_v3'],
    ["[concat(variables('cfg').list, parameters('more'))[1]]", SECRET],
    ["[parameters(concat('na', substring(parameters('s'), 0, 0), 'me'))]", 'web'],
  ])('%s is tainted', (input, expected) => {
    const result = evaluateString(input, taintScope());

    expect(result.value).toEqual(expected);
    expect(isTainted(result.taint)).toBe(true);
    expect(taintedLeaves(result)).toContain(expected);
  });

  it.each([
    ["[concat('a', parameters('name'))]"],
    ["[variables('cfg').user]"],
    ["[variables('cfg').list[0]]"],
    ["[concat(variables('cfg').list, parameters('more'))[0]]"],
    ["[toUpper(variables('prefix'))]"],
    ["[parameters('settings')['Size']]"],
  ])('%s is not tainted, and not reported as a secret', (input) => {
    const reported: Evaluated[] = [];

    const result = evaluateString(input, taintScope(reported));

    expect(isTainted(result.taint)).toBe(false);
    expect(reported.flatMap(taintedLeaves)).not.toContain(result.value);
  });

  it('keeps the taint of each element when concat() joins arrays', () => {
    const result = evaluateString("[concat(variables('cfg').list, parameters('more'))]", taintScope());

    expect(taintedLeaves(result)).toEqual([SECRET]);
  });

  it('reports every intermediate value computed from a secret, not only the result', () => {
    const reported: Evaluated[] = [];

    evaluateString(
      "[concat('A=', toUpper(parameters('s')), ' B=', base64(parameters('s')))]",
      taintScope(reported),
    );

    expect(reported.map((r) => r.value)).toEqual([
      SECRET.toUpperCase(),
      Buffer.from(SECRET).toString('base64'),
      `A=${SECRET.toUpperCase()} B=${Buffer.from(SECRET).toString('base64')}`,
    ]);
  });

  it('tracks the taint through any nesting (property)', () => {
    fc.assert(
      fc.property(expressionArbitrary(), (tree) => {
        const reported: Evaluated[] = [];

        const result = evaluateString(`[${render(tree)}]`, taintScope(reported));

        expect(isTainted(result.taint)).toBe(usesSecret(tree));
        if (usesSecret(tree) && 'fn' in tree) expect(reported.at(-1)?.value).toEqual(result.value);
        // Every call with a secret below it was reported: one report per such call.
        expect(reported).toHaveLength(secretCalls(tree));
      }),
      { numRuns: 300 },
    );
  });
});

type Tree = { leaf: string; secret: boolean } | { fn: string; args: Tree[]; extra?: string };

/** String-valued expressions over the supported functions, with the secret somewhere or nowhere. */
function expressionArbitrary(): fc.Arbitrary<Tree> {
  const leaf = fc.constantFrom<Tree>(
    { leaf: "parameters('s')", secret: true },
    { leaf: "parameters('name')", secret: false },
    { leaf: "variables('prefix')", secret: false },
    { leaf: "'lit#x'", secret: false },
    { leaf: "variables('cfg').pass", secret: true },
    { leaf: "variables('cfg').user", secret: false },
  );
  const { tree } = fc.letrec<{ tree: Tree }>((tie) => ({
    tree: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      leaf,
      fc.array(tie('tree'), { minLength: 1, maxLength: 3 }).map((args) => ({ fn: 'concat', args })),
      fc
        .tuple(tie('tree'), tie('tree'))
        .map(([a, b]) => ({ fn: 'format', args: [a, b], extra: "'{0}.{1}'" })),
      fc
        .constantFrom('toUpper', 'toLower', 'trim', 'base64', 'uriComponent', 'string')
        .chain((fn) => tie('tree').map((arg) => ({ fn, args: [arg] }))),
      tie('tree').map((arg) => ({ fn: 'replace', args: [arg] })),
      tie('tree').map((arg) => ({ fn: 'substring', args: [arg] })),
    ),
  }));
  return tree;
}

function render(tree: Tree): string {
  if ('leaf' in tree) return tree.leaf;
  const args = tree.args.map(render);
  switch (tree.fn) {
    case 'format':
      return `format(${tree.extra}, ${args.join(', ')})`;
    case 'replace':
      return `replace(${args[0]}, '#', '!')`;
    case 'substring':
      return `substring(${args[0]}, 0)`;
    default:
      return `${tree.fn}(${args.join(', ')})`;
  }
}

function usesSecret(tree: Tree): boolean {
  return 'leaf' in tree ? tree.secret : tree.args.some(usesSecret);
}

function secretCalls(tree: Tree): number {
  if ('leaf' in tree) return 0;
  const below = tree.args.reduce((sum, arg) => sum + secretCalls(arg), 0);
  return below + (usesSecret(tree) ? 1 : 0);
}
