/** The built CLI as users run it: help everywhere, documented exit codes, no stack traces. */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const CLI = resolve('dist/agent/src/cli/main.js');
const STACK = /\n\s+at .+:\d+:\d+/;

async function run(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)('node', [CLI, ...args], { encoding: 'utf8' });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('isobuild CLI', () => {
  it('lists its commands', async () => {
    const { code, stdout } = await run('--help');

    expect(code).toBe(0);
    expect(stdout).toMatch(/validate\s+check an AIB image template/);
    expect(stdout).toMatch(/render\s+download artifacts and write Packer HCL/);
    expect(stdout).toContain('Exit codes');
  });

  it.each(['validate', 'render'])('has --help for %s', async (command) => {
    const long = await run(command, '--help');
    const short = await run(command, '-h');
    const viaHelp = await run('help', command);

    expect(long.code).toBe(0);
    expect(long.stdout).toContain(`Usage: isobuild ${command}`);
    expect(short.stdout).toBe(long.stdout);
    expect(viaHelp.stdout).toBe(long.stdout);
  });

  it.each([
    [[], 'Usage: isobuild'],
    [['frobnicate'], 'unknown command "frobnicate"'],
    [['validate'], 'validate needs a template file'],
    [['validate', 'a.json', 'b.json'], 'takes one template file'],
    [['validate', '--bogus', 'x.json'], "Unknown option '--bogus'"],
    [['validate', 'no-such-file.json'], 'no such file'],
    [['render', 'images/linux-baseline/template.json'], 'render needs --out DIR'],
    [['validate', 'images/linux-baseline/template.json', '--os', 'beos'], 'expected linux or windows'],
    [
      ['validate', 'images/linux-baseline/template.json', '--api-version', '2099-01-01'],
      'is not an imageTemplates API version',
    ],
    [['validate', 'images/linux-baseline/template.json', '--param', 'novalue'], 'expected NAME=VALUE'],
  ])('exits 2 with a clear message for %j', async (args, message) => {
    const { code, stdout, stderr } = await run(...args);

    expect(code).toBe(2);
    expect(stdout + stderr).toContain(message);
    expect(stderr).not.toMatch(STACK);
  });

  it('summarises a valid template', async () => {
    const { code, stdout } = await run('validate', 'images/linux-baseline/template.json');

    expect(code).toBe(0);
    expect(stdout).toMatch(/^Source\s+PlatformImage Canonical:ubuntu-24_04-lts:server:latest$/m);
    expect(stdout).toMatch(/^Network\s+direct/m);
    expect(stdout).toMatch(/^Customize\s+1\. Shell/m);
  });

  it('prints machine-readable results with --json, for success and failure', async () => {
    const ok = await run('validate', 'images/windows-baseline/template.json', '--json');
    const bad = await run(
      'validate',
      'test/fixtures/aib-corpus/4_Creating_a_Custom_Linux_Image_to_VHD__helloImageTemplateVHD.json',
      '--json',
    );

    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ ok: true, summary: { os: 'windows', topology: 'direct' } });
    expect(bad.code).toBe(2);
    const body = JSON.parse(bad.stdout) as {
      ok: boolean;
      error: { code: string };
      problems: { path: string; line: number }[];
    };
    expect(body).toMatchObject({ ok: false, error: { code: 'templateInvalid' } });
    expect(body.problems.find((p) => p.path === 'location')?.line).toBe(4);
  });

  it('never prints securestring parameter values, in results or in errors', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'isobuild-cli-'));
    const secret = 'S3cret/Value!';
    const resource = JSON.parse(await readFile('images/linux-baseline/template.json', 'utf8')) as Record<
      string,
      unknown
    >;
    const deployment = {
      $schema: 'https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#',
      contentVersion: '1.0.0.0',
      parameters: { token: { type: 'securestring' } },
      resources: [{ ...resource, name: "[concat('img-', parameters('token'))]" }],
    };
    await writeFile(join(dir, 'secure.json'), JSON.stringify(deployment));

    const result = await run('validate', join(dir, 'secure.json'), '--param', `token=${secret}`, '--json');
    await rm(dir, { recursive: true, force: true });

    expect(result.code).toBe(2);
    expect(result.stderr).toContain('is not a valid template name');
    expect(result.stdout + result.stderr).not.toContain(secret);
    expect(result.stdout + result.stderr).not.toContain('S3cret');
  });

  it('prints its version', async () => {
    const { code, stdout } = await run('version');

    expect(code).toBe(0);
    expect(stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });
});
