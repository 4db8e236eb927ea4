/// Bodies of the Replica Link API's outer layer, exactly as `replica-link-api.txt` names their fields.

/// `GET /api/health`.
public struct HealthResponse: Codable, Equatable, Sendable {
    public var status: String
    public var version: String

    public init(status: String = "ok", version: String = APIVersion.current) {
        self.status = status
        self.version = version
    }
}

/// `POST /api/auth` request.
public struct AuthRequest: Codable, Equatable, Sendable {
    public var pin: String

    public init(pin: String) { self.pin = pin }
}

/// `POST /api/auth` answer.
public struct AuthResponse: Codable, Equatable, Sendable {
    public var token: String

    public init(token: String) { self.token = token }
}

/// Every error the API returns: `{"error": "…"}`.
public struct ErrorBody: Codable, Equatable, Sendable {
    public var error: String

    public init(error: String) { self.error = error }
}

public enum APIVersion {
    /// The API version `GET /api/health` reports.
    public static let current = "1.0"
}
