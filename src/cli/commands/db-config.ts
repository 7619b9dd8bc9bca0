import type { Command } from 'commander';
import { CliError } from '../errors.js';
import { requireDatabaseDir, type DatabaseDir } from '../../database-dir.js';
import { closestConfigKey, CONFIG_KEYS, findConfigKey, LIVE_KEYS } from '../../db/config-keys.js';
import { programName } from '../../program-name.js';
import { pythonRepr } from '../../db/python-format.js';
import { settingProblem } from '../../executors/slurm-settings.js';

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/**
 * `--num`: Python's int() of the text when it is an integer literal, else its float().
 * An integral value is stored as an integer either way.
 */
export function parseNumberSetting(key: string, text: string): number | bigint {
  const trimmed = text.trim();
  if (/^[+-]?\d+(_\d+)*$/.test(trimmed)) {
    const n = BigInt(trimmed.replace(/_/g, ''));
    if (n < INT64_MIN || n > INT64_MAX) {
      throw new CliError(`value ${text} for ${key} does not fit a 64-bit integer`);
    }
    return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n;
  }
  const decimal = /^[+-]?(\d+(_\d+)*(\.(\d+(_\d+)*)?)?|\.\d+(_\d+)*)([eE][+-]?\d+)?$/;
  const value = decimal.test(trimmed) ? Number(trimmed.replace(/_/g, '')) : Number.NaN;
  if (!Number.isFinite(value)) {
    throw new CliError(`--num needs a finite number for ${key}, got '${text}'`);
  }
  return value;
}

function warnIfUnknown(key: string): void {
  if (findConfigKey(key) !== undefined) return;
  const close = closestConfigKey(key);
  const hint = close === undefined ? '' : ` (did you mean ${close}?)`;
  process.stderr.write(`Warning: ${key} is not a setting DAMNIT uses${hint}; stored anyway\n`);
}

/**
 * A new context_python is stored whatever it is (the user may be about to create it), but what
 * would stop contexts from running there is said now rather than at the next run.
 */
async function warnAboutContextPython(python: string): Promise<void> {
  const { installCommand, InterpreterProblem, probeEnvironment } = await import('../../context/interpreter.js');
  let report;
  try {
    report = await probeEnvironment(python);
  } catch (err) {
    if (!(err instanceof InterpreterProblem)) throw err;
    process.stderr.write(`Warning: context_python ${err.message}; stored anyway, but contexts cannot run until it is fixed\n`);
    return;
  }
  if (report.missing.length === 0) return;
  const named = report.missing.map((p) => (p.error?.startsWith('ModuleNotFoundError') ? p.pip : `${p.pip} (${p.error})`));
  process.stderr.write(
    `Warning: context_python ${python} (Python ${report.info.version}) lacks packages contexts need: ` +
      `${named.join(', ')}; stored anyway\n` +
      `  install ${report.missing.length === 1 ? 'it' : 'them'} with: ${installCommand(python, report.missing)}\n`,
  );
}

const KNOWN_KEYS_HELP = [
  '',
  'Settings DAMNIT uses (any other key may be stored too):',
  ...CONFIG_KEYS.map((k) => {
    const fallback = k.default === null ? '' : ` [default: ${k.default}]`;
    return `  ${k.name.padEnd(24)}${k.description}${fallback}`;
  }),
].join('\n');

/** With a backend running: whether it uses the change from its next run or after a restart. */
async function sayWhenTheBackendUsesIt(dir: DatabaseDir, key: string): Promise<void> {
  const { ListenerLock } = await import('../../scheduler/listener-claim.js');
  const known = findConfigKey(key);
  if (!known || !ListenerLock.isHeld(dir)) return;
  if ((LIVE_KEYS as readonly string[]).includes(key)) {
    process.stderr.write(`The running backend uses the new ${key} from its next run.\n`);
  } else if (!['db_id', 'data_format_version', 'damnit_python'].includes(key)) {
    process.stderr.write(`The running backend reads ${key} when it starts: '${programName()} backend restart' to apply it.\n`);
  }
}

export function register(program: Command): void {
  program
    .command('db-config')
    .description('See or change config in this database')
    .option('-d, --delete', 'delete the specified key')
    .option('--num', 'set the given value as a number instead of a string')
    .argument('[key]', "the config key to see/change ('-' reads as '_'); if not given, list all config")
    .argument('[value]', 'a new value for the given key')
    .addHelpText('after', KNOWN_KEYS_HELP)
    .action(async (rawKey: string | undefined, value: string | undefined, opts: { delete?: boolean; num?: boolean }) => {
      const key = rawKey?.replace(/-/g, '_');
      if (opts.delete && !key) throw new CliError('no key specified to delete');
      const newValue = key !== undefined && value !== undefined && !opts.delete
        ? (opts.num ? parseNumberSetting(key, value) : value)
        : undefined;

      const changes = opts.delete || newValue !== undefined;
      const { openDatabase } = await import('../../db/database.js');
      const db = openDatabase(requireDatabaseDir(), { readonly: !changes });
      try {
        if (opts.delete && key) {
          if (!db.metameta.delete(key)) throw new CliError(`key ${key} not found`);
          await sayWhenTheBackendUsesIt(db.dir, key);
        } else if (key !== undefined && newValue !== undefined) {
          warnIfUnknown(key);
          const problem = settingProblem(key, newValue);
          if (problem !== null) throw new CliError(`${problem}; nothing was stored`);
          db.metameta.set(key, newValue);
          if (key === 'context_python') await warnAboutContextPython(String(newValue).trim());
          await sayWhenTheBackendUsesIt(db.dir, key);
        } else if (key !== undefined) {
          const current = db.metameta.getTyped(key);
          if (current === undefined) throw new CliError(`key ${key} not found`);
          console.log(pythonRepr(current));
        } else {
          for (const [k, v] of db.metameta.typedEntries()) console.log(`${k}=${pythonRepr(v)}`);
        }
      } finally {
        db.close();
      }
    });
}
