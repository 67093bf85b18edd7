/**
 * The pieces of a staged Windows File step (issue 16): the PowerShell the step runs, the HCL literal that
 * keeps a secret in the destination a Packer variable, and the upload's progress lines.
 */
import { describe, expect, it } from 'vitest';
import { hclPowerShellLiteral } from '../../agent/src/render/hcl.js';
import { stagedFileScript } from '../../agent/src/render/staged-file.js';
import { progressReporter, removalScript } from '../../agent/src/run/phases/stage-files.js';

const FILE = {
  stagedPath: 'C:\\Windows\\Temp\\isobuild-run-1\\customize-02',
  destination: "C:\\Program Files\\O'Brien ‘tools’\\agent.msi",
  sha256: 'AB'.repeat(32),
  label: 'File "agent\'s installer"',
};

describe('stagedFileScript', () => {
  const script = stagedFileScript(FILE);

  it('quotes every value as a PowerShell literal, doubling each kind of single quote', () => {
    expect(script).toContain("$destination = 'C:\\Program Files\\O''Brien ‘‘tools’’\\agent.msi'");
    expect(script).toContain(`$step = 'File "agent''s installer"'`);
    expect(script).toContain(`$expected = '${'ab'.repeat(32)}'`); // compared with a lower-case hash
    expect(script).toContain("$staged = 'C:\\Windows\\Temp\\isobuild-run-1\\customize-02'");
  });

  it('takes the destination literal it is given (render keeps secrets in variables that way)', () => {
    const lines = stagedFileScript(FILE, { destinationLiteral: 'PLACEHOLDER' });
    expect(lines).toContain('$destination = PLACEHOLDER');
    expect(lines.join('\n')).not.toContain("O''Brien");
  });

  it('has no "$name:" in an expandable string (a PowerShell parse error that would break every step)', () => {
    for (const line of script)
      for (const [, text] of line.matchAll(/"((?:[^"`]|`.)*)"/g))
        expect(text, line).not.toMatch(/\$\w+:(?![\w?{])/);
  });

  it('hashes with SHA256Cng, copies (so the file takes its directory’s permissions) and removes the staged copy', () => {
    const text = script.join('\n');
    expect(text).toContain('[Security.Cryptography.SHA256Cng]::new().ComputeHash($stream)');
    expect(text).not.toContain('Get-FileHash'); // SHA256Managed: refused on FIPS-enforcing images
    expect(text).toContain('[IO.File]::Copy($staged, $destination, $true)');
    expect(text).not.toContain('Move-Item');
    expect(text).toContain('Remove-Item -LiteralPath $staged -Force');
    expect(text).toMatch(/Test-Path -LiteralPath \$destination -PathType Container\) \{ .*is a directory/);
  });

  it('fails the step by name, exit 1, on a missing or changed staged copy', () => {
    const failures = script.filter((line) => line.includes('exit 1'));
    expect(failures).toHaveLength(3);
    for (const line of failures) expect(line).toContain('[Console]::Error.WriteLine("isobuild: $($step): ');
  });
});

describe('hclPowerShellLiteral', () => {
  const secrets = [{ value: "s3cr'et", variable: 'secure_parameter_0' }];

  it('doubles quotes in text and leaves a secret to Packer, quoted there', () => {
    const literal = hclPowerShellLiteral("C:\\it's\\s3cr'et\\x", secrets);
    expect(literal).toBe(
      `'C:\\\\it''s\\\\\${regex_replace(var.secure_parameter_0, "['\\u2018\\u2019\\u201A\\u201B]", "$0$0")}\\\\x'`,
    );
    expect(literal).not.toContain('s3cr');
  });

  it('escapes what HCL templates would read: ${ and %{ sequences, quotes, backslashes', () => {
    expect(hclPowerShellLiteral('a${b}%{c}"d')).toBe(`'a$\${b}%%{c}\\"d'`);
  });
});

describe('progressReporter', () => {
  const MB = 1024 ** 2;
  const at = (elapsedMs: number, bytesDone: number) => ({
    elapsedMs,
    bytesDone,
    totalBytes: 100 * MB,
    bytesPerSecond: bytesDone / (elapsedMs / 1000),
  });

  it('says nothing for a few seconds, then bytes, rate and time left every 5 s, and nothing at the end', () => {
    const lines: string[] = [];
    const report = progressReporter((line) => lines.push(line), 'File "big"', 100 * MB);
    report(at(1_000, 10 * MB));
    report(at(2_900, 29 * MB));
    expect(lines).toEqual([]);
    report(at(3_100, 31 * MB));
    expect(lines).toEqual(['upload File "big": 31.0 of 100.0 MB, 10.0 MB/s, about 6.9s left']);
    report(at(7_000, 70 * MB)); // within 5 s of the last line
    expect(lines).toHaveLength(1);
    report(at(8_200, 82 * MB));
    expect(lines[1]).toBe('upload File "big": 82.0 of 100.0 MB, 10.0 MB/s, about 1.8s left');
    report(at(20_000, 100 * MB)); // done: the final line is the caller's
    expect(lines).toHaveLength(2);
  });
});

describe('removalScript', () => {
  it('removes the matching directories by literal path and fails if one is left', () => {
    const script = removalScript('C:\\Windows\\Temp\\isobuild-*');
    expect(script).toContain(
      "Get-ChildItem -Path 'C:\\Windows\\Temp\\isobuild-*' -Directory -ErrorAction SilentlyContinue | ForEach-Object { Remove-Item -LiteralPath $_.FullName -Recurse -Force -ErrorAction Continue }",
    );
    expect(script).toMatch(/if \(\$left\.Count -gt 0\) \{ .*is still there"\); exit 1 \}/);
  });
});
