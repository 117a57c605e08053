/**
 * Compares two V8 heap snapshots of the same thread (`node dist/bench/heap-compare.js before.heapsnapshot
 * after.heapsnapshot [--top n] [--paths n]`), e.g. those heap-snapshot-hook writes: per constructor,
 * object counts, self sizes and retained sizes in each, sorted by growth; then, for the constructors
 * with most objects new since the first snapshot (V8 keeps an object's id across snapshots of one
 * heap), the shortest retainer path of one of those objects from the GC roots. Retained sizes come
 * from the dominator tree over strong edges (weak edges do not retain), as in DevTools; a
 * constructor's retained size counts only the objects not dominated by another of the same.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

interface RawSnapshot {
  snapshot: {
    meta: {
      node_fields: string[];
      node_types: [string[], ...unknown[]];
      edge_fields: string[];
      edge_types: [string[], ...unknown[]];
    };
  };
  nodes: number[];
  edges: number[];
  strings: string[];
}

interface Heap {
  readonly count: number;
  readonly ids: Float64Array;
  readonly selfSize: Float64Array;
  readonly key: string[];
  /** Strong out-edges: targets of node i are edgeTo[edgeStart[i] .. edgeStart[i + 1]). */
  readonly edgeStart: Uint32Array;
  readonly edgeTo: Uint32Array;
  readonly edgeName: string[];
  readonly retained: Float64Array;
  readonly dominator: Int32Array;
}

/** The grouping DevTools' summary uses, roughly: objects by constructor, the rest by kind. */
function groupKey(type: string, name: string): string {
  if (type === 'object' || type === 'native') return name;
  if (type === 'closure') return `(closure) ${name || '(anonymous)'}`;
  return `(${type})`;
}

function load(file: string): Heap {
  const raw = JSON.parse(readFileSync(file, 'utf8')) as RawSnapshot;
  const { meta } = raw.snapshot;
  const nf = meta.node_fields.length;
  const ef = meta.edge_fields.length;
  const [nType, nName, nId, nSize, nEdges] = ['type', 'name', 'id', 'self_size', 'edge_count'].map((f) =>
    meta.node_fields.indexOf(f),
  ) as [number, number, number, number, number];
  const [eType, eName, eTo] = ['type', 'name_or_index', 'to_node'].map((f) =>
    meta.edge_fields.indexOf(f),
  ) as [number, number, number];
  const nodeTypes = meta.node_types[0];
  const edgeTypes = meta.edge_types[0];
  const count = raw.nodes.length / nf;
  const ids = new Float64Array(count);
  const selfSize = new Float64Array(count);
  const key: string[] = new Array(count);
  const edgeStart = new Uint32Array(count + 1);
  const to: number[] = [];
  const edgeName: string[] = [];
  let e = 0;
  for (let i = 0; i < count; i++) {
    const at = i * nf;
    ids[i] = raw.nodes[at + nId] ?? 0;
    selfSize[i] = raw.nodes[at + nSize] ?? 0;
    key[i] = groupKey(
      nodeTypes[raw.nodes[at + nType] ?? 0] ?? '?',
      raw.strings[raw.nodes[at + nName] ?? 0] ?? '',
    );
    edgeStart[i] = to.length;
    const edges = raw.nodes[at + nEdges] ?? 0;
    for (let k = 0; k < edges; k++, e++) {
      const type = edgeTypes[raw.edges[e * ef + eType] ?? 0];
      if (type === 'weak') continue;
      const nameOrIndex = raw.edges[e * ef + eName] ?? 0;
      to.push((raw.edges[e * ef + eTo] ?? 0) / nf);
      edgeName.push(
        type === 'element' || type === 'hidden' ? `[${nameOrIndex}]` : (raw.strings[nameOrIndex] ?? ''),
      );
    }
  }
  edgeStart[count] = to.length;
  const edgeTo = Uint32Array.from(to);
  const { dominator, retained } = dominators(count, edgeStart, edgeTo, selfSize);
  return { count, ids, selfSize, key, edgeStart, edgeTo, edgeName, retained, dominator };
}

/** Immediate dominators from node 0 (the synthetic root): Cooper, Harvey and Kennedy's iteration. */
function dominators(count: number, edgeStart: Uint32Array, edgeTo: Uint32Array, selfSize: Float64Array) {
  // Post-order by an iterative depth-first search.
  const order = new Int32Array(count).fill(-1);
  const post: number[] = [];
  const stack: number[] = [0];
  const next = new Uint32Array(count);
  const seen = new Uint8Array(count);
  seen[0] = 1;
  for (let i = 0; i < count; i++) next[i] = edgeStart[i] ?? 0;
  while (stack.length > 0) {
    const v = stack[stack.length - 1] ?? 0;
    if ((next[v] ?? 0) < (edgeStart[v + 1] ?? 0)) {
      const w = edgeTo[next[v] ?? 0] ?? 0;
      next[v] = (next[v] ?? 0) + 1;
      if (!seen[w]) {
        seen[w] = 1;
        stack.push(w);
      }
    } else {
      order[v] = post.length;
      post.push(v);
      stack.pop();
    }
  }
  const preds: number[][] = Array.from({ length: count }, () => []);
  for (let v = 0; v < count; v++) {
    if (order[v] === -1) continue;
    for (let k = edgeStart[v] ?? 0; k < (edgeStart[v + 1] ?? 0); k++) preds[edgeTo[k] ?? 0]?.push(v);
  }
  const dom = new Int32Array(count).fill(-1);
  dom[0] = 0;
  const intersect = (a0: number, b0: number) => {
    let a = a0;
    let b = b0;
    while (a !== b) {
      while ((order[a] ?? 0) < (order[b] ?? 0)) a = dom[a] ?? 0;
      while ((order[b] ?? 0) < (order[a] ?? 0)) b = dom[b] ?? 0;
    }
    return a;
  };
  for (let changed = true; changed; ) {
    changed = false;
    for (let i = post.length - 2; i >= 0; i--) {
      const v = post[i] ?? 0;
      let idom = -1;
      for (const p of preds[v] ?? []) {
        if (dom[p] === -1) continue;
        idom = idom === -1 ? p : intersect(p, idom);
      }
      if (idom !== -1 && dom[v] !== idom) {
        dom[v] = idom;
        changed = true;
      }
    }
  }
  const retained = Float64Array.from(selfSize);
  for (const v of post) {
    const d = dom[v] ?? -1;
    if (v !== 0 && d >= 0) retained[d] = (retained[d] ?? 0) + (retained[v] ?? 0);
  }
  return { dominator: dom, retained };
}

