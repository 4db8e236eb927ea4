import Foundation
import ReplicaProtocol
import XCTest

/// The compute request's body: what is accepted, what is refused and with which words, the detail table, and
/// the stored form.
final class ComputeOptionsTests: XCTestCase {
    private static let customFields: [(name: String, value: String)] = [
        ("maximumPolygonCount", "5000"), ("maximumTextureDimension", "\"twoK\""), ("textureFormat", "\"jpeg\""),
        ("jpegCompressionQuality", "0.5"), ("outputTextureMaps", "[\"normal\"]"),
    ]

    private func parse(_ body: String, file: StaticString = #filePath, line: UInt = #line) -> ComputeOptions? {
        do throws(ComputeOptionsError) {
            return try ComputeOptions.parse(Array(body.utf8))
        } catch {
            XCTFail("refused \(body): \(error.message)", file: file, line: line)
            return nil
        }
    }

    /// The message a refused body gets; a body that is accepted fails the test.
    private func refusal(_ body: [UInt8], file: StaticString = #filePath, line: UInt = #line) -> String {
        do throws(ComputeOptionsError) {
            let options = try ComputeOptions.parse(body)
            XCTFail("accepted \(String(decoding: body, as: UTF8.self)) as \(options)", file: file, line: line)
            return ""
        } catch {
            return error.message
        }
    }

    private func refusal(_ body: String, file: StaticString = #filePath, line: UInt = #line) -> String {
        refusal(Array(body.utf8), file: file, line: line)
    }

    /// Refused, with a message that holds each fragment.
    private func assertRefused(_ body: String, _ fragments: String..., file: StaticString = #filePath,
                               line: UInt = #line) {
        let message = refusal(body, file: file, line: line)
        for fragment in fragments {
            XCTAssertTrue(message.contains(fragment), "\(body): \"\(message)\" lacks \"\(fragment)\"",
                          file: file, line: line)
        }
    }

