/**
 * The container files, checked statically (test/integration/containers.test.ts builds and runs them): the
 * compose file is valid for Debian's docker-compose, every COPY source exists and passes .dockerignore, the
 * proxy image exposes the ports the proxy listens on by default and starts Node with the proxy's flags,
 * every ISOBUILD_* and PROXY_* variable named is one the configuration loaders read, the compose networks
 * are wired like AIB's proxy topology and declare podman's IPAM driver, the agent and proxy run hardened,
 * the Node pin is the same everywhere, and no certificate can end up in an image.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BUILD_ENVIRONMENT, DEFAULT_KILL_GRACE_MS } from '../../agent/src/settings/build-config.js';
import { parseDuration } from '../../agent/src/duration.js';
import { loadProxyConfig, PROXY_ENVIRONMENT } from '../../proxy/src/config.js';
import { PROXY_NODE_FLAGS } from '../../proxy/src/runtime.js';

const root = resolve('.');
const DOCKERFILES = ['Dockerfile', 'Dockerfile.proxy', 'test/Dockerfile.testvm'];
/** Everything the image builds read, including the locally made base and Azurite images. */
const BUILD_FILES = [
  ...DOCKERFILES,
  'scripts/images/node.Containerfile',
  'scripts/images/azurite.Containerfile',
  'scripts/images/install-packer.sh',
];
const SCRIPTS = [
  'scripts/compose-setup.sh',
  'scripts/compose-demo.sh',
  'scripts/images/common.sh',
  'scripts/images/base-images.sh',
  'scripts/images/build-images.sh',
];
const read = (file: string): string => readFileSync(join(root, file), 'utf8');

interface Compose {
  services: Record<
    string,
    {
      image?: string;
      environment?: Record<string, string>;
      networks?: string[] | Record<string, unknown>;
      stop_grace_period?: string;
      read_only?: boolean;
      cap_drop?: string[];
      security_opt?: string[];
      user?: string;
    }
  >;
  networks: Record<string, { ipam?: { options?: Record<string, string>; config?: { subnet: string }[] } }>;
}
const compose = JSON.parse(
  execFileSync(
    '/usr/bin/python3',
    [
      '-c',
      'import json,sys,yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))',
      join(root, 'docker-compose.yml'),
    ],
    {
      encoding: 'utf8',
    },
  ),
) as Compose;

/** COPY sources from the build context (multi-stage `COPY --from=` lines copy from other stages). */
function copySources(dockerfile: string): string[] {
  return read(dockerfile)
    .split('\n')
    .filter((line) => /^COPY\s/.test(line) && !/--from=/.test(line))
    .flatMap((line) => line.trim().split(/\s+/).slice(1, -1));
}

