// `seed --dashboard PORT`: the deploy page, its live updates as server-sent events, the deploy as
// JSON and Prometheus metrics, served on the --bind address with node:http.
import * as Http from "node:http"
import { Deploy } from "@ezio/peer"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { DashboardError } from "../errors.js"
import { page } from "./page.js"

export interface DashboardOptions {
  readonly host: string
  readonly port: number
  readonly title: string
  readonly deploy: Deploy.Deploy
  /** The body of `/metrics`, rendered per request from the latest snapshot. */
  readonly metrics: (snapshot: Deploy.Snapshot) => string
}

export interface Dashboard {
  readonly port: number
  readonly url: string
}

export const make = (options: DashboardOptions) =>
  Effect.gen(function* () {
    const html = page(options.title)
    const clients = new Set<Http.ServerResponse>()
    let snapshot = yield* options.deploy.snapshot.get
    let latest = JSON.stringify(Deploy.toJson(snapshot))
    const server = Http.createServer((request, response) => {
      const path = (request.url ?? "/").split("?")[0]
      if (request.method !== "GET") {
        response.writeHead(405, { allow: "GET" }).end()
      } else if (path === "/" || path === "/index.html") {
        response.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(html)
      } else if (path === "/api/deploy") {
        response.writeHead(200, { "content-type": "application/json" }).end(latest)
      } else if (path === "/metrics") {
        response
          .writeHead(200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" })
          .end(options.metrics(snapshot))
      } else if (path === "/events") {
        response.writeHead(200, {
          "content-type": "text/event-stream",
          "cache-control": "no-cache",
          connection: "keep-alive"
        })
        response.write(`retry: 2000\ndata: ${latest}\n\n`)
        clients.add(response)
        request.on("close", () => clients.delete(response))
      } else {
        response.writeHead(404, { "content-type": "text/plain" }).end("not found\n")
      }
    })
    const port = yield* Effect.acquireRelease(
      Effect.async<number, DashboardError>((resume) => {
        server.once("error", (cause) =>
          resume(Effect.fail(new DashboardError({ address: `${options.host}:${options.port}`, cause })))
        )
        server.listen({ host: options.host, port: options.port }, () => {
          const address = server.address()
          resume(Effect.succeed(typeof address === "object" && address !== null ? address.port : 0))
        })
      }),
      () =>
        Effect.async<void>((resume) => {
          // the last state goes out first, so an open page shows how the deploy ended
          const final = Effect.runSync(options.deploy.snapshot.get)
          for (const c of clients) c.end(`data: ${JSON.stringify(Deploy.toJson(final))}\n\n`)
          server.close(() => resume(Effect.void))
          server.closeAllConnections()
        })
    )
    yield* options.deploy.snapshot.changes.pipe(
      Stream.runForEach((next) =>
        Effect.sync(() => {
          snapshot = next
          latest = JSON.stringify(Deploy.toJson(next))
          for (const c of clients) c.write(`data: ${latest}\n\n`)
        })
      ),
      Effect.forkScoped
    )
    const shown = options.host === "0.0.0.0" || options.host === "::" ? "127.0.0.1" : options.host
    return { port, url: `http://${shown.includes(":") ? `[${shown}]` : shown}:${port}/` } satisfies Dashboard
  })
