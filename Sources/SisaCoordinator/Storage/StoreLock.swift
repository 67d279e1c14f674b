import Foundation

/// An exclusive advisory lock (flock) on `<store>/lock` for commands that
/// write: a second writer fails at once with a clear message instead of
/// interleaving. The kernel drops the lock if the holder dies, even by SIGKILL.
final class StoreLock {
    private let fd: Int32

    init(storeDir: URL, command: String) throws {
        let path = storeDir.appendingPathComponent("lock").path
        fd = open(path, O_RDWR | O_CREAT, 0o644)
        guard fd >= 0 else { throw CoordinatorError.io("\(path): cannot open lock file") }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let holder = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            close(fd)
            throw CoordinatorError.locked("the store at \(storeDir.path) is in use by another sisa process\(holder.isEmpty ? "" : " (\(holder))"); try again when it finishes")
        }
        ftruncate(fd, 0)
        let note = "pid \(getpid()): sisa \(command)\n"
        _ = note.withCString { write(fd, $0, strlen($0)) }
    }

    deinit {
        flock(fd, LOCK_UN)
        close(fd)
    }
}