describe('container files', () => {
  it('docker-compose.yml is valid for docker-compose', () => {
    // The key files and env files it names are generated, never committed.
    execFileSync('bash', [join(root, 'scripts/compose-setup.sh')], { stdio: 'pipe' });
    expect(() =>
      execFileSync('docker-compose', ['-f', join(root, 'docker-compose.yml'), 'config', '-q'], {
        stdio: 'pipe',
      }),
    ).not.toThrow();
  });

  it.each(DOCKERFILES)(
    '%s copies only files that exist and that .dockerignore lets through',
    (dockerfile) => {
      const allowed = read('.dockerignore')
        .split('\n')
        .filter((line) => line.startsWith('!'))
        .map((line) => line.slice(1).replace(/\/\*\*$/, ''));
      const sources = copySources(dockerfile);
      expect(sources.length).toBeGreaterThan(0);
      for (const source of sources) {
        expect(existsSync(join(root, source)), `${dockerfile}: COPY ${source}`).toBe(true);
        expect(
          allowed.some((pattern) => source === pattern || source.startsWith(`${pattern}/`)),
          `.dockerignore lets ${source} through`,
        ).toBe(true);
      }
    },
  );

  it('Dockerfile.proxy exposes the ports isobuild-proxy listens on by default', () => {
    const config = loadProxyConfig(['--target', '10.0.0.4'], {});
    if (config === 'help') throw new Error('unexpected help');
    const expected = [...config.routes.map((r) => r.listenPort), config.healthPort].sort();
    const exposed = /^EXPOSE\s+(.+)$/m.exec(read('Dockerfile.proxy'))?.[1]?.split(/\s+/).map(Number).sort();
    expect(exposed).toEqual(expected);
  });

  it('names only environment variables the configuration loaders read', () => {
    const known = new Set([...BUILD_ENVIRONMENT, ...PROXY_ENVIRONMENT]);
    const texts = [...BUILD_FILES.map(read), read('docker-compose.yml'), ...SCRIPTS.map(read)];
    const named = new Set(texts.flatMap((text) => text.match(/\b(?:ISOBUILD|PROXY)_[A-Z0-9_]+\b/g) ?? []));
    expect(named.size).toBeGreaterThan(5);
    for (const name of named)
      expect(known.has(name), `${name} is read by isobuild or isobuild-proxy`).toBe(true);
  });

  it('wires compose like the proxy topology, and lets Packer clean up on stop', () => {
    const networks = (service: string): string[] => {
      const n = compose.services[service]?.networks ?? [];
      return Array.isArray(n) ? n : Object.keys(n);
    };
    expect(networks('isobuild').filter((n) => networks('testvm').includes(n))).toEqual([]);
    expect(networks('proxy')).toEqual(
      expect.arrayContaining([...networks('isobuild'), ...networks('testvm')]),
    );
    const grace = parseDuration(compose.services.isobuild?.stop_grace_period ?? '') ?? 0;
    expect(grace).toBeGreaterThan(DEFAULT_KILL_GRACE_MS);
  });

  it('declares the IPAM driver podman reports on every network, with its subnet', () => {
    // docker-compose 1.29 against podman otherwise asks to recreate the networks on every later command.
    for (const [name, network] of Object.entries(compose.networks)) {
      expect(network.ipam?.options?.driver, name).toBe('host-local');
      expect(network.ipam?.config?.[0]?.subnet, name).toMatch(/^\d+\.\d+\.\d+\.\d+\/\d+$/);
    }
  });

  it.each(['isobuild', 'proxy'])(
    'runs %s hardened: read-only root, no capabilities, no new privileges, not root',
    (service) => {
      const config = compose.services[service]!;
      expect(config.read_only).toBe(true);
      expect(config.cap_drop).toEqual(['ALL']);
      expect(config.security_opt).toContain('no-new-privileges:true');
      expect(config.user ?? '').not.toMatch(/^(root|0)(:|$)/);
      const dockerfile = read(service === 'proxy' ? 'Dockerfile.proxy' : 'Dockerfile');
      const lastUser = [...dockerfile.matchAll(/^USER\s+(\S+)/gm)].at(-1)?.[1];
      expect(lastUser).toMatch(/^(node|1000(:1000)?)$/);
    },
  );

  it('names the images make images builds', () => {
    const common = read('scripts/images/common.sh');
    const built = (name: string): string | undefined =>
      new RegExp(`^${name}="([^"]+)"`, 'm').exec(common)?.[1];
    expect(compose.services.isobuild?.image).toBe(built('IMAGE_AGENT'));
    expect(compose.services.proxy?.image).toBe(built('IMAGE_PROXY'));
    expect(compose.services.testvm?.image).toBe(built('IMAGE_TESTVM'));
    expect(compose.services.azurite?.image).toMatch(/azurite:\d+\.\d+\.\d+$/);
  });

  it('pins one Node version in every image build', () => {
    const pins = ['Dockerfile', 'Dockerfile.proxy', 'scripts/images/azurite.Containerfile'].map(
      (file) => /^ARG NODE_VERSION=(\S+)$/m.exec(read(file))?.[1],
    );
    expect(pins[0]).toMatch(/^20\.\d+\.\d+$/);
    expect(new Set(pins)).toEqual(new Set([pins[0]]));
    for (const file of BUILD_FILES.filter((f) => !f.endsWith('.sh'))) {
      for (const [, from] of read(file).matchAll(/^FROM\s+(\S+)/gm))
        expect(from, `${file}: FROM ${from}`).not.toMatch(/^(docker\.io\/library\/)?node:20-/);
    }
  });

  it('starts isobuild-proxy with the Node flags it is tuned for', () => {
    const entrypoint = /^ENTRYPOINT\s+(\[.*\])$/m.exec(read('Dockerfile.proxy'))?.[1] ?? '[]';
    const argv = JSON.parse(entrypoint) as string[];
    expect(argv.slice(1, 1 + PROXY_NODE_FLAGS.length)).toEqual([...PROXY_NODE_FLAGS]);
    expect(argv.at(-1)).toBe('/app/dist/proxy/src/main.js');
  });

  it('bakes no certificate into an image: the extra CA is only ever a build secret', () => {
    for (const file of BUILD_FILES) {
      const text = read(file);
      expect(text, file).not.toMatch(/^(COPY|ADD)\s.*\.(pem|crt|cer|key)\b/im);
      expect(text, file).not.toMatch(/^ARG\s+\S*(CA|CERT)\S*=/im);
      // A bundle assembled during a RUN step is deleted in that same step (a later RUN would be too late).
      for (const step of text.split(/\n(?=RUN |FROM |COPY |ENV |USER |WORKDIR )/)) {
        if (/>\s*\/tmp\/ca\.pem/.test(step) && file !== 'scripts/images/install-packer.sh')
          expect(step, file).toMatch(/rm -f \/tmp\/ca\.pem/);
      }
    }
    for (const file of DOCKERFILES.slice(0, 2)) {
      for (const line of read(file)
        .split('\n')
        .filter((l) => l.includes('extra_ca') && /^RUN/.test(l)))
        expect(line, file).toMatch(/--mount=type=secret,id=extra_ca/);
    }
  });

  it("installs the engine with the project's other Debian packages", () => {
    const makefile = read('Makefile');
    const packages = /^CONTAINER_PACKAGES := (.+)$/m.exec(makefile)?.[1]?.split(/\s+/) ?? [];
    expect(packages).toEqual(expect.arrayContaining(['podman', 'buildah', 'runc', 'debootstrap']));
    expect(makefile).toMatch(/install-apt-deps\.sh .*\$\(CONTAINER_PACKAGES\)/);
    expect(read('containers.conf')).toMatch(/^runtime = "runc"$/m);
  });
});
