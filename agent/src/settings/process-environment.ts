/**
 * The one place that reads isobuild's own process environment. Everything else gets its settings from the
 * loaders in this folder, so what isobuild reads is listed (and documented) in one table.
 */

/** The environment isobuild was started with (ISOBUILD_* settings are read from it by the loaders). */
export function processEnvironment(): NodeJS.ProcessEnv {
  return process.env;
}

/** PATH for child processes (Packer, its plugins): the caller's own, or a minimal default. */
export function executablePath(): string {
  return process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin';
}
