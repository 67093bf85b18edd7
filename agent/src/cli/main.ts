#!/usr/bin/env node
/** Process entry of the isobuild CLI: wires signals and stdio to run-cli.ts and sets the exit code. */
import { EXIT_CODES, StopRequest } from '../errors.js';
import { SecretMasker, StreamMasker } from '../mask-secrets.js';
import { killAllPacker } from '../packer/run-packer.js';
import type { CommandIo } from './command.js';
import { main } from './run-cli.js';

const controller = new AbortController();
let interrupted = false;
/** The exit code of the first signal: a command that stopped because of it exits with this. */
let signalExitCode: number = EXIT_CODES.interrupted;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    const code = signal === 'SIGINT' ? EXIT_CODES.interrupted : EXIT_CODES.terminated;
    if (interrupted) {
      // A second signal means "now": stop Packer hard and exit without waiting for cleanup.
      process.stderr.write(
        `isobuild: second ${signal}: stopping now; cleanup on the build VM may be incomplete.\n`,
      );
      killAllPacker();
      process.exit(code);
    }
    interrupted = true;
    signalExitCode = code;
    controller.abort(new StopRequest(signal));
  });
}

// A closed pipe (isobuild ... | head) is not an error worth a stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw error;
  });
}

const secrets: string[] = [];
let masker = new SecretMasker(secrets);
// Streamed text comes in pieces that may split a secret; the stream masker holds back a possible start.
const streamed = new StreamMasker(() => masker);
const io: CommandIo = {
  out: (text) => process.stdout.write(`${streamed.end()}${masker.mask(text)}\n`),
  stream: (text) => process.stdout.write(streamed.write(text)),
  err: (text) => process.stderr.write(`${masker.mask(text)}\n`),
  mask: (text) => masker.mask(text),
  registerSecrets: (values) => {
    secrets.push(...values);
    masker = new SecretMasker(secrets);
  },
  signal: controller.signal,
};

process.exitCode = await main(process.argv.slice(2), io);
process.stdout.write(streamed.end());
// A cancel surfaces as the 'cancelled' error (130) wherever it was noticed; SIGTERM's runs exit 143.
if (interrupted && (process.exitCode === 0 || process.exitCode === EXIT_CODES.interrupted))
  process.exitCode = signalExitCode;
