// What the benchmark prints and writes: the tables, the chart, the machine it ran on.
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import type { LoadResult } from './load';
import type { ScenarioOutcome } from './scenarios';

const n0 = (value: number) => Math.round(value).toLocaleString('en-US');
const ms = (value: number) => (value >= 100 ? value.toFixed(0) : value.toFixed(value < 1 ? 2 : 1));
const pct = (value: number) => `${(value * 100).toFixed(value < 0.1 ? 1 : 0)}%`;

function table(header: string[], rows: string[][], leftColumns = 1): string {
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells.map((cell, i) => (i < leftColumns ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0))).join('  ');
  return [line(header), line(widths.map((width) => '-'.repeat(width))), ...rows.map(line)].join('\n');
}

/** The main table: one row per scenario, throughput also as a fraction of the ceiling. */
export function scenarioTable(outcomes: readonly ScenarioOutcome[], ceilingRps: number | undefined): string {
  const rows = outcomes.map((outcome) => {
    const r = outcome.result;
    if (!r) return [`${outcome.title} (skipped¹)`, '-', '-', '-', '-', '-', '-', '-'];
    return [
      outcome.title,
      n0(r.requestsPerSecond),
      ms(r.latencyMs.p50),
      ms(r.latencyMs.p95),
      ms(r.latencyMs.p99),
      n0(r.errors),
      n0(r.unexpectedStatus),
      ceilingRps ? pct(r.requestsPerSecond / ceilingRps) : '',
    ];
  });
  const header = ['scenario', 'req/s', 'p50 ms', 'p95 ms', 'p99 ms', 'errors', 'non-2xx', 'of ceiling'];
  return [table(header, rows), ...skipNotes(outcomes)].join('\n');
}

function skipNotes(outcomes: readonly (ScenarioOutcome | undefined)[]): string[] {
  return outcomes
    .filter((outcome): outcome is ScenarioOutcome => outcome?.skipped !== undefined)
    .map((outcome) => `¹ ${outcome.title}: ${outcome.skipped}`);
}

export interface IndexComparisonRow {
  title: string;
  without?: ScenarioOutcome | undefined;
  with?: ScenarioOutcome | undefined;
  /** EXPLAIN ANALYZE of the main query, run alone after each load: the seed's "500 ms → 5 ms" form. */
  plans?: { without: string[]; with: string[] } | undefined;
}

/** The "Execution Time" of an EXPLAIN ANALYZE, in ms. */
export function executionMs(plan: readonly string[] | undefined): number | undefined {
  const line = plan?.find((one) => one.startsWith('Execution Time:'));
  return line ? Number(/([\d.]+) ms/.exec(line)?.[1]) : undefined;
}

/** with ÷ without; when nothing completed without the indexes, a lower bound. */
function ratio(without: LoadResult, withIndexes: LoadResult): string {
  if (without.requests === 0) return `> ${(withIndexes.requestsPerSecond * without.seconds).toFixed(0)}×`;
  const times = withIndexes.requestsPerSecond / without.requestsPerSecond;
  return `${times.toFixed(times >= 100 ? 0 : 2)}×`;
}

const rate = (value: number) => (value < 10 ? value.toFixed(1) : n0(value));

/** Throughput and p50 without and with the seed's indexes, and their ratio (same data, same run). */
export function indexTable(rows: readonly IndexComparisonRow[]): string {
  const header = [
    'scenario',
    'req/s without',
    'req/s with',
    'with ÷ without',
    'p50 ms without',
    'p50 ms with',
    'query ms without',
    'query ms with',
    'query speed-up',
    'non-2xx',
  ];
  const body = rows.map((row) => {
    const a = row.without?.result;
    const b = row.with?.result;
    if (!a || !b) return [`${row.title} (skipped¹)`, '-', '-', '-', '-', '-', '-', '-', '-', '-'];
    const queryWithout = executionMs(row.plans?.without);
    const queryWith = executionMs(row.plans?.with);
    return [
      row.title,
      rate(a.requestsPerSecond),
      rate(b.requestsPerSecond),
      ratio(a, b),
      a.requests === 0 ? 'none done' : ms(a.latencyMs.p50),
      ms(b.latencyMs.p50),
      queryWithout === undefined ? '-' : ms(queryWithout),
      queryWith === undefined ? '-' : ms(queryWith),
      queryWithout && queryWith ? `${(queryWithout / queryWith).toFixed(0)}×` : '-',
      `${a.unexpectedStatus}, ${b.unexpectedStatus}`,
    ];
  });
  return [table(header, body), ...skipNotes(rows.map((row) => row.without))].join('\n');
}

