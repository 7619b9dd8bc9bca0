import type { Command } from 'commander';
import { register as backend } from './backend.js';
import { register as cancel } from './cancel.js';
import { register as check } from './check.js';
import { register as context } from './context.js';
import { register as dbConfig } from './db-config.js';
import { register as init } from './init.js';
import { register as migrate } from './migrate.js';
import { register as newId } from './new-id.js';
import { register as listen } from './listen.js';
import { register as proposal } from './proposal.js';
import { register as readContext } from './read-context.js';
import { register as reprocess } from './reprocess.js';
import { register as table } from './table.js';

/**
 * Each command lives in its own file and adds itself to the program. Every file is loaded for
 * `--help`, so at its top a command file imports only commander and small modules; what its
 * action uses (the database, Pyodide, execa, kafkajs, pino, zod...) it imports inside the
 * action with `await import()` (test/cli/startup.test.ts checks; docs/performance.md).
 */
export type RegisterCommand = (program: Command) => void;

export const commands: RegisterCommand[] = [
  init,
  proposal,
  dbConfig,
  newId,
  migrate,
  readContext,
  reprocess,
  cancel,
  table,
  check,
  context,
  listen,
  backend,
];
