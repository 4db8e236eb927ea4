import COpenSSL

/// A failure of OpenSSL, with the error queue's text.
public struct TLSError: Error, CustomStringConvertible {
    public var operation: String
    public var detail: String

    init(_ operation: String) {
        self.operation = operation
        self.detail = TLSError.drainErrorQueue()
    }

    public var description: String { "\(operation): \(detail)" }

    static func drainErrorQueue() -> String {
        var messages: [String] = []
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            var text = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &text, text.count)
            messages.append(String(cString: text))
        }
        return messages.isEmpty ? "unknown error" : messages.joined(separator: "; ")
    }
}

/// The server's certificate and key, loaded once and shared by every TLS connection.
public final class TLSContext {
    let context: OpaquePointer

    /// Loads a PEM certificate chain and its private key; TLS 1.2 is the oldest version offered.
    public init(certificatePath: String, keyPath: String) throws {
        guard let context = SSL_CTX_new(TLS_server_method()) else { throw TLSError("SSL_CTX_new") }
        self.context = context
        _ = replica_ssl_ctx_set_min_tls12(context)
        _ = replica_ssl_ctx_set_mode(context, Int(SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_RELEASE_BUFFERS))
        guard SSL_CTX_use_certificate_chain_file(context, certificatePath) == 1 else {
            throw TLSError("load certificate \(certificatePath)")
        }
        guard SSL_CTX_use_PrivateKey_file(context, keyPath, SSL_FILETYPE_PEM) == 1 else {
            throw TLSError("load private key \(keyPath)")
        }
        guard SSL_CTX_check_private_key(context) == 1 else {
            throw TLSError("certificate and key do not match")
        }
    }

    deinit { SSL_CTX_free(context) }
}

/// One connection's TLS state over memory BIOs: ciphertext in from the socket, plaintext out to the parser,
/// and the reverse for responses. libuv owns the socket; OpenSSL never touches it.
final class TLSSession {
    private let ssl: OpaquePointer
    private let networkIn: OpaquePointer   // ciphertext the peer sent, for OpenSSL to read
    private let networkOut: OpaquePointer  // ciphertext OpenSSL produced, for the socket

    init(context: TLSContext) throws {
        guard let ssl = SSL_new(context.context), let rbio = BIO_new(BIO_s_mem()),
              let wbio = BIO_new(BIO_s_mem()) else { throw TLSError("SSL_new") }
        self.ssl = ssl
        networkIn = rbio
        networkOut = wbio
        SSL_set_bio(ssl, rbio, wbio)
        SSL_set_accept_state(ssl)
    }

    deinit { SSL_free(ssl) }

    /// Feeds ciphertext and hands every plaintext byte it yields to `deliver`; throws on a protocol failure.
    func receive(_ ciphertext: UnsafeRawBufferPointer, deliver: (UnsafeRawBufferPointer) -> Void) throws {
        var offset = 0
        while offset < ciphertext.count {
            let written = BIO_write(networkIn, ciphertext.baseAddress! + offset, Int32(ciphertext.count - offset))
            guard written > 0 else { throw TLSError("BIO_write") }
            offset += Int(written)
            try drainPlaintext(deliver)
        }
    }

    private func drainPlaintext(_ deliver: (UnsafeRawBufferPointer) -> Void) throws {
        var buffer = [UInt8](repeating: 0, count: 16384)
        while true {
            let n = buffer.withUnsafeMutableBytes { SSL_read(ssl, $0.baseAddress, Int32($0.count)) }
            if n > 0 {
                buffer.withUnsafeBytes { deliver(UnsafeRawBufferPointer(rebasing: $0[0..<Int(n)])) }
                continue
            }
            let reason = SSL_get_error(ssl, n)
            if reason == SSL_ERROR_WANT_READ || reason == SSL_ERROR_WANT_WRITE || reason == SSL_ERROR_ZERO_RETURN {
                return
            }
            throw TLSError("TLS read")
        }
    }

    /// Encrypts plaintext; the ciphertext is then collected with `takeCiphertext()`.
    func send(_ plaintext: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < plaintext.count {
            let n = SSL_write(ssl, plaintext.baseAddress! + offset, Int32(plaintext.count - offset))
            guard n > 0 else { throw TLSError("TLS write") }
            offset += Int(n)
        }
    }

    /// Queues a close_notify alert for the peer.
    func close() { _ = SSL_shutdown(ssl) }

    /// Ciphertext waiting for the socket (handshake records included), or nil when there is none.
    func takeCiphertext() -> [UInt8]? {
        let pending = BIO_ctrl_pending(networkOut)
        guard pending > 0 else { return nil }
        var out = [UInt8](repeating: 0, count: Int(pending))
        let n = out.withUnsafeMutableBytes { BIO_read(networkOut, $0.baseAddress, Int32($0.count)) }
        return n > 0 ? Array(out[0..<Int(n)]) : nil
    }
}
