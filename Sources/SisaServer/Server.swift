import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOPosix
import SisaCoordinator
import SisaEngine

/// `sisa serve`: the store's single writer, answering over HTTP/JSON under /v1.
///
/// Three connections to the catalog, one per concern: the worker's (holds
/// the store lock: CLI writers are refused with a message naming the
/// server), the submissions' (short transactions; SQLite serialises them
/// with the worker's), and the readers' (queries, status, tokens: WAL
/// snapshots, never waiting for training).
///
/// `@unchecked Sendable`: every field is immutable after `init`. The stores
/// are each used from one concern (the worker's by `DeletionWorker`'s
/// thread, the submissions' only with `submitLock` held, the readers' for
/// read-only statements, which SQLite's serialized mode makes safe).
public final class SisaServer: @unchecked Sendable {
    public struct Options: Sendable {
        public var host = "127.0.0.1"
        public var port = 8080
        /// Seconds to wait after a deletion request so close ones share a retraining.
        public var coalesce = 1.0
        /// Shards retrained in parallel by the deletion worker.
        public var jobs = 1
        /// Where the deletion worker retrains (nil: this machine, `jobs` shards at a time).
        public var executor: ShardExecutor?
        /// Threads that run queries and scores (the inference executor).
        public var inferenceThreads = ProcessInfo.processInfo.activeProcessorCount
        /// The page's cookie is marked Secure (a TLS proxy in front terminates HTTPS),
        /// and failed sign-ins are counted per the client address the proxy forwards.
        public var behindTLSProxy = false
        /// Seconds a connection may stay idle (no bytes read) before it is closed.
        public var idleTimeout = 30.0
        /// Largest body of `POST /v1/records` (other bodies: Hummingbird's 2 MiB).
        public var maxIngestBytes = 64 << 20
        /// Failed authentications per address and minute answered at once (later ones are slowed down).
        public var freeAuthFailures = AuthFailures.freeAttempts
        public init() {}
    }

    let url: URL
    let options: Options
    let worker: Store
    let submissions: Store
    let readers: Store
    let deletions: DeletionWorker
    let models: ModelCache
    /// Queries and scores run here, not on Swift's cooperative pool (one
    /// thread per core): a forward pass holds its thread for milliseconds to
    /// seconds, and on the cooperative pool a few of them would stall every
    /// other handler, /v1/health included, and the HTTP event loops' tasks.
    let inference: NIOThreadPool
    /// The submissions' writes run here (one thread), not on the cooperative
    /// pool either: a write can wait seconds for SQLite's lock (the worker's
    /// transactions) and an ingest runs for as long as its body takes.
    let writes: NIOThreadPool
    let metrics: ServerMetrics
    let page: StatusPage
    let logger: Logger
    private let submitLock = NSLock()

    public init(store url: URL, options: Options) throws {
        self.url = url
        self.options = options
        worker = try Store.open(at: url, writer: "serve on http://\(options.host):\(options.port)")
        submissions = try Store.open(at: url)
        readers = try Store.open(at: url)
        models = ModelCache(store: readers)
        metrics = ServerMetrics(freeAuthFailures: options.freeAuthFailures)
        inference = NIOThreadPool(numberOfThreads: max(1, options.inferenceThreads))
        inference.start()
        writes = NIOThreadPool(numberOfThreads: 1)
        writes.start()
        page = try StatusPage(store: readers)
        let metrics = self.metrics
        let models = self.models
        // Notes only: ids, counts, shards, seconds. Request bodies (record text) are never logged.
        let logger = Logger(label: "sisa.serve")
        self.logger = logger
        deletions = DeletionWorker(store: worker, coalesce: options.coalesce, jobs: options.jobs, executor: options.executor,
                                   retrained: {
                                       metrics.recordRetraining(seconds: $0)
                                       // Swap the new models in now, not in the next query.
                                       do { try models.preload() } catch { logger.warning("preloading models: \(error)") }
                                   }) { note in logger.info("\(note)") }
    }

