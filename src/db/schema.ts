/**
 * The DDL of `runs.sqlite`, data format 4 (contract section 3).
 *
 * DAMNIT's GUI, web page and Python API read this database directly, so every table, index,
 * trigger and view here has the reference's names, columns and constraints. Tables of our own
 * would be prefixed `damnit_ts_`; none are needed yet.
 */

export const DATA_FORMAT_VERSION = 4;

/** The tables of format 1, the oldest format that is upgraded on open. */
export const BASELINE_TABLES_DDL = `
CREATE TABLE IF NOT EXISTS run_info(proposal, run, start_time, added_at);
CREATE UNIQUE INDEX IF NOT EXISTS proposal_run ON run_info (proposal, run);
CREATE TABLE IF NOT EXISTS metameta(key PRIMARY KEY NOT NULL, value);
CREATE TABLE IF NOT EXISTS variables(name TEXT PRIMARY KEY NOT NULL, type TEXT, title TEXT, description TEXT, attributes TEXT);
CREATE TABLE IF NOT EXISTS time_comments(timestamp, comment);
`;

/** Format 2 added `attributes` (display hints, or the error of a failed variable). */
export const RUN_VARIABLES_DDL = `
CREATE TABLE IF NOT EXISTS run_variables(proposal, run, name, version, value, timestamp, max_diff, provenance, summary_type, summary_method, attributes);
CREATE UNIQUE INDEX IF NOT EXISTS variable_version ON run_variables (proposal, run, name, version);
`;

/** Format 3: variable tags. */
export const TAG_TABLES_DDL = `
CREATE TABLE IF NOT EXISTS tags(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT UNIQUE NOT NULL
);
CREATE TABLE IF NOT EXISTS variable_tags(
    variable_name TEXT NOT NULL,
    tag_id INTEGER NOT NULL,
    FOREIGN KEY (variable_name) REFERENCES variables(name) ON DELETE CASCADE,
    FOREIGN KEY (tag_id) REFERENCES tags(id) ON DELETE CASCADE,
    PRIMARY KEY (variable_name, tag_id)
);
`;

export const ORPHAN_TAG_TRIGGER = 'delete_orphan_tags_after_variable_tag_delete';

/** Format 4: a tag goes away with the last variable that carries it. */
export const ORPHAN_TAG_TRIGGER_DDL = `
CREATE TRIGGER IF NOT EXISTS ${ORPHAN_TAG_TRIGGER}
AFTER DELETE ON variable_tags
FOR EACH ROW
BEGIN
    DELETE FROM tags
    WHERE id = OLD.tag_id
    AND NOT EXISTS (SELECT 1 FROM variable_tags WHERE tag_id = OLD.tag_id);
END;
`;

/**
 * Placeholder views of a database that has no variables yet (the reference writes the same);
 * they are replaced by buildViewsSql() when the first variable name appears.
 */
export const PLACEHOLDER_VIEWS_DDL = `
CREATE VIEW IF NOT EXISTS runs      AS SELECT * FROM run_info;
CREATE VIEW IF NOT EXISTS max_diffs AS SELECT proposal, run FROM run_info;
`;

/** Everything a new database gets, in one script. */
export const SCHEMA_DDL = [
  BASELINE_TABLES_DDL,
  RUN_VARIABLES_DDL,
  TAG_TABLES_DDL,
  ORPHAN_TAG_TRIGGER_DDL,
  PLACEHOLDER_VIEWS_DDL,
].join('');

function sqlString(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}

function sqlIdentifier(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/**
 * SQLite's limit on the columns of a view or a result (SQLITE_MAX_COLUMN, 2000 unless SQLite was
 * built otherwise, as in Python's sqlite3 that DAMNIT's GUI reads with).
 */
export const SQLITE_MAX_COLUMNS = 2000;

/** The columns of the `runs` view before its variables. */
export const RUNS_VIEW_OWN_COLUMNS = ['proposal', 'run', 'start_time', 'added_at'] as const;

/** How many variables the wide views show: the first ones, in the order of variableNames(). */
export const VIEW_MAX_VARIABLES = SQLITE_MAX_COLUMNS - RUNS_VIEW_OWN_COLUMNS.length;

/**
 * Drops and recreates the wide views: one row per run, one column per variable name.
 * `runs` holds the summaries (with run_info's columns first), `max_diffs` the max_diff values.
 * The GROUP BY clauses are the reference's (by run number only). Variables beyond
 * VIEW_MAX_VARIABLES are left out of both (their values stay in run_variables).
 */
export function buildViewsSql(variableNames: readonly string[]): string {
  const pivot = (column: string): string =>
    variableNames
      .slice(0, VIEW_MAX_VARIABLES)
      .map((name) => `, max(CASE WHEN name=${sqlString(name)} THEN ${column} END) AS ${sqlIdentifier(name)}`)
      .join('');
  return `
DROP VIEW IF EXISTS runs;
CREATE VIEW runs
AS SELECT run_info.proposal, run_info.run, start_time, added_at${pivot('value')}
   FROM run_variables INNER JOIN run_info ON run_variables.proposal = run_info.proposal AND run_variables.run = run_info.run
   GROUP BY run_info.run;
DROP VIEW IF EXISTS max_diffs;
CREATE VIEW max_diffs
AS SELECT proposal, run${pivot('max_diff')}
   FROM run_variables
   GROUP BY run;
`;
}
