/**
 * readPackerLine on lines Packer 1.6.6 printed (`packer build -color=false`): a Linux build (the demo's
 * customization.log), a failing and a cancelled shell-local build, and Windows builds over WinRM against
 * the fake Windows VM (a PowerShell step with output and CLIXML stderr, one failing with exit 7, one
 * cancelled with SIGTERM).
 */
import { describe, expect, it } from 'vitest';
import { readPackerLine } from '../../agent/src/packer/packer-output.js';

describe('readPackerLine', () => {
  it.each([
    ['    null.build_vm: isobuild-step-start c00', 'c00'],
    ['    null.build_vm: isobuild-step-start c01', 'c01'],
    ['    null.build_vm: isobuild-step-start v00', 'v00'],
    ['    null.build_vm: isobuild-step-start deprovision', 'deprovision'],
    // A named build prefixes the source with the build's name (packer-notes §1.4).
    ['    feat.null.build_vm: isobuild-step-start c12', 'c12'],
  ])('reads the step marker %j as step %s', (line, tag) => {
    expect(readPackerLine(line)).toEqual({ kind: 'step', tag });
  });

  it.each([
    // The marker text in a step's own output, not on a line of its own, starts no step.
    '    null.build_vm: echo isobuild-step-start c00',
    '    null.build_vm: isobuild-step-start c00 and more',
    '==> null.build_vm: isobuild-step-start c00',
    'isobuild-step-start c00',
  ])('does not take %j for a step marker', (line) => {
    expect(readPackerLine(line).kind).not.toBe('step');
  });

  it.each([
    [
      "Build 'null.build_vm' errored after 8 seconds 513 milliseconds: Script exited with non-zero exit status: 7.Allowed exit codes are: [0]",
      'Script exited with non-zero exit status: 7.Allowed exit codes are: [0]',
    ],
    [
      "Build 'null.build_vm' errored after 34 milliseconds 16 microseconds: Script exited with non-zero exit status: 7.Allowed exit codes are: [0]",
      'Script exited with non-zero exit status: 7.Allowed exit codes are: [0]',
    ],
    // Older Packers say no "after …".
    ["Build 'null.build_vm' errored: Timeout waiting for SSH.", 'Timeout waiting for SSH.'],
    ["Build 'feat.null.vm' errored after 1 second 3 milliseconds: context canceled", 'context canceled'],
  ])('reads the build error in %j', (line, message) => {
    // The verdict also belongs in the failing step's tail, as it is.
    expect(readPackerLine(line)).toEqual({ kind: 'error', message, text: line });
  });

  it('leaves the tail text of an error line out when it is noise there', () => {
    const line = "Build 'null.build_vm' errored: Running local shell script failed";

    expect(readPackerLine(line)).toEqual({ kind: 'error', message: 'Running local shell script failed' });
  });

  it.each([
    '==> null.build_vm: Running local shell script: /work/main/.work/runs/demo-2026-12-02T01-19-39-402Z/tmp/packer-shell3657089546',
    '==> null.build_vm: Running local shell script: /tmp/capture-win-TbzRda/win-ok-fail/tmp/packer-shell1735515153',
    '',
    '   ',
  ])('takes %j for noise', (line) => {
    expect(readPackerLine(line)).toEqual({ kind: 'noise' });
  });

  it.each([
    // Linux: Packer's status lines, remote stdout (4 spaces) and remote stderr (==>).
    [
      '==> null.build_vm: Using ssh communicator to connect: 127.0.0.1',
      'Using ssh communicator to connect: 127.0.0.1',
    ],
    [
      '==> null.build_vm: Provisioning with shell script: ./artifacts/customize-00-ApplyBaseline.sh',
      'Provisioning with shell script: ./artifacts/customize-00-ApplyBaseline.sh',
    ],
    ['    null.build_vm: [baseline] apt-get update', '[baseline] apt-get update'],
    [
      "    null.build_vm:   Temporary failure resolving 'deb.debian.org'",
      "  Temporary failure resolving 'deb.debian.org'",
    ],
    [
      '==> null.build_vm: sysctl: permission denied on key "net.ipv4.tcp_syncookies"',
      'sysctl: permission denied on key "net.ipv4.tcp_syncookies"',
    ],
    // A blank remote line arrives as the bare prefix: an empty tail line, not noise.
    ['    null.build_vm:', ''],
    [
      '==> null.build_vm: Provisioning step had errors: Running the cleanup provisioner, if present...',
      'Provisioning step had errors: Running the cleanup provisioner, if present...',
    ],
    // Windows: WinRM, the powershell provisioner, CLIXML on stderr.
    ['    null.build_vm: WinRM connected.', 'WinRM connected.'],
    ['==> null.build_vm: Provisioning with Powershell...', 'Provisioning with Powershell...'],
    [
      '==> null.build_vm: Provisioning with powershell script: /tmp/capture-win-TbzRda/win-ok-fail/tmp/powershell-provisioner575004484',
      'Provisioning with powershell script: /tmp/capture-win-TbzRda/win-ok-fail/tmp/powershell-provisioner575004484',
    ],
    ['    null.build_vm: about to fail', 'about to fail'],
    ['==> null.build_vm: #< CLIXML', '#< CLIXML'],
    // Lines without a build prefix stay as they are.
    [
      '==> Wait completed after 8 seconds 513 milliseconds',
      '==> Wait completed after 8 seconds 513 milliseconds',
    ],
    [
      "==> Some builds didn't complete successfully and had errors:",
      "==> Some builds didn't complete successfully and had errors:",
    ],
    [
      '--> null.build_vm: Script exited with non-zero exit status: 7.Allowed exit codes are: [0]',
      '--> null.build_vm: Script exited with non-zero exit status: 7.Allowed exit codes are: [0]',
    ],
    // A cancelled build (SIGTERM): Packer's own lines, neither an error nor noise.
    ['Cancelling build after receiving terminated', 'Cancelling build after receiving terminated'],
    [
      "Build 'null.build_vm' finished after 6 seconds 998 milliseconds.",
      "Build 'null.build_vm' finished after 6 seconds 998 milliseconds.",
    ],
    [
      'Cleanly cancelled builds after being interrupted.',
      'Cleanly cancelled builds after being interrupted.',
    ],
  ])('reads %j as output %j', (line, text) => {
    expect(readPackerLine(line)).toEqual({ kind: 'output', text });
  });

  it('follows a failing Windows build: its step, its output, the error, and what the tail keeps', () => {
    const lines = [
      '==> null.build_vm: Running local shell script: /tmp/capture-win-TbzRda/win-ok-fail/tmp/packer-shell1735515153',
      '    null.build_vm: isobuild-step-start c01',
      '==> null.build_vm: Provisioning with Powershell...',
      '    null.build_vm: about to fail',
      "Build 'null.build_vm' errored after 8 seconds 513 milliseconds: Script exited with non-zero exit status: 7.Allowed exit codes are: [0]",
      '',
      '==> Builds finished but no artifacts were created.',
    ];

    const read = lines.map(readPackerLine);

    expect(read.filter((l) => l.kind === 'step')).toEqual([{ kind: 'step', tag: 'c01' }]);
    expect(read.flatMap((l) => (l.kind === 'error' ? [l.message] : []))).toEqual([
      'Script exited with non-zero exit status: 7.Allowed exit codes are: [0]',
    ]);
    expect(
      read.flatMap((l) =>
        (l.kind === 'output' || l.kind === 'error') && l.text !== undefined ? [l.text] : [],
      ),
    ).toEqual([
      'Provisioning with Powershell...',
      'about to fail',
      lines[4],
      '==> Builds finished but no artifacts were created.',
    ]);
  });
});
