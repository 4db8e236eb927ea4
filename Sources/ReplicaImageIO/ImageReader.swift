#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The one entry point for reading a photo: checks the name, detects the format from the bytes, runs that
/// format's decoder, and applies the EXIF orientation, so callers always get pixels the right way up.
public enum ImageReader {
    /// Decodes `data`, whose upload name is `name`. The name's extension must be an accepted one, but the
    /// format is taken from the content alone (a JPEG named `.heic` is read as a JPEG).
    public static func decode(data: [UInt8], name: String, options: DecodeOptions = DecodeOptions())
        throws(ImageIOError) -> DecodedImage {
        guard ImageFormatDetection.isAcceptedName(name) else {
            throw ImageIOError(file: name, reason: .unsupportedExtension(fileExtension(name)))
        }
        // `withUnsafeBytes` only rethrows untyped errors, so the typed result travels out as a `Result`.
        var decoded = try data.withUnsafeBytes { bytes in
            Result { () throws(ImageIOError) -> DecodedImage in
                guard let format = ImageFormatDetection.detect(bytes) else {
                    throw ImageIOError(file: name, reason: .notAnImage)
                }
                return try decoder(for: format)(bytes, name, options)
            }
        }.get()
        decoded.pixels = decoded.pixels.oriented(decoded.metadata.orientation)
        decoded.metadata.appliedOrientation = decoded.metadata.orientation
        decoded.metadata.orientation = 1
        return decoded
    }

    /// Reads the file at `path` and decodes it as `decode(data:name:options:)` does, named by its last
    /// path component.
    public static func decode(path: String, options: DecodeOptions = DecodeOptions()) throws(ImageIOError)
        -> DecodedImage {
        let name = path.split(separator: "/").last.map(String.init) ?? path
        guard ImageFormatDetection.isAcceptedName(name) else {
            throw ImageIOError(file: path, reason: .unsupportedExtension(fileExtension(name)))
        }
        let data = try readFile(path, limit: fileSizeLimit(options))
        do {
            return try decode(data: data, name: name, options: options)
        } catch {
            throw ImageIOError(file: path, reason: error.reason)
        }
    }

    // MARK: - Steps

    typealias Decoder = (UnsafeRawBufferPointer, String, DecodeOptions) throws(ImageIOError) -> DecodedImage

    private static func decoder(for format: ImageFormat) -> Decoder {
        switch format {
        case .jpeg: return JPEGCodec.decode
        case .png: return PNGCodec.decode
        case .tiff: return TIFFCodec.decode
        case .heif: return HEIFCodec.decode
        case .raw: return RawCodec.decode
        }
    }

    /// The text after the name's last dot, or "" when it has none.
    private static func fileExtension(_ name: String) -> String {
        guard let dot = name.lastIndex(of: ".") else { return "" }
        return String(name[name.index(after: dot)...])
    }

    /// No file of an image within the pixel budget needs more than 8 bytes a pixel (16-bit RGBA,
    /// uncompressed) plus room for metadata and previews; anything larger is refused before it is read.
    private static func fileSizeLimit(_ options: DecodeOptions) -> Int {
        options.maxPixels.multipliedReportingOverflow(by: 8).partialValue + (64 << 20)
    }

    /// The whole file, read with POSIX calls; errors name the path and the system's reason.
    private static func readFile(_ path: String, limit: Int) throws(ImageIOError) -> [UInt8] {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw systemError("cannot open", path) }
        defer { close(descriptor) }
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { throw systemError("cannot inspect", path) }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw ImageIOError(file: path, reason: .io("not a regular file"))
        }
        let size = Int(info.st_size)
        guard size <= limit else {
            throw ImageIOError(file: path, reason: .io("\(size) bytes is over the \(limit)-byte limit for one photo"))
        }
        return try readAll(descriptor, size: size, path: path)
    }

    private static func readAll(_ descriptor: Int32, size: Int, path: String) throws(ImageIOError) -> [UInt8] {
        var failed = false
        let bytes = [UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in
            while initialized < size {
                let count = read(descriptor, buffer.baseAddress! + initialized, size - initialized)
                if count < 0 && errno == EINTR { continue }
                if count <= 0 { failed = count < 0; break }
                initialized += count
            }
        }
        if failed { throw systemError("cannot read", path) }
        return bytes
    }

    private static func systemError(_ action: String, _ path: String) -> ImageIOError {
        ImageIOError(file: path, reason: .io("\(action) the file: \(String(cString: strerror(errno)))"))
    }
}
