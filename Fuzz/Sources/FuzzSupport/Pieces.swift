/// The input after its first byte, cut into pieces whose sizes that byte chooses: the way a socket or a pipe hands
/// a stream over in reads of any size. Parsers that take input incrementally must give the same answer for the
/// pieces as for the whole, so the targets compare the two.
///
/// Sizes come from a small generator seeded by the first byte, between 1 and 64 bytes, so a mutation of that one
/// byte explores another cutting of the same stream. An empty input gives no selector and no pieces.
public struct SplitInput {
    /// The first byte, which chose the cutting; targets may use its bits for other choices too.
    public let selector: UInt8
    /// Everything after the selector.
    public let stream: UnsafeRawBufferPointer
    /// `stream`, cut.
    public let pieces: [UnsafeRawBufferPointer]

    public init?(_ data: UnsafePointer<UInt8>?, _ size: Int) {
        guard let data, size >= 1 else { return nil }
        selector = data[0]
        stream = UnsafeRawBufferPointer(start: data + 1, count: size - 1)
        var state = UInt32(selector) &* 2_654_435_761 | 1
        var pieces: [UnsafeRawBufferPointer] = []
        var start = 0
        while start < stream.count {
            state ^= state << 13
            state ^= state >> 17
            state ^= state << 5
            let length = min(stream.count - start, Int(state % 64) + 1)
            pieces.append(UnsafeRawBufferPointer(rebasing: stream[start..<(start + length)]))
            start += length
        }
        self.pieces = pieces
    }
}
