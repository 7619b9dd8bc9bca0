/**
 * What validating one context file finds, as static_reader.py reports it from inside Pyodide.
 * The JSON crosses from Python to TypeScript, so it is validated here like any shim message.
 */
import { z } from 'zod';

export const Diagnostic = z.object({
  severity: z.enum(['error', 'warning']),
  /** encoding | syntax | exception | context | pyflakes | syntax-warning; io | internal: the file could not be checked */
  kind: z.string(),
  message: z.string(),
  /** 1-based; null only for problems of the whole file. */
  line: z.number().int().nullable(),
  /** 1-based, in characters. */
  column: z.number().int().nullable(),
  variable: z.string().nullable(),
  /** pyflakes' message class, the warning category, or a context problem's scope (load|static). */
  code: z.string().nullable(),
});
export type Diagnostic = z.infer<typeof Diagnostic>;

export const StaticReading = z.object({
  diagnostics: z.array(Diagnostic),
  /** The variables seen in the source, in definition order. */
  variables: z.array(
    z.object({ name: z.string(), title: z.string().nullable(), line: z.number().int().nullable() }),
  ),
  /** False when the source builds variables in ways the AST does not show. */
  complete: z.boolean(),
});
export type StaticReading = z.infer<typeof StaticReading>;
