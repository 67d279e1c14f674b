/// Lays named tensors out one after another in a flat buffer, in the order
/// they are added (a family's layout is the order of its `add` calls).
struct TensorLayoutBuilder {
    private(set) var tensors: [ParameterTensor] = []
    private(set) var count = 0

    /// Appends a tensor and returns its offset (in floats).
    mutating func add(_ name: String, _ shape: [Int]) -> Int {
        let t = ParameterTensor(name: name, shape: shape, offset: count)
        tensors.append(t)
        count += t.count
        return t.offset
    }
}
