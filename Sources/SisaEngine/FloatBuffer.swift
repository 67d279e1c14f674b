import Foundation

/// A fixed-size, 64-byte aligned, zero-initialised array of Float.
///
/// The engine's parameters, gradients, optimizer moments and activations all
/// live in a few of these: the llm.c layout (one buffer, named views) keeps
/// every hot loop on raw pointers, with no copy-on-write or bounds checks.
///
/// `@unchecked Sendable`: a raw allocation shared by the worker pool's
/// threads, each of which writes only the disjoint part of it a job gives
/// it (WorkerPool's determinism rule); the pool's barrier orders those
/// writes before the caller reads them.
public final class FloatBuffer: @unchecked Sendable {
    public let count: Int
    public let pointer: UnsafeMutablePointer<Float>

    /// `largePages`: start on a 2 MiB boundary and ask Linux for 2 MiB pages over
    /// the buffer's whole 2 MiB pages (transparent huge pages, which this kind of
    /// VM gives only on request). For what training streams through every step:
    /// activations, which the products read in strides that cross a 4 KiB page
    /// every few rows, trained weights, gradients and optimizer moments. Small's
    /// training ran 2% faster on Zen 4 (paired median of 8 interleaved rounds;
    /// 0-7% in five sets with every large buffer). Not for a frozen base, nor for the kernels'
    /// scratch: in this VM a fresh 2 MiB page can take the host milliseconds to
    /// back on first touch, and with a base's weights on them `score --base` of
    /// one line took 0.6-6.1 s instead of 1.0-1.3 s.
    public init(count: Int, largePages: Bool = false) {
        precondition(count >= 0)
        self.count = count
        var raw: UnsafeMutableRawPointer?
        let bytes = max(64, count * MemoryLayout<Float>.stride)
        let hugePages = largePages ? bytes / FloatBuffer.hugePage * FloatBuffer.hugePage : 0
        guard posix_memalign(&raw, hugePages > 0 ? FloatBuffer.hugePage : 64, bytes) == 0, let raw else {
            fatalError("out of memory allocating \(bytes) bytes")
        }
        #if os(Linux)
        if hugePages > 0 { _ = madvise(raw, hugePages, MADV_HUGEPAGE) }
        #endif
        memset(raw, 0, bytes)
        pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
    }

    /// A buffer of a model's activations: on large pages (see `init`).
    public static func activation(_ count: Int) -> FloatBuffer { FloatBuffer(count: count, largePages: true) }

    deinit { free(pointer) }

    /// Bytes in one of Linux's large pages on x86-64 (and arm64 with 4 KiB base pages).
    static let hugePage = 2 << 20

    public subscript(i: Int) -> Float {
        get { pointer[i] }
        set { pointer[i] = newValue }
    }

    public func zero() { memset(pointer, 0, count * MemoryLayout<Float>.stride) }

    public func copy(from other: FloatBuffer) {
        precondition(other.count == count)
        memcpy(pointer, other.pointer, count * MemoryLayout<Float>.stride)
    }

    public var array: [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }

    /// The raw little-endian bytes (x86-64 and arm64 are little-endian).
    public var bytes: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: pointer, count: count * MemoryLayout<Float>.stride)
    }
}
