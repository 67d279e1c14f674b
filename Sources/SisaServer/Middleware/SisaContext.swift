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
