/// A setting that makes no sense, with the reason; every options struct's `validate()` throws it.
public struct OptionsError: Error, CustomStringConvertible, Equatable {
    public var description: String

    public init(_ description: String) { self.description = description }
}
