import Foundation
import ReplicaCore

/// USDZ: a USD layer (text, `.usda`) with one mesh per texture page and a UsdPreviewSurface material per page
/// wired to the page's maps, packaged as the USDZ specification says: a stored (uncompressed) ZIP, the layer
/// first, every file's data starting at a multiple of 64 bytes. Metres, +Y up.
public enum USDZ {
    public static let layerName = "model.usda"

    public static func bytes(_ model: ExportModel, modified: Date = Date()) throws -> [UInt8] {
        let layer = Array(self.layer(model).utf8)
        var files: [(name: String, bytes: [UInt8])] = [(layerName, layer)]
        for texture in model.textures where model.parts.contains(where: { $0.page == texture.page }) {
            files.append(("textures/" + texture.fileName, texture.bytes))
        }
        let entries = files.map {
            ZipEntry(name: $0.name, size: UInt64($0.bytes.count), crc32: CRC32.checksum($0.bytes), modified: modified)
        }
        let layout = try ZipLayout(entries: entries, dataAlignment: 64)
        var out: [UInt8] = []
        out.reserveCapacity(Int(layout.totalLength))
        for (index, file) in files.enumerated() {
            out.append(contentsOf: layout.localHeader(at: index))
            out.append(contentsOf: file.bytes)
        }
        out.append(contentsOf: layout.trailer())
        return out
    }

    /// The layer's text. Texture coordinates flip to USD's `st` (t up from the bottom row).
    public static func layer(_ model: ExportModel) -> String {
        var text = """
        #usda 1.0
        (
            defaultPrim = "Model"
            doc = "Written by Replica Link"
            metersPerUnit = 1
            upAxis = "Y"
        )

        def Xform "Model" (
            kind = "component"
        )
        {

        """
        let pages = Set(model.parts.map(\.page)).sorted()
        text += "    def Scope \"Materials\"\n    {\n"
        for page in pages { text += material(model, page: page) }
        text += "    }\n"
        for part in model.parts where !part.triangles.isEmpty { text += mesh(part) }
        text += "}\n"
        return text
    }

    private static func material(_ model: ExportModel, page: Int) -> String {
        let path = "/Model/Materials/Page\(page)"
        var surface = """
                    uniform token info:id = "UsdPreviewSurface"
                    float inputs:metallic = 0
                    int inputs:useSpecularWorkflow = 0
                    token outputs:surface

        """
        var readers = ""
        func sampler(_ name: String, _ texture: ExportTexture, colorSpace: String, output: String,
                     scale: String? = nil, bias: String? = nil) {
            readers += """
                    def Shader "\(name)"
                    {
                        uniform token info:id = "UsdUVTexture"
                        asset inputs:file = @textures/\(texture.fileName)@
                        token inputs:sourceColorSpace = "\(colorSpace)"
                        float2 inputs:st.connect = <\(path)/TextureCoordinates.outputs:result>
                        token inputs:wrapS = "clamp"
                        token inputs:wrapT = "clamp"

            """
            if let scale { readers += "                float4 inputs:scale = \(scale)\n" }
            if let bias { readers += "                float4 inputs:bias = \(bias)\n" }
            readers += "                \(output)\n            }\n"
        }
        // Per map: the surface's input it feeds, the texture's colour space and output, and the value without it.
        let wiring: [(ExportMap, input: String, space: String, output: String, unmapped: String?)] = [
            (.diffuse, "color3f inputs:diffuseColor", "sRGB", "float3 outputs:rgb", "(0.8, 0.8, 0.8)"),
            (.normal, "normal3f inputs:normal", "raw", "float3 outputs:rgb", nil),
            (.occlusion, "float inputs:occlusion", "raw", "float outputs:r", nil),
            (.roughness, "float inputs:roughness", "raw", "float outputs:r", "0.8"),
        ]
        for (map, input, space, output, unmapped) in wiring {
            guard let texture = model.texture(map, page: page) else {
                if let unmapped { surface += "            \(input) = \(unmapped)\n" }
                continue
            }
            let name = map.rawValue.prefix(1).uppercased() + map.rawValue.dropFirst() + "Texture"
            // Normals are stored as (n + 1) / 2.
            sampler(name, texture, colorSpace: space, output: output, scale: map == .normal ? "(2, 2, 2, 1)" : nil,
                    bias: map == .normal ? "(-1, -1, -1, 0)" : nil)
            let outputName = output.split(separator: " ").last!
            surface += "            \(input).connect = <\(path)/\(name).\(outputName)>\n"
        }
        if let height = model.texture(.height, page: page), let scale = model.heightScale {
            // height = (255 t − 128) / 127 × scale for the sampled t in 0…1: t × a + b.
            let a = 255 / 127 * Double(scale), b = -128 / 127 * Double(scale)
            sampler("HeightTexture", height, colorSpace: "raw", output: "float outputs:r",
                    scale: "(\(a), \(a), \(a), 1)", bias: "(\(b), \(b), \(b), 0)")
            surface += "            float inputs:displacement.connect = <\(path)/HeightTexture.outputs:r>\n"
        }
        return """
                def Material "Page\(page)"
                {
                    token outputs:surface.connect = <\(path)/Surface.outputs:surface>

                    def Shader "Surface"
                    {
        \(surface)            }

                    def Shader "TextureCoordinates"
                    {
                        uniform token info:id = "UsdPrimvarReader_float2"
                        string inputs:varname = "st"
                        float2 outputs:result
                    }

        \(readers)        }

        """
    }

    private static func mesh(_ part: ExportPart) -> String {
        let lower = part.lower, upper = part.upper
        var text = """
            def Mesh "Page\(part.page)" (
                prepend apiSchemas = ["MaterialBindingAPI"]
            )
            {
                uniform bool doubleSided = 0
                float3[] extent = [\(tuple(lower.x, lower.y, lower.z)), \(tuple(upper.x, upper.y, upper.z))]
                int[] faceVertexCounts = [
        """
        text.reserveCapacity(part.positions.count * 120 + part.triangles.count * 30)
        text += Array(repeating: "3", count: part.triangles.count).joined(separator: ", ")
        text += "]\n        int[] faceVertexIndices = ["
        text += part.triangles.map { "\($0.x), \($0.y), \($0.z)" }.joined(separator: ", ")
        text += "]\n        rel material:binding = </Model/Materials/Page\(part.page)>\n"
        text += "        normal3f[] normals = ["
        text += part.normals.map { tuple($0.x, $0.y, $0.z) }.joined(separator: ", ")
        text += "] (\n            interpolation = \"vertex\"\n        )\n"
        text += "        point3f[] points = ["
        text += part.positions.map { tuple($0.x, $0.y, $0.z) }.joined(separator: ", ")
        text += "]\n        texCoord2f[] primvars:st = ["
        text += part.uvs.map { "(\(decimal($0.x)), \(decimal(1 - $0.y)))" }.joined(separator: ", ")
        text += "] (\n            interpolation = \"vertex\"\n        )\n"
        text += "        uniform token subdivisionScheme = \"none\"\n    }\n"
        return text
    }

    private static func tuple(_ x: Float, _ y: Float, _ z: Float) -> String {
        "(\(decimal(x)), \(decimal(y)), \(decimal(z)))"
    }
}
