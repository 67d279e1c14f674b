import HTTPTypes
import Hummingbird
import NIOCore
import SisaCoordinator

/// The request context: who is calling (set by `TokenAuth` or the page's
/// session) and from where (for slowing down repeated failed sign-ins).
public struct SisaContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public var caller: (name: String, role: Role)?
    public let remoteAddress: SocketAddress?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        caller = nil
        remoteAddress = source.channel.remoteAddress
    }
}

extension SisaContext {
    static let forwardedFor = HTTPField.Name("X-Forwarded-For")!

    /// Who is asking, for `AuthFailures`: the connection's IP address. Behind
    /// a TLS proxy every connection is the proxy's, so the client is the
    /// address the proxy appended to X-Forwarded-For: the last entry, the only
    /// one the client cannot write (the earlier ones are whatever it sent).
    /// The header is believed only from a loopback peer, the proxy on this
    /// machine (a client reaching the port directly cannot pick its address);
    /// with several proxies the last entry is the nearest one's peer.
    func client(of request: Request, behindProxy: Bool) -> String {
        let peer = remoteAddress?.ipAddress
        // No peer address: an in-process test (HummingbirdTesting's router mode).
        let fromProxy = peer.map { $0 == "::1" || $0.hasPrefix("127.") || $0.hasPrefix("::ffff:127.") } ?? true
        if behindProxy, fromProxy, let header = request.headers[values: SisaContext.forwardedFor].last,
           let last = header.split(separator: ",").last?.trimmingCharacters(in: .whitespaces), !last.isEmpty {
            return last
        }
        return remoteAddress?.ipAddress ?? "unknown"
    }
}
