// The house rules of issue 13 as a test, so they stay true: every module in packages/*/src is
// small enough to read in one sitting, and no two modules import each other, type-only imports
// included (a cycle through `import type` still ties the two files together for a reader).
import * as NFS from "node:fs"
import * as NPath from "node:path"
import { describe, expect, it } from "vitest"

const root = NPath.resolve(import.meta.dirname, "..")
const MAX_LINES = 600

const sourceFiles = (): Array<string> => {
  const out: Array<string> = []
  const walk = (dir: string) => {
    for (const entry of NFS.readdirSync(dir, { withFileTypes: true })) {
      const path = NPath.join(dir, entry.name)
      if (entry.isDirectory()) walk(path)
      else if (/\.(ts|mts|mjs)$/.test(entry.name) && !entry.name.endsWith(".d.ts")) out.push(path)
    }
  }
  for (const pkg of NFS.readdirSync(NPath.join(root, "packages"))) {
    const src = NPath.join(root, "packages", pkg, "src")
    if (NFS.existsSync(src)) walk(src)
  }
  return out.sort()
}

// Static `import`/`export ... from` and dynamic `import("...")` of relative specifiers.
const SPECIFIER = /(?:^|\n)\s*(?:import|export)\b[^;"'`]*?from\s*["']([^"']+)["']|(?:^|\n)\s*import\s*["']([^"']+)["']|\bimport\(\s*["']([^"']+)["']\s*\)/g

const relativeImports = (file: string): Array<string> => {
  const text = NFS.readFileSync(file, "utf8")
  const found: Array<string> = []
  for (const m of text.matchAll(SPECIFIER)) {
    const spec = m[1] ?? m[2] ?? m[3]
    if (spec === undefined || !spec.startsWith(".")) continue
    const base = NPath.resolve(NPath.dirname(file), spec)
    const candidates = [base, base.replace(/\.js$/, ".ts"), base.replace(/\.mjs$/, ".mts"), `${base}.ts`, NPath.join(base, "index.ts")]
    const hit = candidates.find((c) => NFS.existsSync(c) && NFS.statSync(c).isFile())
    if (hit !== undefined) found.push(hit)
  }
  return found
}

/** Strongly connected components of more than one module (or a module importing itself). */
const cycles = (graph: Map<string, Array<string>>): Array<Array<string>> => {
  let index = 0
  const indices = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: Array<string> = []
  const onStack = new Set<string>()
  const result: Array<Array<string>> = []
  const connect = (v: string) => {
    indices.set(v, index)
    low.set(v, index)
    index++
    stack.push(v)
    onStack.add(v)
    for (const w of graph.get(v) ?? []) {
      if (!indices.has(w)) {
        connect(w)
        low.set(v, Math.min(low.get(v)!, low.get(w)!))
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, indices.get(w)!))
    }
    if (low.get(v) === indices.get(v)) {
      const component: Array<string> = []
      let w: string
      do {
        w = stack.pop()!
        onStack.delete(w)
        component.push(w)
      } while (w !== v)
      if (component.length > 1 || (graph.get(v) ?? []).includes(v)) result.push(component)
    }
  }
  for (const v of graph.keys()) if (!indices.has(v)) connect(v)
  return result
}

describe("repository structure", () => {
  const files = sourceFiles()
  const rel = (f: string) => NPath.relative(root, f)

  it("finds the sources", () => {
    expect(files.length).toBeGreaterThan(20)
  })

  it(`no module in packages/*/src is over ${MAX_LINES} lines`, () => {
    const long = files
      .map((f) => ({ file: rel(f), lines: NFS.readFileSync(f, "utf8").split("\n").length }))
      .filter((f) => f.lines > MAX_LINES)
    expect(long).toEqual([])
  })

  it("no import cycle between modules, type-only imports included", () => {
    const graph = new Map(files.map((f) => [f, relativeImports(f)]))
    expect(cycles(graph).map((c) => c.map(rel).sort())).toEqual([])
  })

  it("the cycle finder finds a cycle", () => {
    const graph = new Map([
      ["a", ["b"]],
      ["b", ["c"]],
      ["c", ["a"]],
      ["d", ["a"]]
    ])
    expect(cycles(graph).map((c) => c.sort())).toEqual([["a", "b", "c"]])
  })
})
