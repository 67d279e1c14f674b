import ArgumentParser
import Foundation
import Logging
import SisaServer

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the store as a service: deletion requests, queries and status over HTTP/JSON (/v1).",
        discussion: """
        The server is the store's single writer: while it runs, CLI writers are refused with a message naming \
        it. Every endpoint but /v1/health needs `Authorization: Bearer TOKEN` (`sisa token create`): reader \
        (status, query, score, records), deleter (deletions), admin (ingest, train). The status page at / \
        signs people in with a token and keeps only a random session id in its cookie (8 hours; revoking \
        the token ends it). Repeated 401s from one address are slowed down. POST /v1/deletions answers 202 once the request \
        is durable and its shards are quarantined; a background worker retrains, requests within --coalesce \
        seconds sharing one retraining per shard. SIGTERM or SIGINT drains in-flight requests and stops. \
        Binds to loopback unless --host says otherwise.
        """)
    @OptionGroup var storeOptions: StoreOptions
    @Option(help: "Address to bind.") var host = "127.0.0.1"
    @Option(help: "Port (0: any free port; the bound one is printed).") var port = 8080
    @Option(help: "Seconds to wait after a deletion request so that close ones share one retraining.") var coalesce = 1.0
    @Option(help: "Shards the deletion worker retrains in parallel.") var jobs = 1
    @OptionGroup var executorOptions: ExecutorOptions
    @Option(help: "Threads answering queries and scores (default: one per core).")
    var inferenceThreads = ProcessInfo.processInfo.activeProcessorCount
    @Flag(help: ArgumentHelp("Mark the status page's session cookie Secure.",
                             discussion: "For a server reached through a TLS-terminating proxy: browsers then send the cookie over HTTPS only, and failed sign-ins are slowed down per client address as the proxy forwards it (the last X-Forwarded-For entry), not per proxy. The proxy must append that header."))
    var behindTLSProxy = false
    @Option(help: "Seconds a connection may stay idle (no bytes received) before the server closes it.")
    var idleTimeout = 30.0
    @Option(help: ArgumentHelp("Largest body of POST /v1/records, in MiB.",
                               discussion: "A larger one is refused with 413 before it is read whole. Other requests take at most 2 MiB."))
    var maxIngestMb = 64

    func run() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be in 0...65535") }
        guard coalesce >= 0, coalesce <= 3600 else { throw ValidationError("--coalesce must be in [0, 3600] seconds") }
        guard jobs >= 1 else { throw ValidationError("--jobs must be >= 1") }
        guard (1...256).contains(inferenceThreads) else { throw ValidationError("--inference-threads must be in 1...256") }
        guard idleTimeout > 0, idleTimeout <= 3600 else { throw ValidationError("--idle-timeout must be in (0, 3600] seconds") }
        guard (1...4096).contains(maxIngestMb) else { throw ValidationError("--max-ingest-mb must be in 1...4096") }
        var o = SisaServer.Options()
        o.host = host
        o.port = port
        o.coalesce = coalesce
        o.jobs = jobs
        o.inferenceThreads = inferenceThreads
        o.behindTLSProxy = behindTLSProxy
        o.idleTimeout = idleTimeout
        o.maxIngestBytes = maxIngestMb << 20
        o.executor = try executorOptions.make()
        // Logs go to stderr; stdout carries the one line that says where the server listens.
        LoggingSystem.bootstrap(StreamLogHandler.standardError)
        let server = try SisaServer(store: storeOptions.url, options: o)
        let done = DispatchSemaphore(value: 0)
        let failure = FailureBox()
        Task {
            do {
                try await server.run { bound in
                    // Unbuffered (FileHandle): scripts wait for this line.
                    FileHandle.standardOutput.write(Data("sisa serve: listening on http://\(host):\(bound) (store \(storeOptions.url.path))\n".utf8))
                }
            } catch {
                failure.error = error
            }
            done.signal()
        }
        done.wait()
        if let e = failure.error { throw e }
    }
}

/// `@unchecked Sendable`: written by the server task before it signals `done`,
/// read by the main thread only after `done.wait()`.
private final class FailureBox: @unchecked Sendable { var error: Error? }
