import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import XCTest

struct ServeClientError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The `sisa` binary built next to the tests (the CLI and server tests run it).
func sisaBinary() throws -> URL {
    let dir = URL(fileURLWithPath: ProcessInfo.processInfo.arguments[0]).deletingLastPathComponent()
    let candidates = [dir.appendingPathComponent("sisa"), dir.deletingLastPathComponent().appendingPathComponent("sisa")]
    guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0.path) }) else {
        throw ServeClientError("the sisa binary is not built next to the tests (run scripts/test)")
    }
    return found
}

/// Runs `sisa ARGUMENTS` to its end: exit status, stdout and stderr.
func runSisa(_ sisa: URL, _ args: [String], environment: [String: String] = [:]) throws -> (status: Int32, out: String, err: String) {
    let p = Process()
    p.executableURL = sisa
    p.arguments = args
    if !environment.isEmpty {
        p.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
    }
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}

/// Starts `sisa serve --port 0 ARGUMENTS` and returns it with its /v1
/// address (from its first line). Its stderr goes to `stderr`, or nowhere.
func startServe(_ sisa: URL, store: URL, arguments: [String] = ["--coalesce", "0.2"], stderr: Pipe? = nil,
                environment: [String: String] = [:]) throws -> (Process, URL) {
    let p = Process()
    p.executableURL = sisa
    p.arguments = ["serve", "--store", store.path, "--port", "0"] + arguments
    if !environment.isEmpty {
        p.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
    }
    let out = Pipe()
    p.standardOutput = out
    p.standardError = stderr ?? FileHandle.nullDevice
    try p.run()
    var line = Data()
    while !line.contains(UInt8(ascii: "\n")) {
        let chunk = out.fileHandleForReading.availableData
        if chunk.isEmpty { break }
        line += chunk
    }
    let text = String(decoding: line, as: UTF8.self)
    guard let port = text.split(separator: ":").last.flatMap({ Int($0.split(separator: " ")[0].trimmingCharacters(in: .whitespacesAndNewlines)) }) else {
        // A server that does not start fails the test that needed it: never a skip.
        p.terminate()
        throw ServeClientError("sisa serve did not start (its first line: \(text.isEmpty ? "none" : text))")
    }
    return (p, URL(string: "http://127.0.0.1:\(port)/v1")!)
}

/// One HTTP call, synchronously: (status, body).
func raw(_ method: String, _ url: URL, token: String? = nil, body: Any? = nil) throws -> (Int, Data?) {
    var req = URLRequest(url: url)
    req.httpMethod = method
    if let token { req.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
    if let body {
        req.httpBody = try JSONSerialization.data(withJSONObject: body)
        req.setValue("application/json", forHTTPHeaderField: "Content-Type")
    }
    let done = DispatchSemaphore(value: 0)
    nonisolated(unsafe) var result: (Int, Data?) = (0, nil)
    // A session per call: a shared one queues calls to the same host, and
    // the tests need truly concurrent requests.
    let session = URLSession(configuration: .ephemeral)
    defer { session.finishTasksAndInvalidate() }
    session.dataTask(with: req) { data, response, _ in
        result = ((response as? HTTPURLResponse)?.statusCode ?? 0, data)
        done.signal()
    }.resume()
    XCTAssertEqual(done.wait(timeout: .now() + 60), .success, "\(method) \(url) timed out")
    return result
}

/// One HTTP call, synchronously: (status, JSON object or nil).
func call(_ method: String, _ url: URL, token: String? = nil, body: Any? = nil) throws -> (Int, [String: Any]?) {
    let (status, data) = try raw(method, url, token: token, body: body)
    return (status, data.flatMap { try? JSONSerialization.jsonObject(with: $0) as? [String: Any] })
}

/// Waits (polling, bounded) until `condition` holds; false if it never did.
func eventually(within seconds: Double = 60, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if try condition() { return true }
        usleep(5_000)
    }
    return try condition()
}
