/**
 * A table cell as text, as DAMNIT's GUI shows it: numbers in its notation, blobs by what they
 * are, errors by their class (and message), units after numbers.
 */
import { pythonFloatRepr } from '../db/python-format.js';
import type { BlobSummary, Cell } from './read-table.js';

/** Python's `f"{x:.3e}"`: the exponent has at least two digits. */
function scientific(x: number): string {
  if (!Number.isFinite(x)) return Number.isNaN(x) ? 'nan' : x > 0 ? 'inf' : '-inf';
  return x.toExponential(3).replace(/e([+-])(\d)$/, 'e$10$2');
}

/** The GUI's prettify_notation: 2.0 as 2, 0.1234 as 0.1234, 12345.6 as 1.235e+04. */
export function guiNumber(x: number, isFloat: boolean): string {
  if (!isFloat) return String(x);
  const magnitude = Math.abs(x);
  if (x % 1 === 0 && magnitude < 10_000) return String(Math.trunc(x)).replace(/^-0$/, '0');
  if (magnitude > 0.0001 && magnitude < 10_000) return x.toFixed(4);
  return scientific(x);
}

/** A float as Python's repr writes it inside a complex number: 1 and 1.5, not 1.0. */
function complexPart(x: number): string {
  return pythonFloatRepr(x).replace(/\.0$/, '');
}

export function blobText(blob: BlobSummary): string {
  switch (blob.kind) {
    case 'image':
      return '<image>';
    case 'trendline':
      return '<trendline>';
    case 'array':
      return blob.dtype !== null && blob.shape !== null ? `${blob.dtype}: ${blob.shape}` : '<array>';
    case 'complex': {
      const sign = blob.im < 0 || Object.is(blob.im, -0) ? '-' : '+';
      const im = `${complexPart(Math.abs(blob.im))}j`;
      return blob.re === 0 && !Object.is(blob.re, -0) ? `${sign === '-' ? '-' : ''}${im}` : `(${complexPart(blob.re)}${sign}${im})`;
    }
    case 'bytes':
      return `<${blob.length} bytes>`;
  }
}

/** `KeyError` in the cell of a failed variable, `KeyError: message` with `long`; a Skip is `skipped`. */
export function errorText(error: { cls: string; message: string }, long: boolean): string {
  const what = error.cls === 'Skip' ? 'skipped' : `!${error.cls}`;
  return long ? `${what}: ${error.message}` : what;
}

/** The value of a cell without units: what the GUI's export writes. */
export function valueText(cell: Cell, long: boolean): string {
  if (cell.error !== null) return errorText(cell.error, long);
  if (cell.blob !== null) return blobText(cell.blob);
  if (cell.value === null) return '';
  if (typeof cell.value === 'number') return guiNumber(cell.value, cell.isFloat);
  return cell.value;
}

/** The value with its units after it, as the GUI paints them next to a number. */
export function displayText(cell: Cell, long: boolean): string {
  const text = valueText(cell, long);
  return cell.units !== null && typeof cell.value === 'number' && cell.error === null ? `${text} ${cell.units}` : text;
}

function pad2(n: number): string {
  return String(n).padStart(2, '0');
}

/** The GUI's Timestamp column: local time as `%H:%M:%S %d/%m/%Y`. */
export function timestampText(epochSeconds: number | null): string {
  if (epochSeconds === null || !Number.isFinite(epochSeconds)) return '';
  const d = new Date(epochSeconds * 1000);
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())} ${pad2(d.getDate())}/${pad2(d.getMonth() + 1)}/${d.getFullYear()}`;
}
