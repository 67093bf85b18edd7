#!/usr/bin/env node
// Runs the agent's relay as its own process for benchmarks: relay-process.mjs <host> <port> → prints its port.
import { startRelay } from '../dist/agent/src/relay/relay.js';

const [host, port] = process.argv.slice(2);
const relay = await startRelay({ upstream: { kind: 'direct', host, port: Number(port) } });
process.stdout.write(`${relay.port}\n`);
process.once('SIGTERM', () => void relay.close().then(() => process.exit(0)));
