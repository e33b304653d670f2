// Shared test helpers. Nothing here asserts: it only gives tests what they need to assert on.

/** Runs fn and returns what it threw; fails the test if it did not throw. */
export function thrown(fn: () => unknown): any {
  try {
    fn()
  } catch (err) {
    return err
  }
  throw new Error('expected the call to throw, it returned')
}

/** Like `thrown`, for promises. */
export async function rejected(p: Promise<unknown>): Promise<any> {
  try {
    await p
  } catch (err) {
    return err
  }
  throw new Error('expected the promise to reject, it resolved')
}

/** A pino destination that keeps parsed NDJSON records for assertions. */
export function logSink(): { records: Record<string, unknown>[]; write(line: string): void } {
  const records: Record<string, unknown>[] = []
  return {
    records,
    write(line: string) {
      for (const l of line.split('\n')) if (l.trim() !== '') records.push(JSON.parse(l))
    },
  }
}