    private func customBody(_ fields: String) -> String { #"{"detail":"custom","# + fields + "}" }

    // MARK: - Defaults and the standard fields

    func testEmptyBodiesGiveTheDefaults() {
        let defaults = ComputeOptions()
        XCTAssertEqual(defaults.detail, .medium)
        XCTAssertEqual(defaults.sampleOrdering, .unordered)
        XCTAssertEqual(defaults.featureSensitivity, .normal)
        XCTAssertEqual(defaults.meshPrimitive, .triangle)
        XCTAssertFalse(defaults.isObjectMaskingEnabled)
        XCTAssertNil(defaults.maximumPolygonCount)
        XCTAssertNil(defaults.maximumTextureDimension)
        XCTAssertNil(defaults.textureFormat)
        XCTAssertNil(defaults.jpegCompressionQuality)
        XCTAssertNil(defaults.outputTextureMaps)
        for body in ["", " ", " \t\r\n ", "{}", " { } \n"] {
            XCTAssertEqual(parse(body), defaults, "body \(body.debugDescription)")
        }
        XCTAssertEqual(defaults.settings, DetailLevel.medium.defaultSettings)
    }

    func testWhitespaceOutsideJSONIsNotEmpty() {
        // A form feed or a no-break space is not JSON whitespace, so the body is not empty but malformed.
        XCTAssertEqual(refusal("\u{0C}"), "the request body is not valid JSON")
        XCTAssertEqual(refusal("\u{A0}"), "the request body is not valid JSON")
    }

    func testTheSpecificationsExampleParses() {
        let body = """
            {"detail": "full", "sampleOrdering": "sequential", "featureSensitivity": "high",
             "meshPrimitive": "quad", "isObjectMaskingEnabled": true}
            """
        var expected = ComputeOptions()
        expected.detail = .full
        expected.sampleOrdering = .sequential
        expected.featureSensitivity = .high
        expected.meshPrimitive = .quad
        expected.isObjectMaskingEnabled = true
        XCTAssertEqual(parse(body), expected)
    }

    func testEveryValueOfTheStandardFieldsIsAccepted() {
        for level in DetailLevel.allCases { XCTAssertEqual(parse(#"{"detail":"\#(level.rawValue)"}"#)?.detail, level) }
        for order in SampleOrdering.allCases {
            XCTAssertEqual(parse(#"{"sampleOrdering":"\#(order.rawValue)"}"#)?.sampleOrdering, order)
        }
        for level in FeatureSensitivity.allCases {
            XCTAssertEqual(parse(#"{"featureSensitivity":"\#(level.rawValue)"}"#)?.featureSensitivity, level)
        }
        for primitive in MeshPrimitive.allCases {
            XCTAssertEqual(parse(#"{"meshPrimitive":"\#(primitive.rawValue)"}"#)?.meshPrimitive, primitive)
        }
        XCTAssertEqual(parse(#"{"isObjectMaskingEnabled":true}"#)?.isObjectMaskingEnabled, true)
        XCTAssertEqual(parse(#"{"isObjectMaskingEnabled":false}"#)?.isObjectMaskingEnabled, false)
    }

    func testEnumeratedFieldsRefuseOtherValuesNamingTheField() {
        XCTAssertEqual(refusal(#"{"detail":"ultra"}"#),
                       #"detail must be one of preview, reduced, medium, full, raw, custom; got "ultra""#)
        XCTAssertEqual(refusal(#"{"detail":3}"#),
                       "detail must be one of preview, reduced, medium, full, raw, custom; got 3")
        assertRefused(#"{"detail":"Medium"}"#, #"got "Medium""#)
        assertRefused(#"{"detail":""}"#, #"got """#)
        assertRefused(#"{"detail":true}"#, "detail must be one of", "got true")
        assertRefused(#"{"detail":["full"]}"#, "detail must be one of", "got an array")
        assertRefused(#"{"detail":{"level":"full"}}"#, "detail must be one of", "got an object")
        assertRefused(#"{"sampleOrdering":"random"}"#, "sampleOrdering must be one of unordered, sequential")
        assertRefused(#"{"featureSensitivity":"low"}"#, "featureSensitivity must be one of normal, high")
        assertRefused(#"{"meshPrimitive":"polygon"}"#, "meshPrimitive must be one of triangle, quad")
        assertRefused(customBody(#""maximumTextureDimension":"32K""#),
                      "maximumTextureDimension must be one of oneK, twoK, fourK, eightK, sixteenK")
        assertRefused(customBody(#""maximumTextureDimension":4096"#), "maximumTextureDimension", "got 4096")
        assertRefused(customBody(#""textureFormat":"tiff""#), "textureFormat must be one of png, jpeg")
    }

    func testNullIsAWrongTypeForEveryField() {
        let standard = ["detail", "sampleOrdering", "featureSensitivity", "meshPrimitive", "isObjectMaskingEnabled"]
        for name in standard { assertRefused(#"{"\#(name)":null}"#, "\(name) must be", "got null") }
        for (name, _) in Self.customFields {
            assertRefused(customBody(#""\#(name)":null"#), "\(name) must", "got null")
        }
    }

    func testALongValueIsCutInTheMessage() {
        let message = refusal(#"{"detail":""# + String(repeating: "x", count: 10_000) + #""}"#)
        XCTAssertTrue(message.contains(#""\#(String(repeating: "x", count: 40))…""#), message)
        XCTAssertLessThan(message.count, 200)
        XCTAssertTrue(refusal(#"{"detail":"a\"b\n"}"#).hasSuffix(#"got "a\"b\n""#))
    }

    // MARK: - Malformed bodies and unknown fields

    func testBodiesThatAreNotJSONAreRefused() {
        let broken = ["{", "{\"detail\":", "{'detail':'full'}", "detail=full", "{\"detail\":\"full\"} x", "[1,",
                      "{\"detail\" \"full\"}", "{\"detail\":\"full\",,}", "{,}", "{\"detail\":NaN}"]
        for body in broken { XCTAssertEqual(refusal(body), "the request body is not valid JSON", body) }
        XCTAssertEqual(refusal([0x7B, 0xFF, 0x7D]), "the request body is not valid JSON")
        XCTAssertEqual(refusal(#"{"maximumPolygonCount":01}"#),
                       #"the request body is not valid JSON: the value of "maximumPolygonCount" cannot be read"#)
        assertRefused(#"{"jpegCompressionQuality":1e400}"#, "not valid JSON", "jpegCompressionQuality")
    }

    func testDeepNestingIsRefusedWithoutCrashing() {
        let depth = 100_000
        let body = #"{"detail":"# + String(repeating: "[", count: depth) + String(repeating: "]", count: depth) + "}"
        XCTAssertEqual(refusal(body), "the request body is not valid JSON")
    }

    func testJSONThatIsNotAnObjectIsRefused() {
        let kinds = ["[]": "an array", "[{\"detail\":\"full\"}]": "an array", "\"medium\"": "a string",
                     "null": "null", "42": "a number", "1.5": "a number", "true": "a boolean"]
        for (body, kind) in kinds {
            XCTAssertEqual(refusal(body), "the request body must be a JSON object, not \(kind)", body)
        }
    }

    func testUnknownFieldsAreRefusedByName() {
        assertRefused(#"{"detial":"full"}"#, #"unknown field "detial""#, "the fields are detail, sampleOrdering")
        assertRefused(#"{"Detail":"full"}"#, #"unknown field "Detail""#)
        assertRefused(#"{"detail":"full","":1}"#, #"unknown field """#)
        // Refused even when everything else is right, and always for the same field when there are two.
        assertRefused(#"{"zeta":1,"detail":"medium","alpha":null}"#, #"unknown field "alpha""#)
    }

    // MARK: - Booleans are not numbers and numbers are not booleans

    func testMaskingTakesOnlyABoolean() {
        for body in ["1", "0", "\"true\"", "\"false\"", "[true]"] {
            assertRefused(#"{"isObjectMaskingEnabled":\#(body)}"#, "isObjectMaskingEnabled must be true or false",
                          "got \(body.hasPrefix("[") ? "an array" : body)")
        }
    }

    func testNumbersRefuseBooleans() {
        assertRefused(customBody(#""maximumPolygonCount":true"#), "maximumPolygonCount must be a whole number",
                      "got true")
        assertRefused(customBody(#""textureFormat":"jpeg","jpegCompressionQuality":true"#),
                      "jpegCompressionQuality must be a number", "got true")
        assertRefused(customBody(#""textureFormat":"jpeg","jpegCompressionQuality":false"#), "got false")
    }

    // MARK: - maximumPolygonCount

    func testPolygonCountMustBeAWholeNumber() {
        for value in ["1.5", "1e30", "1e20", "100000.5", "\"5000\"", "[5000]", "9223372036854775808"] {
            assertRefused(customBody(#""maximumPolygonCount":\#(value)"#),
                          "maximumPolygonCount must be a whole number from 4 to 30000000")
        }
        // 1e3 and 1000.0 are whole numbers in JSON's sense (and JSON Schema's `integer`).
        XCTAssertEqual(parse(customBody(#""maximumPolygonCount":1e3"#))?.maximumPolygonCount, 1000)
        XCTAssertEqual(parse(customBody(#""maximumPolygonCount":1000.0"#))?.maximumPolygonCount, 1000)
    }

    func testPolygonCountBoundaries() {
        XCTAssertEqual(ComputeOptions.polygonCountRange, 4...30_000_000)
        for accepted in [4, 5, 100_000, 29_999_999, 30_000_000] {
            XCTAssertEqual(parse(customBody(#""maximumPolygonCount":\#(accepted)"#))?.maximumPolygonCount, accepted)
        }
        let refused = ["3": "3", "0": "0", "-0": "0", "-1": "-1", "30000001": "30000001",
                       "9223372036854775807": "9223372036854775807", "-9223372036854775808": "-9223372036854775808"]
        for (value, shown) in refused {
            XCTAssertEqual(refusal(customBody(#""maximumPolygonCount":\#(value)"#)),
                           "maximumPolygonCount must be a whole number from 4 to 30000000; got \(shown)")
        }
    }

    // MARK: - Custom fields need custom detail

    func testCustomFieldsAreRefusedWithoutCustomDetail() {
        for (name, value) in Self.customFields {
            XCTAssertEqual(refusal(#"{"\#(name)":\#(value)}"#), #"\#(name) needs detail "custom"; detail is "medium""#)
            for level in DetailLevel.allCases where level != .custom {
                XCTAssertEqual(refusal(#"{"detail":"\#(level.rawValue)","\#(name)":\#(value)}"#),
                               #"\#(name) needs detail "custom"; detail is "\#(level.rawValue)""#)
            }
            let format = name == "jpegCompressionQuality" ? #","textureFormat":"jpeg""# : ""
            XCTAssertNotNil(parse(customBody(#""\#(name)":\#(value)\#(format)"#)), name)
        }
    }

    func testEveryCustomFieldTogether() {
        let body = customBody(#"""
            "maximumPolygonCount": 5000, "maximumTextureDimension": "eightK", "textureFormat": "jpeg",
            "jpegCompressionQuality": 0.25, "outputTextureMaps": ["roughness", "diffuseColor"]
            """#)
        let options = parse(body)
        XCTAssertEqual(options?.maximumPolygonCount, 5000)
        XCTAssertEqual(options?.maximumTextureDimension, .eightK)
        XCTAssertEqual(options?.textureFormat, .jpeg)
        XCTAssertEqual(options?.jpegCompressionQuality, 0.25)
        XCTAssertEqual(options?.outputTextureMaps, [.diffuseColor, .roughness])
        XCTAssertEqual(options?.settings, DetailSettings(
            workingImageDimension: 2048, maximumPolygonCount: 5000, maximumTextureDimension: .eightK,
            textureFormat: .jpeg, jpegCompressionQuality: 0.25, outputTextureMaps: [.diffuseColor, .roughness]))
    }

    // MARK: - jpegCompressionQuality

    func testQualityBoundaries() {
        for accepted in ["0", "0.0", "-0.0", "0.5", "1", "1.0", "1e0", "0.000001", "0.999999"] {
            XCTAssertNotNil(parse(customBody(#""textureFormat":"jpeg","jpegCompressionQuality":\#(accepted)"#)),
                            accepted)
        }
        XCTAssertEqual(parse(customBody(#""textureFormat":"jpeg","jpegCompressionQuality":1"#))?
            .jpegCompressionQuality, 1.0)
        for refused in ["-0.000001", "-1", "1.000001", "2", "1e30"] {
            assertRefused(customBody(#""textureFormat":"jpeg","jpegCompressionQuality":\#(refused)"#),
                          "jpegCompressionQuality must be from 0 to 1")
        }
        for wrongType in ["\"0.5\"", "[0.5]", "{}"] {
            assertRefused(customBody(#""textureFormat":"jpeg","jpegCompressionQuality":\#(wrongType)"#),
                          "jpegCompressionQuality must be a number from 0 to 1")
        }
    }

    func testQualityNeedsTheJPEGFormat() {
        XCTAssertEqual(refusal(customBody(#""jpegCompressionQuality":0.5"#)),
                       #"jpegCompressionQuality needs textureFormat "jpeg"; textureFormat is "png""#)
        XCTAssertEqual(refusal(customBody(#""textureFormat":"png","jpegCompressionQuality":0.5"#)),
                       #"jpegCompressionQuality needs textureFormat "jpeg"; textureFormat is "png""#)
        XCTAssertEqual(parse(customBody(#""textureFormat":"jpeg""#))?.settings.jpegCompressionQuality, 0.8)
    }

    // MARK: - outputTextureMaps

    func testTextureMapsAcceptAllOrASubset() {
        XCTAssertEqual(parse(customBody(#""outputTextureMaps":["all"]"#))?.outputTextureMaps, TextureMap.allCases)
        for map in TextureMap.allCases {
            XCTAssertEqual(parse(customBody(#""outputTextureMaps":["\#(map.rawValue)"]"#))?.outputTextureMaps, [map])
        }
        let reversed = TextureMap.allCases.reversed().map { "\"\($0.rawValue)\"" }.joined(separator: ",")
        XCTAssertEqual(parse(customBody(#""outputTextureMaps":[\#(reversed)]"#))?.outputTextureMaps,
                       TextureMap.allCases)
        XCTAssertEqual(parse(customBody(#""outputTextureMaps":["normal","ambientOcclusion"]"#))?.outputTextureMaps,
                       [.ambientOcclusion, .normal])
    }

    func testTextureMapsRefuseWhatIsNotAListOfDistinctMaps() {
        assertRefused(customBody(#""outputTextureMaps":[]"#), "outputTextureMaps must be [\"all\"] or a non-empty")
        assertRefused(customBody(#""outputTextureMaps":"all""#), "outputTextureMaps must be", #"got "all""#)
        assertRefused(customBody(#""outputTextureMaps":{"all":true}"#), "outputTextureMaps", "got an object")
        assertRefused(customBody(#""outputTextureMaps":["all","normal"]"#), #"["all"] alone"#)
        assertRefused(customBody(#""outputTextureMaps":["normal","all"]"#), #"["all"] alone"#)
        assertRefused(customBody(#""outputTextureMaps":["all","all"]"#), #"["all"] alone"#)
        assertRefused(customBody(#""outputTextureMaps":["normal","normal"]"#), "each map at most once")
        assertRefused(customBody(#""outputTextureMaps":["albedo"]"#), "outputTextureMaps must list map names from "
                      + "ambientOcclusion, diffuseColor, displacement, normal, roughness", #"got "albedo""#)
        assertRefused(customBody(#""outputTextureMaps":["Normal"]"#), #"got "Normal""#)
        assertRefused(customBody(#""outputTextureMaps":[1]"#), "outputTextureMaps must list map names", "got 1")
        assertRefused(customBody(#""outputTextureMaps":[null]"#), "got null")
        assertRefused(customBody(#""outputTextureMaps":[["normal"]]"#), "got an array")
    }

    // MARK: - The detail table

    func testTextureDimensionsInPixels() {
        XCTAssertEqual(TextureDimension.allCases.map(\.pixels), [1024, 2048, 4096, 8192, 16384])
        for dimension in TextureDimension.allCases {
            XCTAssertEqual(parse(customBody(#""maximumTextureDimension":"\#(dimension.rawValue)""#))?
                .settings.maximumTextureDimension, dimension)
        }
    }

    func testApplesPolygonCountsAndMaps() {
        let levels: [DetailLevel] = [.preview, .reduced, .medium, .full, .raw]
        XCTAssertEqual(levels.map(\.defaultSettings.maximumPolygonCount),
                       [25_000, 50_000, 100_000, 250_000, 30_000_000])
        let basic: [TextureMap] = [.ambientOcclusion, .diffuseColor, .normal]
        XCTAssertEqual(levels.map(\.defaultSettings.outputTextureMaps),
                       [basic, basic, basic, TextureMap.allCases, [.diffuseColor]])
        XCTAssertEqual(DetailLevel.raw.defaultSettings.workingImageDimension, 65_500)
    }

    func testTheTableNeverShrinksFromPreviewToFull() {
        let rows = [DetailLevel.preview, .reduced, .medium, .full, .raw].map(\.defaultSettings)
        for (lower, higher) in zip(rows, rows.dropFirst()) {
            XCTAssertLessThan(lower.workingImageDimension, higher.workingImageDimension)
            XCTAssertLessThan(lower.maximumPolygonCount, higher.maximumPolygonCount)
            // Raw keeps full's 8192² side and adds pages as it needs them.
            XCTAssertLessThanOrEqual(lower.maximumTextureDimension.pixels, higher.maximumTextureDimension.pixels)
        }
        XCTAssertEqual(rows.map(\.maximumTextureDimension), [.oneK, .twoK, .fourK, .eightK, .eightK])
    }

    func testEveryRowIsWellFormed() {
        for level in DetailLevel.allCases {
            let row = level.defaultSettings
            XCTAssertFalse(row.outputTextureMaps.isEmpty, "\(level)")
            let ordered = TextureMap.allCases.filter(row.outputTextureMaps.contains)
            XCTAssertEqual(row.outputTextureMaps, ordered, "\(level)")
            XCTAssertTrue((0.0...1.0).contains(row.jpegCompressionQuality), "\(level)")
            XCTAssertTrue(ComputeOptions.polygonCountRange.contains(row.maximumPolygonCount), "\(level)")
            XCTAssertTrue((1...65_500).contains(row.workingImageDimension), "\(level)")
            XCTAssertEqual(row.textureFormat, .png, "\(level)")
        }
    }

    func testCustomStartsFromMediumWithEveryMap() {
        var medium = DetailLevel.medium.defaultSettings
        medium.outputTextureMaps = TextureMap.allCases
        XCTAssertEqual(DetailLevel.custom.defaultSettings, medium)
        XCTAssertEqual(parse(#"{"detail":"custom"}"#)?.settings, medium)
        XCTAssertEqual(parse(customBody(#""maximumPolygonCount":77"#))?.settings.maximumTextureDimension, .fourK)
        XCTAssertEqual(parse(customBody(#""maximumPolygonCount":77"#))?.settings.maximumPolygonCount, 77)
    }

    func testALevelsSettingsAreItsRow() {
        for level in DetailLevel.allCases {
            XCTAssertEqual(parse(#"{"detail":"\#(level.rawValue)"}"#)?.settings, level.defaultSettings)
        }
    }

    // MARK: - validate() for values built in code

    func testValidateRefusesValuesBuiltInCode() {
        var options = ComputeOptions()
        options.textureFormat = .jpeg
        XCTAssertThrowsError(try options.validate())
        options.detail = .custom
        XCTAssertNoThrow(try options.validate())
        for (quality, valid) in [(Double.nan, false), (-0.1, false), (1.1, false), (0, true), (1, true)] {
            options.jpegCompressionQuality = quality
            XCTAssertEqual((try? options.validate()) != nil, valid, "quality \(quality)")
        }
        options.outputTextureMaps = []
        XCTAssertThrowsError(try options.validate())
        options.outputTextureMaps = [.normal, .normal]
        XCTAssertThrowsError(try options.validate())
        options.outputTextureMaps = [.normal]
        options.maximumPolygonCount = 3
        XCTAssertThrowsError(try options.validate())
        options.maximumPolygonCount = 4
        XCTAssertNoThrow(try options.validate())
    }

    func testTheErrorDescribesItselfByItsMessage() {
        let error = ComputeOptionsError(message: "detail must be one of preview")
        XCTAssertEqual(error.description, "detail must be one of preview")
        XCTAssertEqual("\(error)", "detail must be one of preview")
    }

    // MARK: - The stored form

    func testStoredBytesAreCanonical() {
        XCTAssertEqual(String(decoding: ComputeOptions().jsonBytes, as: UTF8.self),
                       #"{"detail":"medium","featureSensitivity":"normal","isObjectMaskingEnabled":false,"#
                       + #""meshPrimitive":"triangle","sampleOrdering":"unordered"}"#)
        let options = parse(customBody(#"""
            "outputTextureMaps": ["roughness", "diffuseColor"], "sampleOrdering": "sequential",
            "jpegCompressionQuality": 0.3, "textureFormat": "jpeg", "maximumTextureDimension": "sixteenK",
            "maximumPolygonCount": 123456, "isObjectMaskingEnabled": true, "meshPrimitive": "quad"
            """#))
        XCTAssertEqual(options.map { String(decoding: $0.jsonBytes, as: UTF8.self) },
                       #"{"detail":"custom","featureSensitivity":"normal","isObjectMaskingEnabled":true,"#
                       + #""jpegCompressionQuality":0.3,"maximumPolygonCount":123456,"#
                       + #""maximumTextureDimension":"sixteenK","meshPrimitive":"quad","#
                       + #""outputTextureMaps":["diffuseColor","roughness"],"sampleOrdering":"sequential","#
                       + #""textureFormat":"jpeg"}"#)
    }

    func testEveryStandardCombinationSurvivesTheStoredForm() {
        for level in DetailLevel.allCases {
            for order in SampleOrdering.allCases {
                for sensitivity in FeatureSensitivity.allCases {
                    for primitive in MeshPrimitive.allCases {
                        for masking in [false, true] {
                            var options = ComputeOptions()
                            options.detail = level
                            options.sampleOrdering = order
                            options.featureSensitivity = sensitivity
                            options.meshPrimitive = primitive
                            options.isObjectMaskingEnabled = masking
                            assertRoundTrip(options)
                        }
                    }
                }
            }
        }
    }

    func testEveryCustomCombinationSurvivesTheStoredForm() {
        let subsets = (1..<(1 << TextureMap.allCases.count)).map { bits in
            TextureMap.allCases.enumerated().filter { bits & (1 << $0.offset) != 0 }.map(\.element)
        }
        for dimension in [nil] + TextureDimension.allCases.map(Optional.some) {
            for (format, quality) in [(nil, nil), (.png, nil), (.jpeg, nil), (.jpeg, 0), (.jpeg, 0.1), (.jpeg, 1)]
                as [(TextureFormat?, Double?)] {
                for maps in [nil] + subsets.map(Optional.some) {
                    var options = ComputeOptions()
                    options.detail = .custom
                    options.maximumTextureDimension = dimension
                    options.textureFormat = format
                    options.jpegCompressionQuality = quality
                    options.outputTextureMaps = maps
                    options.maximumPolygonCount = maps == nil ? nil : 4 + maps!.count * 1_000_003
                    assertRoundTrip(options)
                }
            }
        }
    }

    private func assertRoundTrip(_ options: ComputeOptions, file: StaticString = #filePath, line: UInt = #line) {
        let bytes = options.jsonBytes
        do throws(ComputeOptionsError) {
            let parsed = try ComputeOptions.parse(bytes)
            XCTAssertEqual(parsed, options, String(decoding: bytes, as: UTF8.self), file: file, line: line)
        } catch {
            XCTFail("\(String(decoding: bytes, as: UTF8.self)) refused: \(error.message)", file: file, line: line)
        }
    }
}
