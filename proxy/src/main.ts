#!/usr/bin/env -S node --max-semi-space-size=2
/**
 * isobuild-proxy: the companion TCP forwarder that models AIB's proxy VM (60001 → build VM :22,
 * 60000 → build VM :5986). Structured pino logs on stdout, problems on stderr without stack traces.
 * SIGTERM or SIGINT drains and exits 0; a second one stops at once. Exit codes: docs/exit-codes.md.
 * The shebang's flag is PROXY_NODE_FLAGS (runtime.ts).
 */
import { pino } from 'pino';
import { PROXY_HELP, ProxyConfigError, loadProxyConfig } from './config.js';
import { ListenError } from './listeners.js';
import { PROXY_NODE_FLAGS, youngGenerationLimited } from './runtime.js';
import { startProxy } from './server.js';

const log = pino({ base: { app: 'isobuild-proxy' } });

function fail(message: string): void {
  process.stderr.write(
    message
      .split('\n')
      .map((line) => `isobuild-proxy: ${line}\n`)
      .join(''),
  );
}

/** A bug, not a configuration or network problem: say so without a stack trace, and exit 70. */
function internalError(error: unknown): never {
  const message = error instanceof Error ? error.message : String(error);
  fail(
    `internal error: ${message}. This is a bug in isobuild-proxy; please report it with the command you ran.`,
  );
  process.exit(70);
}

async function main(): Promise<number> {
  let config;
  try {
    config = loadProxyConfig(process.argv.slice(2), process.env);
  } catch (error) {
    if (!(error instanceof ProxyConfigError)) throw error;
    fail(`${error.message}\nSee isobuild-proxy --help.`);
    return 2;
  }
  if (config === 'help') {
    process.stdout.write(`${PROXY_HELP}\n`);
    return 0;
  }
  let proxy;
  try {
    proxy = await startProxy(config, log);
  } catch (error) {
    if (!(error instanceof ListenError)) throw error;
    fail(`${error.message}\nNothing was served; every listener is closed again.`);
    return 1;
  }
  if (!youngGenerationLimited(process.execArgv, process.env.NODE_OPTIONS))
    log.warn(
      { nodeFlags: PROXY_NODE_FLAGS },
      'started without the young-generation limit: each connection costs more memory; start node with these flags',
    );
  const running = proxy;
  await new Promise<void>((resolve) => {
    const stopNow = new AbortController();
    let draining = false;
    const onSignal = (signal: NodeJS.Signals): void => {
      if (draining) return stopNow.abort(); // a second signal: stop waiting for open connections
      draining = true;
      log.info({ signal }, 'draining');
      void running.drain(stopNow.signal).then(resolve);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  return 0;
}

process.on('uncaughtException', internalError);
process.on('unhandledRejection', internalError);
process.exitCode = await main().catch(internalError);
