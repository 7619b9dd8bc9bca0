/**
 * Which runs' last processing failed, for `backend status`: one row per run and data kind in
 * runs.sqlite (`damnit_ts_failures`, a table DAMNIT's other tools ignore), written by every path
 * that processes runs (reprocess in all its modes, the backend). A processing that fails the run
 * or any of its variables puts the run there with why; one that goes well takes it out again
 * (an `all` processing answers for raw and proc alike).
 */
import type Database from 'better-sqlite3';
import { withoutWaiting } from '../db/no-wait.js';
import type { VariableResultMessage } from '../context/protocol.js';
import type { RunData } from './run-request.js';
import { describeFailure, variableFailures } from './run-report.js';
import { nameList, plural } from '../text.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS damnit_ts_failures (
  proposal INTEGER NOT NULL,
  run INTEGER NOT NULL,
  data TEXT NOT NULL,
  reason TEXT NOT NULL,
  failed_at REAL NOT NULL,
  PRIMARY KEY (proposal, run, data)
);
`;

export interface RecordedFailure {
  proposal: number;
  run: number;
  data: RunData;
  reason: string;
  failedAt: number;
}

type Outcome = { ok: true; variables: readonly VariableResultMessage[] } | { ok: false; reason: string };

/** Why a processing counts as failed (the run, or its variables by name), or null when it went well. */
export function failureReason(outcome: Outcome): string | null {
  if (!outcome.ok) return outcome.reason;
  const failures = variableFailures(outcome.variables);
  if (failures.length === 0) return null;
  return `${plural(failures.length, 'variable')} failed: ${nameList(failures.map((f) => describeFailure(f)))}`;
}

export class FailureRecord {
  static existsIn(conn: Database.Database): boolean {
    return conn.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'damnit_ts_failures'").get() !== undefined;
  }

  constructor(private readonly conn: Database.Database) {
    if (!conn.readonly) conn.exec(SCHEMA);
  }

  /** Notes how a processing of a run ended. */
  note(proposal: number, run: number, data: RunData, outcome: Outcome): void {
    const reason = failureReason(outcome);
    const kinds = data === 'all' ? ['raw', 'proc', 'all'] : [data, 'all'];
    this.conn
      .transaction(() => {
        if (reason === null) {
          const clear = this.conn.prepare('DELETE FROM damnit_ts_failures WHERE proposal = ? AND run = ? AND data = ?');
          for (const kind of kinds) clear.run(proposal, run, kind);
        } else {
          this.conn
            .prepare(
              `INSERT INTO damnit_ts_failures (proposal, run, data, reason, failed_at) VALUES (?, ?, ?, ?, ?)
               ON CONFLICT (proposal, run, data) DO UPDATE SET reason = excluded.reason, failed_at = excluded.failed_at`,
            )
            .run(proposal, run, data, reason, Date.now() / 1000);
        }
      })
      .immediate();
  }

  list(): RecordedFailure[] {
    if (!FailureRecord.existsIn(this.conn)) return [];
    const rows = this.conn
      .prepare('SELECT proposal, run, data, reason, failed_at AS failedAt FROM damnit_ts_failures ORDER BY proposal, run, data')
      .all() as RecordedFailure[];
    return rows;
  }
}

/**
 * Notes an outcome without ever failing or holding up the processing it describes: a database
 * that cannot take the note at once (locked, read-only) costs the status line, not the run.
 */
export function noteOutcome(conn: Database.Database, proposal: number, run: number, data: RunData, outcome: Outcome): void {
  try {
    withoutWaiting(conn, () => new FailureRecord(conn).note(proposal, run, data, outcome));
  } catch {
    // See above: the status is a convenience.
  }
}
