/**
 * The Node flags isobuild-proxy runs with. V8 lets its young generation grow to 32 MB under a steady trickle
 * of small chunks, which was a third of the proxy's memory with 2,600 connections. A forwarder's objects
 * either live as long as a connection or die within one event, so small semi-spaces cost no throughput
 * (docs/benchmarks.md, "Proxy memory"). V8 reads the flag only at start-up: the shebang of main.ts,
 * Dockerfile.proxy's ENTRYPOINT and the test and benchmark launchers pass it.
 */
export const PROXY_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=2'];

/** True when this process was started with a limit on the young generation (flag or NODE_OPTIONS). */
export function youngGenerationLimited(execArgv: readonly string[], nodeOptions = ''): boolean {
  return [...execArgv, ...nodeOptions.split(/\s+/)].some((arg) => arg.startsWith('--max-semi-space-size'));
}
