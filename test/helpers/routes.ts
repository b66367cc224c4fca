// The route table as tests walk it: a template's parameters, a URL with them filled in, and a
// bounded number of requests in flight (fast, without queueing everything on the pool).

const PARAM = /\{\*{0,2}([A-Za-z_]\w*)[^}]*\}/g;

/** `enrollments/{enrollmentId}/progress/{moduleId}` → `['enrollmentId', 'moduleId']` */
export function paramNames(route: string): string[] {
  return [...route.matchAll(PARAM)].map((match) => match[1] as string);
}

/** The URL of a route template with its parameters filled in by `valueFor(name, literal before it)`. */
export function pathOf(route: string, valueFor: (name: string, segmentBefore: string | undefined) => string): string {
  const segments = route.split('/');
  return `/${segments
    .map((segment, index) =>
      segment.replace(PARAM, (_whole, name: string) => encodeURIComponent(valueFor(name, segments[index - 1]))),
    )
    .join('/')}`;
}

/** Runs `tasks` with at most `concurrency` in flight; results in the tasks' order. */
export async function inBatches<T>(tasks: (() => Promise<T>)[], concurrency: number): Promise<T[]> {
  const results: T[] = new Array(tasks.length);
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) {
      const index = next++;
      results[index] = await (tasks[index] as () => Promise<T>)();
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, tasks.length) }, worker));
  return results;
}