    /// A write on the submissions' connection, on the writes' thread: one at
    /// a time (a transaction spans several statements on it).
    func submit<R: Sendable>(_ body: @escaping @Sendable (Store) throws -> R) async throws -> R {
        try await writes.runIfActive { [self] in try submitLock.withLock { try body(submissions) } }
    }

    /// Revokes a token (its sessions end with it), as `sisa token revoke` does.
    public func revoke(tokenNamed name: String) throws {
        try submitLock.withLock { try submissions.revokeToken(name: name) }
    }

    /// The delay the next failed authentication from `client` would get (and records it).
    public func authFailureDelay(client: String, now: Double) -> Double {
        metrics.authFailures.delay(for: client, now: now)
    }

    /// Runs until SIGTERM or SIGINT (which drain in-flight requests first).
    /// `ready` gets the bound port (useful with port 0).
    public func run(ready: @escaping @Sendable (Int) -> Void = { _ in }) async throws {
        // The first queries should not pay for decompressing every shard.
        do { try models.preload() } catch { logger.warning("preloading models: \(error)") }
        try await buildApplication(ready: ready).runService()
    }

    deinit {
        inference.shutdownGracefully { _ in }
        writes.shutdownGracefully { _ in }
    }

    /// The application: the router, the HTTP server's settings, and the
    /// deletion worker as a service of its lifecycle (started with it; on
    /// SIGTERM the server drains first, then the worker stops, abandoning a
    /// retraining in progress: the queue is durable and the next start
    /// completes it, as after a crash).
    public func buildApplication(ready: @escaping @Sendable (Int) -> Void = { _ in }) -> some ApplicationProtocol {
        Application(router: buildRouter(),
                    server: .http1(configuration: .init(idleTimeout: .milliseconds(Int64(options.idleTimeout * 1000)))),
                    configuration: .init(address: .hostname(options.host, port: options.port), serverName: "sisa"),
                    services: [deletions],
                    onServerRunning: { channel in ready(channel.localAddress?.port ?? -1) },
                    logger: logger)
    }

    /// Every route, in a group that names the role it needs; a method a path
    /// does not declare is a 405 with `Allow` (`MethodNotAllowed`).
    public func buildRouter() -> Router<SisaContext> {
        buildRoutes(methodNotAllowed: MethodNotAllowed(operations: declaredOperations()))
    }

    /// The operations the server declares ("GET /v1/status", ...): what
    /// docs/openapi.yaml must list, no more, no less.
    public func declaredOperations() -> [String] {
        buildRoutes(methodNotAllowed: nil).routes.map { "\($0.method.rawValue) \($0.path.description)" }.sorted()
    }

    private func buildRoutes(methodNotAllowed: MethodNotAllowed?) -> Router<SisaContext> {
        let router = Router(context: SisaContext.self)
        if let methodNotAllowed { router.add(middleware: methodNotAllowed) }
        router.add(middleware: RequestTiming(metrics: metrics))
        router.add(middleware: ErrorMapping())
        let status = StatusController(server: self)
        status.addPublicRoutes(to: router.group("/v1"))
        PageController(server: self).addRoutes(to: router)
        let api = router.group("/v1").add(middleware: TokenAuth(tokens: { [readers] in try readers.authenticate($0) },
                                                                 failures: metrics.authFailures, behindProxy: options.behindTLSProxy))
        let reading = api.group().add(middleware: RequireRole(action: .read))
        status.addRoutes(to: reading)
        QueryController(server: self).addRoutes(to: reading)
        RecordsController(server: self).addReaderRoutes(to: reading)
        DeletionsController(server: self).addRoutes(to: api.group().add(middleware: RequireRole(action: .delete)))
        RecordsController(server: self).addAdminRoutes(to: api.group().add(middleware: RequireRole(action: .administer)))
        return router
    }
}
