/** Packer's child environment: built from nothing, with the user's plugin directory when a run has its own HOME. */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { packerEnvironment } from '../../agent/src/packer/packer-environment.js';

describe('packerEnvironment', () => {
  let home: string;
  beforeEach(() => {
    home = mkdtempSync(join(tmpdir(), 'isobuild-home-'));
    vi.stubEnv('HOME', home);
    vi.stubEnv('PACKER_PLUGIN_PATH', undefined);
    vi.stubEnv('PACKER_CONFIG_DIR', undefined);
    vi.stubEnv('XDG_CONFIG_HOME', undefined);
    vi.stubEnv('ISOBUILD_WINRM_PASSWORD', 'planted-secret-value');
  });
  afterEach(() => {
    vi.unstubAllEnvs();
    rmSync(home, { recursive: true, force: true });
  });

  const buildEnvironment = (): Record<string, string> =>
    packerEnvironment({ home: '/run/x/tmp', tmpDir: '/run/x/tmp', log: true, userPlugins: true });

  it('never carries isobuild own environment (credentials) to Packer', () => {
    const env = buildEnvironment();
    expect(Object.values(env).join('\n')).not.toContain('planted-secret-value');
    expect(Object.keys(env).sort()).toEqual(
      ['CHECKPOINT_DISABLE', 'HOME', 'PACKER_LOG', 'PACKER_NO_COLOR', 'PATH', 'TMPDIR'].sort(),
    );
  });

  it("a run's own HOME still finds the plugins installed under the user's (Packer 1.8+ layout)", () => {
    mkdirSync(join(home, '.config', 'packer', 'plugins'), { recursive: true });
    const env = buildEnvironment();
    expect(env.HOME).toBe('/run/x/tmp');
    expect(env.PACKER_PLUGIN_PATH).toBe(join(home, '.config', 'packer', 'plugins'));
  });

  it('prefers the legacy ~/.packer.d/plugins when it exists, as Packer does', () => {
    mkdirSync(join(home, '.config', 'packer', 'plugins'), { recursive: true });
    mkdirSync(join(home, '.packer.d', 'plugins'), { recursive: true });
    expect(buildEnvironment().PACKER_PLUGIN_PATH).toBe(join(home, '.packer.d', 'plugins'));
  });

  it("keeps the user's own PACKER_PLUGIN_PATH or PACKER_CONFIG_DIR", () => {
    mkdirSync(join(home, '.config', 'packer', 'plugins'), { recursive: true });
    vi.stubEnv('PACKER_PLUGIN_PATH', '/opt/plugins');
    expect(buildEnvironment().PACKER_PLUGIN_PATH).toBe('/opt/plugins');
    vi.stubEnv('PACKER_PLUGIN_PATH', undefined);
    vi.stubEnv('PACKER_CONFIG_DIR', '/opt/packer');
    const env = buildEnvironment();
    expect(env.PACKER_CONFIG_DIR).toBe('/opt/packer');
    expect(env.PACKER_PLUGIN_PATH).toBeUndefined();
  });

  it('follows XDG_CONFIG_HOME, as Packer does', () => {
    mkdirSync(join(home, 'xdg', 'packer', 'plugins'), { recursive: true });
    vi.stubEnv('XDG_CONFIG_HOME', join(home, 'xdg'));
    const env = buildEnvironment();
    expect(env.PACKER_PLUGIN_PATH).toBe(join(home, 'xdg', 'packer', 'plugins'));
    expect(env.XDG_CONFIG_HOME).toBe(join(home, 'xdg'));
  });

  it('sets no plugin path when the user has no plugin directory', () => {
    expect(buildEnvironment().PACKER_PLUGIN_PATH).toBeUndefined();
  });
});
