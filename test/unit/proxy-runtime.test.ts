import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { PROXY_NODE_FLAGS, youngGenerationLimited } from '../../proxy/src/runtime.js';

describe('isobuild-proxy Node flags', () => {
  it('are in the shebang of main.ts, so the installed binary runs with them', () => {
    const shebang = readFileSync('proxy/src/main.ts', 'utf8').split('\n')[0];

    expect(shebang).toBe(`#!/usr/bin/env -S node ${PROXY_NODE_FLAGS.join(' ')}`);
  });

  it.each([
    [[...PROXY_NODE_FLAGS], '', true],
    [['--max-semi-space-size', '1'], '', true],
    [[], '--max-semi-space-size=4', true],
    [[], '--enable-source-maps --max-semi-space-size=1', true],
    [['--max-old-space-size=100'], '', false],
    [[], '', false],
  ])('youngGenerationLimited(%j, %j) is %s', (execArgv, nodeOptions, limited) => {
    expect(youngGenerationLimited(execArgv, nodeOptions)).toBe(limited);
  });
});