interface Group {
  count: number;
  self: number;
  retained: number;
  fresh: number;
  example: number;
}

function summarise(heap: Heap, before?: Set<number>): Map<string, Group> {
  const groups = new Map<string, Group>();
  for (let i = 1; i < heap.count; i++) {
    if ((heap.dominator[i] ?? -1) === -1) continue; // unreachable from the roots
    const key = heap.key[i] ?? '';
    let g = groups.get(key);
    if (!g) {
      g = { count: 0, self: 0, retained: 0, fresh: 0, example: -1 };
      groups.set(key, g);
    }
    g.count += 1;
    g.self += heap.selfSize[i] ?? 0;
    let d = heap.dominator[i] ?? 0;
    while (d !== 0 && heap.key[d] !== key) d = heap.dominator[d] ?? 0;
    if (d === 0) g.retained += heap.retained[i] ?? 0;
    if (before && !before.has(heap.ids[i] ?? 0)) {
      g.fresh += 1;
      g.example = i;
    }
  }
  return groups;
}

/** The shortest strong path from the root to `target`, breadth first. */
function retainerPath(heap: Heap, target: number): string {
  const from = new Int32Array(heap.count).fill(-1);
  const via = new Int32Array(heap.count).fill(-1);
  from[0] = 0;
  const queue = [0];
  for (let q = 0; q < queue.length && from[target] === -1; q++) {
    const v = queue[q] ?? 0;
    for (let k = heap.edgeStart[v] ?? 0; k < (heap.edgeStart[v + 1] ?? 0); k++) {
      const w = heap.edgeTo[k] ?? 0;
      if (from[w] !== -1) continue;
      from[w] = v;
      via[w] = k;
      queue.push(w);
    }
  }
  const steps: string[] = [];
  for (let v = target; v !== 0 && from[v] !== -1; v = from[v] ?? 0) {
    steps.push(`${heap.edgeName[via[v] ?? 0]} -> ${heap.key[v]} @${heap.ids[v]}`);
  }
  return steps.reverse().join('\n      ');
}

const kb = (bytes: number) => (bytes / 1024).toFixed(1);

function main(): void {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { top: { type: 'string', default: '25' }, paths: { type: 'string', default: '8' } },
  });
  const [beforeFile, afterFile] = positionals;
  if (!beforeFile || !afterFile)
    throw new Error('usage: heap-compare <before.heapsnapshot> <after.heapsnapshot>');
  const top = Number(values.top);
  const paths = Number(values.paths);
  const before = load(beforeFile);
  const after = load(afterFile);
  const beforeGroups = summarise(before);
  const afterGroups = summarise(after, new Set(before.ids));
  const total = (groups: Map<string, Group>) => [...groups.values()].reduce((s, g) => s + g.self, 0);
  console.log(`before: ${before.count} nodes, ${kb(total(beforeGroups))} KB live self size`);
  console.log(`after:  ${after.count} nodes, ${kb(total(afterGroups))} KB live self size`);
  const rows = [...new Set([...beforeGroups.keys(), ...afterGroups.keys()])].map((key) => {
    const b = beforeGroups.get(key);
    const a = afterGroups.get(key);
    return { key, b, a, dSelf: (a?.self ?? 0) - (b?.self ?? 0), dCount: (a?.count ?? 0) - (b?.count ?? 0) };
  });
  rows.sort((x, y) => y.dSelf - x.dSelf);
  console.log(
    '\n| constructor | count before | count after | Δ count | new since before | self KB before | self KB after | Δ self KB | retained KB before | retained KB after |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  const line = (r: (typeof rows)[number]) =>
    console.log(
      `| ${r.key.slice(0, 60)} | ${r.b?.count ?? 0} | ${r.a?.count ?? 0} | ${r.dCount} | ${r.a?.fresh ?? 0} | ${kb(r.b?.self ?? 0)} | ${kb(r.a?.self ?? 0)} | ${kb(r.dSelf)} | ${kb(r.b?.retained ?? 0)} | ${kb(r.a?.retained ?? 0)} |`,
    );
  for (const r of rows.slice(0, top)) line(r);
  console.log('| ... shrank most: | | | | | | | | | |');
  for (const r of rows.slice(-5)) line(r);
  console.log('\nObjects new since the first snapshot, most first, with one retainer path each:');
  const fresh = rows
    .filter((r) => (r.a?.fresh ?? 0) > 0)
    .sort((x, y) => (y.a?.fresh ?? 0) - (x.a?.fresh ?? 0));
  for (const r of fresh.slice(0, paths)) {
    console.log(`  ${r.key}: ${r.a?.fresh} new (count ${r.b?.count ?? 0} -> ${r.a?.count ?? 0})`);
    console.log(`      ${retainerPath(after, r.a?.example ?? 0)}`);
  }
}

main();
