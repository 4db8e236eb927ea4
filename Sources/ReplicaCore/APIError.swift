/// An error that reaches the client as the API's `{"error": "…"}` body with its status.
/// Anything thrown that is not an `APIError` becomes a 500 with a generic message; its cause is logged.
public struct APIError: Error, Equatable, CustomStringConvertible {
    public var status: HTTPStatus
    public var message: String
    public var headers: HTTPHeaders

    public init(_ status: HTTPStatus, _ message: String, headers: HTTPHeaders = HTTPHeaders()) {
        self.status = status
        self.message = message
        self.headers = headers
    }

    public var description: String { "\(status.code) \(message)" }

    public static func == (a: APIError, b: APIError) -> Bool { a.status == b.status && a.message == b.message }

    public static let invalidRequestBody = APIError(.badRequest, "Invalid request body")
    public static let unauthorized = APIError(.unauthorized, "Unauthorized",
                                              headers: ["WWW-Authenticate": "Bearer"])
    public static let notFound = APIError(.notFound, "Not found")
}
