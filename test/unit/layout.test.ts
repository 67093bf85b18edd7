/**
 * The layout CONTRIBUTING.md describes holds: which folders may import which, and the run folder's
 * functions stay short enough to read. Parsed with the TypeScript compiler, not grepped.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');
const SOURCES = ['agent/src', 'proxy/src'].flatMap((dir) => listTs(join(ROOT, dir)));

function listTs(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return listTs(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

function parse(file: string): ts.SourceFile {
  return ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
}

/** Repository-relative paths of the project files a file imports (static and dynamic imports, re-exports). */
function importsOf(file: string): string[] {
  const found: string[] = [];
  const visit = (node: ts.Node): void => {
    const specifier =
      (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier
        ? node.moduleSpecifier
        : ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword
          ? node.arguments[0]
          : undefined;
    if (specifier && ts.isStringLiteral(specifier) && specifier.text.startsWith('.'))
      found.push(relative(ROOT, resolve(dirname(file), specifier.text.replace(/\.js$/, '.ts'))));
    ts.forEachChild(node, visit);
  };
  visit(parse(file));
  return found;
}

const GRAPH = new Map(SOURCES.map((file) => [relative(ROOT, file), importsOf(file)]));

function violations(from: (file: string) => boolean, to: (imported: string) => boolean): string[] {
  return [...GRAPH].flatMap(([file, imports]) =>
    from(file) ? imports.filter(to).map((imported) => `${file} → ${imported}`) : [],
  );
}

const under = (folder: string) => (path: string) => path.startsWith(`${folder}/`);

describe('layout', () => {
  it('proxy/ imports nothing from agent/ (it ships alone)', () => {
    expect(violations(under('proxy'), under('agent'))).toEqual([]);
  });

  it('render/ and packer/ do not import each other (both use packer-contract.ts)', () => {
    expect([
      ...violations(under('agent/src/render'), under('agent/src/packer')),
      ...violations(under('agent/src/packer'), under('agent/src/render')),
    ]).toEqual([]);
  });

  it('commands do not import each other', () => {
    const command = under('agent/src/cli/commands');
    expect(violations(command, command)).toEqual([]);
  });

  it('only the CLI imports the CLI, and nothing imports a command', () => {
    expect(violations((f) => !under('agent/src/cli')(f), under('agent/src/cli'))).toEqual([]);
  });

  it('a run does not reach into the CLI or the doctor; the doctor does not reach into a run', () => {
    expect([
      ...violations(under('agent/src/run'), (p) => under('agent/src/cli')(p) || under('agent/src/doctor')(p)),
      ...violations(under('agent/src/doctor'), under('agent/src/run')),
    ]).toEqual([]);
  });

  it('every import resolves to a source file (no imports of deleted modules)', () => {
    const known = new Set(GRAPH.keys());
    expect(
      [...GRAPH].flatMap(([file, imports]) =>
        imports.filter((i) => !known.has(i)).map((i) => `${file} → ${i}`),
      ),
    ).toEqual([]);
  });

  it('no function in agent/src/run is over 80 lines, and runBuild is under 100', () => {
    const long: string[] = [];
    let runBuildLines = 0;
    for (const file of SOURCES.filter((f) => under('agent/src/run')(relative(ROOT, f)))) {
      const source = parse(file);
      const visit = (node: ts.Node): void => {
        if (ts.isFunctionLike(node) && 'body' in node && node.body) {
          const lines =
            source.getLineAndCharacterOfPosition(node.getEnd()).line -
            source.getLineAndCharacterOfPosition(node.getStart()).line +
            1;
          const name = node.name && ts.isIdentifier(node.name) ? node.name.text : '(anonymous)';
          if (lines > 80) long.push(`${relative(ROOT, file)} ${name}: ${lines} lines`);
          if (name === 'runBuild') runBuildLines = lines;
        }
        ts.forEachChild(node, visit);
      };
      visit(source);
    }
    expect(long).toEqual([]);
    expect(runBuildLines).toBeGreaterThan(0);
    expect(runBuildLines).toBeLessThan(100);
  });

  it('only settings/process-environment.ts reads process.env in the agent', () => {
    const readers = SOURCES.filter((file) => under('agent/src')(relative(ROOT, file)))
      .filter((file) => /\bprocess\.env\b/.test(stripComments(readFileSync(file, 'utf8'))))
      .map((file) => relative(ROOT, file));
    // azurite-child.ts is a separate program (the embedded Azurite's process) that reads its own environment.
    expect(readers.sort()).toEqual([
      'agent/src/logstore/azurite-child.ts',
      'agent/src/settings/process-environment.ts',
    ]);
  });
});

function stripComments(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:])\/\/.*$/gm, '$1');
}
