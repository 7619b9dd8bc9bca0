/**
 * The command's name in what it prints. It is installed as `damnit` (the reference's name) and
 * as `amore-proto` (the seed's, which the reference keeps with a note that it was renamed);
 * messages that tell the user what to type name it as it was invoked.
 */
import path from 'node:path';

export const DEPRECATED_NAME = 'amore-proto';
export const CURRENT_NAME = 'damnit';

/** The name this process was invoked as. Run through its script (`node dist/src/cli/main.js`,
 * as Supervisor runs the backend), it is the name the seed documents. */
export function programName(): string {
  return path.basename(process.argv[1] ?? '') === CURRENT_NAME ? CURRENT_NAME : DEPRECATED_NAME;
}

/** Whether it was invoked by its old name, which earns a note pointing at the new one. */
export function invokedByDeprecatedName(): boolean {
  return path.basename(process.argv[1] ?? '') === DEPRECATED_NAME;
}
