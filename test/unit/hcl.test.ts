import { describe, expect, it } from 'vitest';
import { expr, hclString, writeHcl } from '../../agent/src/render/hcl.js';

describe('hclString', () => {
  it.each([
    ['plain', '"plain"'],
    ['say "hi"', '"say \\"hi\\""'],
    ['C:\\Windows', '"C:\\\\Windows"'],
    ['line1\nline2\ttab\r', '"line1\\nline2\\ttab\\r"'],
    ['echo ${HOME}', '"echo $${HOME}"'],
    ['%{ if x }', '"%%{ if x }"'],
    ['$${literal}', '"$$${literal}"'],
    ['{{ .Path }}', '"{{ .Path }}"'],
    ['bell\u0007', '"bell\\u0007"'],
    ['héllo 中 🎉', '"héllo 中 🎉"'],
    ['$ alone and % alone', '"$ alone and % alone"'],
  ])('escapes %j', (input, expected) => {
    expect(hclString(input)).toBe(expected);
  });

  it('replaces secret values with sensitive variable references', () => {
    const rendered = hclString('login --token s3cr3t-value --again s3cr3t-value', [
      { value: 's3cr3t-value', variable: 'secure_parameter_0' },
    ]);

    expect(rendered).toBe('"login --token ${var.secure_parameter_0} --again ${var.secure_parameter_0}"');
    expect(rendered).not.toContain('s3cr3t');
  });
});

describe('writeHcl', () => {
  it('aligns attributes and nests blocks', () => {
    const text = writeHcl([
      {
        type: 'source',
        labels: ['null', 'vm'],
        attributes: [
          ['communicator', 'none'],
          ['port', 22],
          ['host', expr('var.host')],
        ],
      },
      {
        type: 'build',
        attributes: [['sources', ['source.null.vm']]],
        blocks: [{ type: 'provisioner', labels: ['shell'], attributes: [['inline', ['a', 'b']]] }],
      },
    ]);

    expect(text).toBe(
      [
        'source "null" "vm" {',
        '  communicator = "none"',
        '  port         = 22',
        '  host         = var.host',
        '}',
        '',
        'build {',
        '  sources = [',
        '    "source.null.vm",',
        '  ]',
        '',
        '  provisioner "shell" {',
        '    inline = [',
        '      "a",',
        '      "b",',
        '    ]',
        '  }',
        '}',
        '',
      ].join('\n'),
    );
  });
});
