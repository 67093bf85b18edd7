/** Human-readable rendering of problems and errors for the terminal. */
import type { Problem } from '../errors.js';

export function formatProblems(problems: readonly Problem[]): string {
  return problems
    .map((p) => {
      const where = p.line !== undefined ? `${p.path} (line ${p.line})` : p.path;
      return `  ${p.severity === 'error' ? 'error  ' : 'warning'} ${where}: ${p.message}`;
    })
    .join('\n');
}

/** Problems as they appear in --json output. */
export function problemsToJson(problems: readonly Problem[]): object[] {
  return problems.map((p) => ({
    severity: p.severity,
    path: p.path,
    ...(p.line !== undefined ? { line: p.line } : {}),
    message: p.message,
  }));
}
