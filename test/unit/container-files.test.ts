/**
 * The container files cannot be built here (no Docker engine), so they are checked statically: the compose
 * file is valid for Debian's docker-compose, every COPY source exists and passes .dockerignore, the proxy
 * image exposes the ports the proxy listens on by default, every ISOBUILD_* and PROXY_* variable named is one
 * the configuration loaders read, and the compose networks are wired like AIB's proxy topology.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BUILD_ENVIRONMENT, DEFAULT_KILL_GRACE_MS } from '../../agent/src/build/build-config.js';
import { parseDuration } from '../../agent/src/duration.js';
import { loadProxyConfig, PROXY_ENVIRONMENT } from '../../proxy/src/config.js';

const root = resolve('.');
const DOCKERFILES = ['Dockerfile', 'Dockerfile.proxy', 'test/Dockerfile.testvm'];
const read = (file: string): string => readFileSync(join(root, file), 'utf8');

interface Compose {
  services: Record<
    string,
    {
      environment?: Record<string, string>;
      networks?: string[] | Record<string, unknown>;
      stop_grace_period?: string;
    }
  >;
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
    const texts = [...DOCKERFILES.map(read), read('docker-compose.yml'), read('scripts/compose-setup.sh')];
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
});
