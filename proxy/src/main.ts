#!/usr/bin/env node
/**
 * isobuild-proxy: the companion TCP forwarder that models AIB's proxy VM (60001 → build VM :22,
 * 60000 → build VM :5986). Structured pino logs on stdout; SIGTERM or SIGINT drains and exits 0.
 */
import { pino } from 'pino';
import { PROXY_HELP, ProxyConfigError, loadProxyConfig } from './config.js';
import { startProxy } from './server.js';

const log = pino({ base: { app: 'isobuild-proxy' } });

async function main(): Promise<number> {
  let config;
  try {
    config = loadProxyConfig(process.argv.slice(2), process.env);
  } catch (error) {
    const message = error instanceof ProxyConfigError ? error.message : (error as Error).message;
    process.stderr.write(`isobuild-proxy: ${message}\nSee isobuild-proxy --help.\n`);
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
    process.stderr.write(
      `isobuild-proxy: cannot listen on ${config.listenAddress}: ${(error as Error).message}\n`,
    );
    return 1;
  }
  const running = proxy;
  await new Promise<void>((resolve) => {
    const stop = (signal: string): void => {
      log.info({ signal }, 'draining');
      void running.drain().then(resolve);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  return 0;
}

process.exitCode = await main();
