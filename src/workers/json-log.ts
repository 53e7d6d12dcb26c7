/**
 * Worker logs as JSON lines: one object per line with the time, level, message and the SDK's context
 * (workflowId, runId, workflowType, activityId, activityType, taskQueue …), so logs can be searched by
 * the ids the Web UI shows.
 */
import type { LogEntry } from '@temporalio/worker';

/** The JSON line for one log entry. Values the SDK passes that JSON cannot hold are turned into strings. */
export function formatJsonLogLine(entry: LogEntry, process = 'worker'): string {
  const ts = new Date(Number(entry.timestampNanos / 1_000_000n)).toISOString();
  const line: Record<string, unknown> = { ts, level: entry.level.toLowerCase(), process, msg: entry.message };
  for (const [key, value] of Object.entries(entry.meta ?? {})) {
    if (key in line) continue;
    if (value instanceof Error) line[key] = { name: value.name, message: value.message };
    else if (typeof value === 'bigint') line[key] = value.toString();
    else line[key] = value;
  }
  try {
    return JSON.stringify(line);
  } catch {
    return JSON.stringify({
      ts,
      level: line.level,
      process,
      msg: entry.message,
      unserialisable: Object.keys(entry.meta ?? {}),
    });
  }
}

/** A log function for the SDK's DefaultLogger that writes JSON lines to stdout (stderr for warnings and errors). */
export function jsonLogFunction(processName: string): (entry: LogEntry) => void {
  return (entry) => {
    const stream = entry.level === 'WARN' || entry.level === 'ERROR' ? process.stderr : process.stdout;
    stream.write(`${formatJsonLogLine(entry, processName)}\n`);
  };
}
