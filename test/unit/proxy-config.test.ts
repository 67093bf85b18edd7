import { describe, expect, it } from 'vitest';
import { loadProxyConfig, ProxyConfigError, type ProxyConfig } from '../../proxy/src/config.js';

const TARGET = ['--target', '10.0.0.4'];

function load(argv: string[], env: NodeJS.ProcessEnv = {}): ProxyConfig {
  const config = loadProxyConfig(argv, env);
  if (config === 'help') throw new Error('unexpected help');
  return config;
}

/** The listed problems, or [] when the configuration loads. */
function problems(argv: string[], env: NodeJS.ProcessEnv = {}): string[] {
  try {
    loadProxyConfig(argv, env);
    return [];
  } catch (error) {
    if (!(error instanceof ProxyConfigError)) throw error;
    return error.message.split('\n');
  }
}

const PORT_OPTIONS = [
  ['--ssh-port', 'PROXY_SSH_PORT'],
  ['--winrm-port', 'PROXY_WINRM_PORT'],
  ['--target-ssh-port', 'PROXY_TARGET_SSH_PORT'],
  ['--target-winrm-port', 'PROXY_TARGET_WINRM_PORT'],
  ['--health-port', 'PROXY_HEALTH_PORT'],
] as const;
const NOT_DECIMAL_PORTS = [
  '0x10',
  '1e3',
  '0o17',
  '0b11',
  ' 22',
  '22 ',
  '022',
  '+22',
  '22.0',
  '2_2',
  'ssh',
  '65536',
];

