/**
 * Python's text forms of values, where users and DAMNIT's own readers see our output in the
 * shape the reference (a Python program) gives them: `db-config` prints repr() of each value,
 * and run_variables.attributes holds json.dumps() text.
 */

/** repr() of a Python float: shortest round-trip digits, exponent outside 1e-4 .. 1e16. */
export function pythonFloatRepr(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const [mantissa = '', exponentText = '0'] = x.toExponential().split('e');
  const exponent = Number(exponentText);
  const sign = mantissa.startsWith('-') ? '-' : '';
  const digits = mantissa.replace(/^-/, '').replace('.', '');
  if (exponent < -4 || exponent >= 16) {
    const tail = digits.length > 1 ? `.${digits.slice(1)}` : '';
    const expSign = exponent < 0 ? '-' : '+';
    return `${sign}${digits[0]}${tail}e${expSign}${String(Math.abs(exponent)).padStart(2, '0')}`;
  }
  if (exponent < 0) return `${sign}0.${'0'.repeat(-exponent - 1)}${digits}`;
  const whole = digits.slice(0, exponent + 1).padEnd(exponent + 1, '0');
  const fraction = digits.slice(exponent + 1) || '0';
  return `${sign}${whole}.${fraction}`;
}

function escapeChar(ch: string): string {
  const code = ch.codePointAt(0) ?? 0;
  if (ch === '\\') return '\\\\';
  if (ch === '\n') return '\\n';
  if (ch === '\r') return '\\r';
  if (ch === '\t') return '\\t';
  if (code < 0x20 || code === 0x7f) return `\\x${code.toString(16).padStart(2, '0')}`;
  return ch;
}

/** repr() of a Python str: single quotes unless the text holds ' and no ". */
export function pythonStrRepr(text: string): string {
  const quote = text.includes("'") && !text.includes('"') ? '"' : "'";
  let out = '';
  for (const ch of text) out += ch === quote ? `\\${quote}` : escapeChar(ch);
  return `${quote}${out}${quote}`;
}

/** repr() of Python bytes: printable ASCII as itself, the rest as \xNN. */
export function pythonBytesRepr(bytes: Uint8Array): string {
  const hasSingle = bytes.includes(0x27);
  const quote = hasSingle && !bytes.includes(0x22) ? '"' : "'";
  let out = '';
  for (const b of bytes) {
    const ch = String.fromCharCode(b);
    if (ch === quote) out += `\\${quote}`;
    else if (b >= 0x80) out += `\\x${b.toString(16).padStart(2, '0')}`;
    else out += escapeChar(ch);
  }
  return `b${quote}${out}${quote}`;
}

/** The SQLite storage classes, as typeof() names them. */
export type StorageClass = 'integer' | 'real' | 'text' | 'blob' | 'null';

/** A value read from SQLite together with its storage class (an integral REAL stays a float). */
export interface TypedValue {
  value: number | bigint | string | Uint8Array | null;
  storage: StorageClass;
}

/** repr() of the Python value sqlite3 would give for this stored value. */
export function pythonRepr({ value, storage }: TypedValue): string {
  if (value === null) return 'None';
  if (value instanceof Uint8Array) return pythonBytesRepr(value);
  if (typeof value === 'string') return pythonStrRepr(value);
  if (typeof value === 'bigint') return value.toString();
  return storage === 'real' ? pythonFloatRepr(value) : String(value);
}

/** str() of that Python value: as repr() except that text is printed bare. */
export function pythonStr(typed: TypedValue): string {
  return typeof typed.value === 'string' ? typed.value : pythonRepr(typed);
}

/**
 * json.dumps() with its defaults: `", "` and `": "` separators, non-ASCII escaped as \uXXXX,
 * NaN and Infinity written bare. JSON numbers carry no int/float distinction, so integral
 * numbers are written as ints.
 */
export function pythonJsonDumps(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'number') {
    if (Number.isNaN(value)) return 'NaN';
    if (!Number.isFinite(value)) return value > 0 ? 'Infinity' : '-Infinity';
    return Number.isInteger(value) ? BigInt(value).toString() : pythonFloatRepr(value);
  }
  if (typeof value === 'string') {
    return JSON.stringify(value).replace(
      /[\u0080-\uffff]/g,
      (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`,
    );
  }
  if (Array.isArray(value)) return `[${value.map(pythonJsonDumps).join(', ')}]`;
  if (typeof value === 'object') {
    const items = Object.entries(value as Record<string, unknown>).map(
      ([k, v]) => `${pythonJsonDumps(k)}: ${pythonJsonDumps(v)}`,
    );
    return `{${items.join(', ')}}`;
  }
  throw new TypeError(`cannot write a ${typeof value} as JSON`);
}
