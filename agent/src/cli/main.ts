#!/usr/bin/env node
/** Process entry of the isobuild CLI: wires signals and stdio to run-cli.ts and sets the exit code. */
import { EXIT_CODES, IsobuildError } from '../errors.js';
import { maskSecrets } from '../mask-secrets.js';
import type { CommandIo } from './command.js';
import { main } from './run-cli.js';

const controller = new AbortController();
let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (interrupted) return; // a second signal changes nothing: cleanup is already under way
    interrupted = true;
    controller.abort(new IsobuildError('cancelled', `interrupted by ${signal}; stopped before finishing.`));
  });
}

const secrets: string[] = [];
const io: CommandIo = {
  out: (text) => process.stdout.write(`${maskSecrets(text, secrets)}\n`),
  err: (text) => process.stderr.write(`${maskSecrets(text, secrets)}\n`),
  registerSecrets: (values) => secrets.push(...values),
  signal: controller.signal,
};

process.exitCode = await main(process.argv.slice(2), io);
if (interrupted && process.exitCode === 0) process.exitCode = EXIT_CODES.interrupted;