export interface ScaleOutRun {
  label: string;
  /** The route every client called. */
  path: string;
  instances: number;
  /** The pool size per instance, and where it came from. */
  poolPerInstance: string;
  clients: number;
  result: LoadResult;
  /** Client connections the server had at the busiest sample (pg_stat_activity, every 50 ms). */
  peakConnections: number;
  peakAppConnections: number;
  instanceErrors: string[];
}

const successes = (r: LoadResult) =>
  Object.entries(r.statusCounts)
    .filter(([status]) => status.startsWith('2'))
    .reduce((sum, [, count]) => sum + count, 0);

/** One row per configuration: throughput, answers that were errors, and the connections it took. */
export function scaleOutTable(runs: readonly ScaleOutRun[]): string {
  return table(
    [
      'configuration',
      'pool per instance',
      'req/s',
      '2xx/s',
      'p50 ms',
      'p99 ms',
      'conn. errors',
      'non-2xx',
      'peak conns (app)',
    ],
    runs.map((run) => {
      const r = run.result;
      return [
        run.label,
        run.poolPerInstance,
        n0(r.requestsPerSecond),
        n0(successes(r) / r.seconds),
        ms(r.latencyMs.p50),
        ms(r.latencyMs.p99),
        n0(r.errors),
        `${n0(r.unexpectedStatus)}${r.statusCounts['503'] ? ` (${n0(r.statusCounts['503'])} × 503)` : ''}`,
        `${run.peakConnections} (${run.peakAppConnections})`,
      ];
    }),
    2,
  );
}

/** The lines of a plan worth reading at a glance: scans, sorts, and the totals. */
export function planSummary(plan: readonly string[]): string[] {
  return plan.filter((line, i) => i === 0 || /Scan|Sort Method|Execution Time|Planning Time/.test(line));
}

/** A horizontal bar chart of requests per second, with the ceiling drawn as a line. */
export function chartSvg(title: string, outcomes: readonly ScenarioOutcome[], ceilingRps: number | undefined): string {
  const bars = outcomes.filter((outcome) => outcome.result);
  const max = Math.max(ceilingRps ?? 0, ...bars.map((bar) => bar.result?.requestsPerSecond ?? 0), 1);
  const labelWidth = 260;
  const plotWidth = 520;
  const rowHeight = 26;
  const top = 48;
  const height = top + bars.length * rowHeight + 40;
  const x = (value: number) => labelWidth + (value / max) * plotWidth;
  const xmlText = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${labelWidth + plotWidth + 120}" height="${height}" font-family="sans-serif" font-size="13">`,
    '<rect width="100%" height="100%" fill="white"/>',
    `<text x="10" y="24" font-size="15" font-weight="bold">${xmlText(title)}</text>`,
  ];
  bars.forEach((bar, i) => {
    const y = top + i * rowHeight;
    const rps = bar.result?.requestsPerSecond ?? 0;
    parts.push(
      `<text x="${labelWidth - 8}" y="${y + 16}" text-anchor="end">${xmlText(bar.title)}</text>`,
      `<rect x="${labelWidth}" y="${y + 4}" width="${Math.max(1, x(rps) - labelWidth).toFixed(1)}" height="${rowHeight - 8}" fill="#4a7ab5"/>`,
      `<text x="${(x(rps) + 6).toFixed(1)}" y="${y + 16}">${n0(rps)}/s</text>`,
    );
  });
  if (ceilingRps) {
    const cx = x(ceilingRps).toFixed(1);
    parts.push(
      `<line x1="${cx}" y1="${top - 6}" x2="${cx}" y2="${top + bars.length * rowHeight}" stroke="#c0392b" stroke-width="2" stroke-dasharray="6 4"/>`,
      `<text x="${cx}" y="${top + bars.length * rowHeight + 18}" text-anchor="middle" fill="#c0392b">ceiling (select 1): ${n0(ceilingRps)}/s</text>`,
    );
  }
  parts.push('</svg>');
  return parts.join('\n');
}

export interface MachineInfo {
  cpus: number;
  cpuModel: string;
  memory: string;
  node: string;
  os: string;
  loadAverage: number[];
}

/** `nproc`, `free -h` and the Node version, as the README quotes them. */
export function machineInfo(): MachineInfo {
  const run = (command: string, args: string[]) => {
    try {
      return execFileSync(command, args, { encoding: 'utf8' }).trim();
    } catch {
      return '';
    }
  };
  const memory = run('free', ['-h']).split('\n')[1]?.replace(/\s+/g, ' ') ?? '';
  return {
    cpus: Number(run('nproc', [])) || os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memory: memory || `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB total`,
    node: process.version,
    os: `${os.type()} ${os.release()}`,
    loadAverage: os.loadavg().map((value) => Math.round(value * 100) / 100),
  };
}
