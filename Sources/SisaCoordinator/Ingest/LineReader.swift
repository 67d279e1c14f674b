import Foundation

/// The lines of a file, read a chunk at a time: memory is bounded by the chunk
/// and the longest line, not the file, so a million-record input is parsed in
/// a few megabytes.
///
/// Lines come without their terminators ("\n" or "\r\n") and with 1-based
/// numbers; a last line without a newline is still a line. A line longer
/// than `maxLineBytes` is an error naming the file and line, before it is
/// buffered whole: a file without newlines cannot take the machine's memory.
/// A UTF-8 byte order mark at the start of the file is not part of the first line.
final class LineReader {
    static let chunkBytes = 1 << 20
    /// The longest line (one record, or one line of a fortune) accepted.
    let maxLineBytes: Int
    let path: String
    private let fd: Int32
    private var buffer: [UInt8] = []
    /// Where the unread part of `buffer` starts.
    private var start = 0
    private var atEOF = false
    private var number = 0
    /// Bytes read from the file so far (for progress).
    private(set) var bytesRead = 0

    init(path: String, maxLineBytes: Int = 64 << 20) throws {
        self.path = path
        self.maxLineBytes = maxLineBytes
        fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw CoordinatorError.invalidInput("\(path): cannot read (\(String(cString: strerror(errno))))")
        }
    }

    deinit { _ = Foundation.close(fd) }

    /// The error of the next line when it passes `maxLineBytes`.
    private func overlong() -> CoordinatorError {
        .invalidInput("\(path):\(number + 1): line longer than \(maxLineBytes >> 20) MiB (one record per line, at most \(maxLineBytes >> 20) MiB)")
    }

    /// Calls `body` with each line; the buffer is only valid during the call.
    func forEach(_ body: (_ number: Int, _ line: UnsafeBufferPointer<UInt8>) throws -> Void) throws {
        while true {
            // The next newline in what is buffered, reading more until one is found or the file ends.
            var newline: Int?
            var searchFrom = start
            while true {
                newline = buffer.withUnsafeBufferPointer { b -> Int? in
                    guard searchFrom < b.count,
                          let p = memchr(b.baseAddress! + searchFrom, 0x0A, b.count - searchFrom) else { return nil }
                    return b.baseAddress!.distance(to: p.assumingMemoryBound(to: UInt8.self))
                }
                if newline != nil || atEOF { break }
                if buffer.count - start > maxLineBytes {
                    throw overlong()
                }
                searchFrom = buffer.count - start
                try refill()
            }
            let end = newline ?? buffer.count
            if newline == nil && start >= buffer.count { return }
            if end - start > maxLineBytes {
                throw overlong()
            }
            number += 1
            var lineEnd = end
            if lineEnd > start && buffer[lineEnd - 1] == 0x0D { lineEnd -= 1 }
            let (s, n) = (start, number)
            try buffer.withUnsafeBufferPointer { b in
                try body(n, UnsafeBufferPointer(rebasing: b[s..<lineEnd]))
            }
            start = newline.map { $0 + 1 } ?? buffer.count
        }
    }

    /// Drops what was consumed and appends the next chunk; sets `atEOF` at the end.
    private func refill() throws {
        if start > 0 {
            buffer.removeSubrange(0..<start)
            start = 0
        }
        let old = buffer.count
        // (No reserveCapacity: an exact reservation per chunk would turn off
        // the array's doubling and copy a long line's whole buffer per chunk.)
        var got = 0
        buffer.append(contentsOf: repeatElement(0, count: LineReader.chunkBytes))
        while true {
            got = buffer.withUnsafeMutableBufferPointer { b in read(fd, b.baseAddress! + old, LineReader.chunkBytes) }
            if got >= 0 || errno != EINTR { break }
        }
        guard got >= 0 else {
            buffer.removeSubrange(old...)
            throw CoordinatorError.invalidInput("\(path): read failed (\(String(cString: strerror(errno))))")
        }
        buffer.removeSubrange((old + got)...)
        // Editors on Windows start UTF-8 files with EF BB BF; it is not text.
        if bytesRead == 0, buffer[old..<(old + got)].starts(with: RecordParser.byteOrderMark) {
            start = old + RecordParser.byteOrderMark.count
        }
        bytesRead += got
        if got == 0 { atEOF = true }
    }
}
