import Foundation
import SisaEngine
import XCTest

/// Buffers on large pages are ordinary zeroed buffers that start on a 2 MiB boundary.
final class FloatBufferTests: XCTestCase {
    func testLargePageBuffersAreZeroedAlignedAndWholeToTheirLastFloat() {
        // 5 MiB and a few floats: two whole 2 MiB pages and a tail on small pages.
        let count = (5 << 20) / 4 + 3
        for largePages in [false, true] {
            let b = FloatBuffer(count: count, largePages: largePages)
            XCTAssertEqual(b.count, count)
            XCTAssertEqual(Int(bitPattern: b.pointer) % (largePages ? 2 << 20 : 64), 0, "largePages \(largePages)")
            XCTAssertTrue((0..<count).allSatisfy { b[$0] == 0 }, "zeroed, largePages \(largePages)")
            b[0] = 1
            b[count - 1] = 2
            XCTAssertEqual(b.array.reduce(0, +), 3)
        }
        let activation = FloatBuffer.activation(count)
        XCTAssertEqual(Int(bitPattern: activation.pointer) % (2 << 20), 0)
        // Small buffers keep the usual 64-byte alignment and no large pages.
        XCTAssertEqual(Int(bitPattern: FloatBuffer(count: 17, largePages: true).pointer) % 64, 0)
    }
}
