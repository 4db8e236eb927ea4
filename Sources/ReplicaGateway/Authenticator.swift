import Foundation
import ReplicaCore
import ReplicaHTTP
import ReplicaProtocol

/// PIN logins and bearer tokens: `POST /api/auth`, and the check every protected endpoint runs first.
final class Authenticator {
    private let sessions: SessionStore
    private let pins: PinStore
    private let throttle: LoginThrottle
    private let logger: Logger
    /// Told of every new PIN made because of guessing, so the console can show it as at start-up.
    var onPinRegenerated: ((String) -> Void)?
    /// Largest `POST /api/auth` body read, in bytes.
    static let maxBodyBytes = 4096

    init(sessions: SessionStore, pins: PinStore, throttle: LoginThrottle, logger: Logger) {
        self.sessions = sessions
        self.pins = pins
        self.throttle = throttle
        self.logger = logger
    }

    /// A token from `Authorization: Bearer …` or `?token=…` that names a live session.
    /// A session token as the viewer endpoint takes it, from the query.
    func isValidToken(_ token: String) -> Bool { sessions.validate(token) }

    func isAuthorized(_ head: HTTPRequestHead, query: [(name: String, value: String)]) -> Bool {
        if let header = head.headers["Authorization"], let token = Authenticator.bearerToken(header),
           sessions.validate(token) {
            return true
        }
        return query.contains { $0.name == "token" && sessions.validate($0.value) }
    }

    /// The credentials of `Bearer <token>` (the scheme in any case); nil for another scheme. Runs on every
    /// request, so it works on bytes rather than through Foundation's character sets.
    static func bearerToken(_ header: String) -> String? {
        let bytes = header.utf8
        guard let space = bytes.firstIndex(of: UInt8(ascii: " ")),
              String(header[..<space]).caseInsensitiveEquals("Bearer") else { return nil }
        let credentials = header[space...].utf8.drop { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }
        let trimmed = credentials.reversed().drop { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }
        return String(decoding: trimmed.reversed(), as: UTF8.self)
    }

    // MARK: Login

    func login(_ exchange: HTTPExchange, gateway: Gateway) {
        exchange.collectBody(limit: Authenticator.maxBodyBytes) { [self] result in
            do {
                guard case .success(let body) = result else {
                    throw APIError(.payloadTooLarge, "Request body too large")
                }
                let token = try checkPin(in: body, from: exchange)
                gateway.send(exchange, AuthResponse(token: token))
            } catch {
                gateway.fail(exchange, error)
            }
        }
    }

    private func checkPin(in body: [UInt8], from exchange: HTTPExchange) throws -> String {
        guard let request = try? JSONDecoder().decode(AuthRequest.self, from: Data(body)) else {
            throw APIError.invalidRequestBody
        }
        do {
            try pins.reloadIfChanged()
        } catch {
            logger.error("PIN file could not be reread; the PIN in memory stays in force", ["error": "\(error)"])
        }
        let address = exchange.remoteAddress
        let fingerprint = pins.fingerprint
        switch try throttle.gate(address: address, pinFingerprint: fingerprint) {
        case .allowed:
            break
        case .throttled(let seconds):
            let wait = seconds == 1 ? "1 second" : "\(seconds) seconds"
            throw APIError(.tooManyRequests, "Too many wrong PINs; try again in \(wait)",
                           headers: ["Retry-After": "\(seconds)"])
        case .paused:
            throw APIError(.serviceUnavailable,
                           "PIN logins are paused after too many wrong PINs; the operator must set a new PIN")
        }
        guard pins.matches(request.pin) else {
            try countFailure(address: address, fingerprint: fingerprint)
            throw APIError(.unauthorized, "Invalid PIN")
        }
        try throttle.recordSuccess(address: address)
        logger.info("client logged in", ["client.address": address])
        return try sessions.createSession()
    }

    private func countFailure(address: String, fingerprint: String) throws {
        switch try throttle.recordFailure(address: address, pinFingerprint: fingerprint) {
        case .counted(let global, let warn):
            let metadata: Logger.Metadata = ["client.address": address, "auth.failures": "\(global)",
                                             "auth.ceiling": "\(throttle.policy.globalCeiling)"]
            if warn {
                logger.warning("wrong PINs are adding up: someone may be guessing", metadata)
            } else {
                logger.info("wrong PIN", metadata)
            }
        case .ceilingReached(let global):
            ceilingReached(global: global)
        }
    }

    /// Past the ceiling a guesser's odds would grow beyond 1 in 10,000: change the PIN, or stop PIN logins.
    private func ceilingReached(global: Int) {
        let metadata: Logger.Metadata = ["auth.failures": "\(global)"]
        guard !pins.isFixed else {
            logger.critical("PIN logins paused: too many wrong PINs; set a new --pin or REPLICA_PIN and restart",
                            metadata)
            return
        }
        do {
            let fresh = try pins.regenerate()
            logger.critical("too many wrong PINs: a new PIN was made; it is shown on the console", metadata)
            onPinRegenerated?(fresh)
        } catch {
            logger.critical("too many wrong PINs and a new PIN could not be written: PIN logins paused",
                            ["auth.failures": "\(global)", "error": "\(error)"])
        }
    }

    /// Drops expired sessions and quiet throttle records.
    func purge() {
        do {
            _ = try sessions.purgeExpired()
            _ = try throttle.purgeQuiet()
        } catch {
            logger.error("purging sessions failed", ["error": "\(error)"])
        }
    }
}