describe('loadProxyConfig', () => {
  it('has the defaults of AIB proxy VM', () => {
    const config = load(TARGET);

    expect(config.routes).toEqual([
      { name: 'ssh', listenPort: 60001, targetPort: 22 },
      { name: 'winrm', listenPort: 60000, targetPort: 5986 },
    ]);
    expect(config).toMatchObject({ listenAddress: '0.0.0.0', allow: 'any', healthPort: 60080 });
  });

  describe.each(PORT_OPTIONS)('%s / %s', (flag, variable) => {
    it.each(NOT_DECIMAL_PORTS)('refuses %j as a flag and as a variable', (text) => {
      expect(problems([...TARGET, flag, text])).toEqual([
        expect.stringMatching(
          new RegExp(`^${flag} "${text.replace(/[+.]/g, '\\$&')}" is invalid: give a decimal port`),
        ),
      ]);
      expect(problems(TARGET, { [variable]: text })).toEqual([
        expect.stringContaining(`${variable} "${text}" is invalid`),
      ]);
    });

    it('refuses an empty value, given or set', () => {
      expect(problems([...TARGET, `${flag}=`])).toEqual([
        `${flag} is empty: leave it out for the default ${defaultOf(flag)}, or give a number.`,
      ]);
      expect(problems(TARGET, { [variable]: '' })).toEqual([expect.stringContaining(`${variable} is empty`)]);
    });

    it('takes a plain decimal port from either source, the flag first', () => {
      const port = (config: ProxyConfig): number => portOf(config, flag);

      expect(port(load([...TARGET, flag, '2222']))).toBe(2222);
      expect(port(load(TARGET, { [variable]: '2223' }))).toBe(2223);
      expect(port(load([...TARGET, flag, '2224'], { [variable]: 'nonsense' }))).toBe(2224);
    });
  });

  it.each(['--ssh-port', '--winrm-port', '--target-ssh-port', '--target-winrm-port'])(
    'refuses -1 for %s: only the health check can be turned off',
    (flag) => {
      expect(problems([...TARGET, flag, '-1'])).toEqual([expect.stringContaining(`${flag} "-1" is invalid`)]);
    },
  );

  it.each([['--health-port', '-1'], ['--health-port=-1']])(
    'turns the health check off with %s %s',
    (...flag) => {
      expect(load([...TARGET, ...flag.filter(Boolean)]).healthPort).toBe(-1);
    },
  );

  it('turns the health check off with PROXY_HEALTH_PORT=-1', () => {
    expect(load(TARGET, { PROXY_HEALTH_PORT: '-1' }).healthPort).toBe(-1);
  });

  it.each(['-2', '-01', '-1.0', '- 1'])('refuses %j as the health port', (text) => {
    expect(problems([...TARGET, `--health-port=${text}`])).toEqual([
      expect.stringContaining(`--health-port "${text}" is invalid`),
    ]);
  });

  it('lets a listening port be 0 (a free one) but not a target port', () => {
    expect(
      load([...TARGET, '--ssh-port', '0', '--winrm-port', '0', '--health-port', '0']).routes[0]?.listenPort,
    ).toBe(0);
    expect(problems([...TARGET, '--target-ssh-port', '0'])).toEqual([
      '--target-ssh-port "0" is invalid: give a decimal port from 1 to 65535.',
    ]);
  });

  it.each([
    ['--max-connections', '1e3'],
    ['--max-connections', '0'],
    ['--max-connections', '100001'],
    ['--connect-timeout', '99'],
    ['--connect-timeout', '10s'],
    ['--idle-timeout', '0x3e8'],
    ['--drain-timeout', '-1'],
    ['--drain-timeout', '1.5'],
  ])('refuses %s %j', (flag, text) => {
    expect(problems([...TARGET, `${flag}=${text}`])).toEqual([
      expect.stringContaining(`${flag} "${text}" is invalid`),
    ]);
  });

  describe('duplicate listening ports', () => {
    it.each([
      [['--ssh-port', '60000'], 'ssh (--ssh-port) and winrm (default) would both listen on port 60000'],
      [
        ['--winrm-port', '60080'],
        'winrm (--winrm-port) and health (default) would both listen on port 60080',
      ],
      [
        ['--health-port', '60001'],
        'ssh (default) and health (--health-port) would both listen on port 60001',
      ],
      [
        ['--ssh-port', '7000', '--winrm-port', '7000', '--health-port', '7000'],
        'ssh (--ssh-port), winrm (--winrm-port) and health (--health-port) would all listen on port 7000',
      ],
    ])('are refused before anything listens: %j', (flags, message) => {
      expect(problems([...TARGET, ...flags])).toEqual([`${message}: give each listener a port of its own.`]);
    });

    it('are found across flags and variables', () => {
      expect(problems([...TARGET, '--ssh-port', '7001'], { PROXY_HEALTH_PORT: '7001' })).toEqual([
        'ssh (--ssh-port) and health (PROXY_HEALTH_PORT) would both listen on port 7001: give each listener a port of its own.',
      ]);
    });

    it('do not include 0 (each gets its own free port) or a disabled health check', () => {
      expect(() =>
        load([...TARGET, '--ssh-port', '0', '--winrm-port', '0', '--health-port', '0']),
      ).not.toThrow();
      expect(() =>
        load([...TARGET, '--ssh-port', '7002', '--winrm-port', '7003', '--health-port', '-1']),
      ).not.toThrow();
    });

    it('are not claimed for a port that was refused', () => {
      // The refused value falls back to 60001 internally: that must not be reported as a clash.
      expect(problems([...TARGET, '--ssh-port', '0x10', '--winrm-port', '60001'])).toHaveLength(1);
    });
  });

  describe('target', () => {
    it.each([
      '10.0.0.4',
      'fd00::4',
      'fe80::1%eth0',
      'testvm',
      'vm-1.internal.example',
      'VM1.example.',
      'a'.repeat(63),
    ])('accepts %j', (target) => {
      expect(load(['--target', target]).target).toBe(target);
    });

    it.each([
      ['10.0.0.256', ''],
      ['10.0.0', ''],
      ['vm.example.123', ''],
      ['vm_1', ''],
      ['-vm', ''],
      ['vm-', ''],
      ['a..b', ''],
      ['.vm', ''],
      [' vm', ''],
      ['a'.repeat(64), ''],
      [`${'a'.repeat(60)}.`.repeat(5).slice(0, 255), ''],
      ['vm:22', 'Give the address alone: the ports are --target-ssh-port and --target-winrm-port.'],
      ['10.0.0.4:22', 'Give the address alone'],
      ['ssh://vm', 'not a URL'],
      ['[fd00::4]', 'without brackets'],
    ])('refuses %j', (target, hint) => {
      const [problem] = problems(['--target', target]);

      expect(problem).toContain(`--target "${target}" is not an IPv4 or IPv6 address or a host name`);
      expect(problem).toContain(hint);
    });

    it('is required, and may not be empty', () => {
      expect(problems([])).toEqual([
        '--target / PROXY_TARGET is missing: the build VM address every connection is forwarded to.',
      ]);
      expect(problems([], { PROXY_TARGET: '' })).toEqual([
        'PROXY_TARGET is empty: give the build VM address every connection is forwarded to.',
      ]);
    });
  });

  it.each(['localhost', '0.0.0.0 ', '*', '127.0.0.1:60001'])(
    'refuses %j as the listening address',
    (listen) => {
      expect(problems([...TARGET, '--listen', listen])).toEqual([
        expect.stringContaining(`--listen "${listen}" is not an IPv4 or IPv6 address`),
      ]);
    },
  );

  it.each(['::', '127.0.0.1', '::1'])('listens on %j', (listen) => {
    expect(load([...TARGET, '--listen', listen]).listenAddress).toBe(listen);
  });

  describe('allowlist', () => {
    it('allows any source when not given', () => {
      expect(load(TARGET).allow).toBe('any');
    });

    it.each([[['--allow', '']], [['--allow=']], [['--allow', ' , ']]])(
      'refuses an explicitly empty list: %j',
      (flags) => {
        expect(problems([...TARGET, ...flags])).toEqual([
          expect.stringMatching(
            /^--allow is empty: list the source networks allowed to connect .*or leave it out to allow any source\.$/,
          ),
        ]);
      },
    );

    it('refuses PROXY_ALLOW set but empty, the same way', () => {
      expect(problems(TARGET, { PROXY_ALLOW: '' })).toEqual([
        expect.stringMatching(/^PROXY_ALLOW is empty: /),
      ]);
    });

    it('takes networks separated by commas, with spaces', () => {
      const allow = load([...TARGET, '--allow', '10.0.0.0/8, 168.63.129.16 ,fd00::/64']).allow;

      expect(allow !== 'any' && allow.map((cidr) => cidr.text)).toEqual([
        '10.0.0.0/8',
        '168.63.129.16',
        'fd00::/64',
      ]);
    });

    it.each([
      ['10.0.0.0/8,', 'entry 2 is empty'],
      ['10.0.0.0/8,,11.0.0.0/8', 'entry 2 is empty'],
      ['10.0.0.0/', 'prefix length'],
      ['10.0.0.0/0x8', 'prefix length'],
      ['10.0.0.0/8/9', 'is not an IPv4 or IPv6 network'],
      ['10.1.0.0/8', 'host bits set: the network with that prefix is 10.0.0.0/8'],
      ['fd00::1/64', 'host bits set: the network with that prefix is fd00::/64'],
      ['fe80::1%eth0/64', 'is not an IPv4 or IPv6 network'],
      ['example.com/8', 'is not an IPv4 or IPv6 network'],
    ])('refuses %j', (text, problem) => {
      expect(problems([...TARGET, '--allow', text])).toEqual([expect.stringContaining(problem)]);
    });
  });

  it('lists every problem at once', () => {
    const found = problems(
      ['--ssh-port', '1e3', '--allow', '', '--listen', 'localhost', '--bogus', 'stray', '--idle-timeout'],
      { PROXY_WINRM_PORT: '0x10' },
    );

    expect(found).toEqual([
      '--bogus is not an option.',
      '"stray" is not an option: options are --name value.',
      '--idle-timeout needs a value.',
      '--target / PROXY_TARGET is missing: the build VM address every connection is forwarded to.',
      expect.stringContaining('--listen "localhost"'),
      expect.stringContaining('--allow is empty'),
      expect.stringContaining('--ssh-port "1e3"'),
      expect.stringContaining('PROXY_WINRM_PORT "0x10"'),
    ]);
  });

  it('says when an option is followed by another option instead of its value', () => {
    expect(problems(['--target', '--listen', '127.0.0.1'])).toContain(
      '--target needs a value, but is followed by the option --listen.',
    );
  });

  it.each([['--help'], ['-h'], ['--ssh-port', '1e3', '--help']])('asks for help with %j', (...argv) => {
    expect(loadProxyConfig(argv, {})).toBe('help');
  });
});

function defaultOf(flag: string): number {
  return {
    '--ssh-port': 60001,
    '--winrm-port': 60000,
    '--target-ssh-port': 22,
    '--target-winrm-port': 5986,
    '--health-port': 60080,
  }[flag]!;
}

function portOf(config: ProxyConfig, flag: string): number {
  if (flag === '--health-port') return config.healthPort;
  const route = config.routes[flag.includes('ssh') ? 0 : 1]!;
  return flag.startsWith('--target') ? route.targetPort : route.listenPort;
}
