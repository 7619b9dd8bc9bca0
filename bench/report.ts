/** What every part of the bench prints its figures with. */

/** The middle value (the upper one of an even count); NaN for none. */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

/** A printer of `part: what ... value` lines, values aligned across the parts. */
export function figureLine(part: string): (what: string, value: string) => void {
  const width = Math.max(40, 58 - part.length);
  return (what, value) => console.log(`${part}: ${what.padEnd(width)} ${value}`);
}
