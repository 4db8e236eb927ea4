import CAssimp

/// assimp's importer, a reader nobody here wrote: what it finds in an exported model file.
public enum AssimpReader {
    /// What assimp's importer finds in a file: for tests and checks of every format it reads.
    public struct Summary: Equatable, CustomStringConvertible {
        public var meshes = 0, vertices = 0, faces = 0, materials = 0, embeddedTextures = 0
        public var hasTextureCoordinates = true
        /// Texture paths the materials name, diffuse first.
        public var texturePaths: [String] = []
        public var description: String {
            "\(meshes) meshes, \(vertices) vertices, \(faces) faces, \(materials) materials, "
                + "\(embeddedTextures) embedded textures, textures \(texturePaths)"
        }
    }

    /// Reads a model file with assimp (any format it knows, by extension) and counts what it holds.
    public static func summary(ofFile path: String) throws -> Summary {
        // Identical corners joined, as a viewer does: the vertex count is then the file's unique vertices.
        let flags = aiProcess_ValidateDataStructure.rawValue | aiProcess_JoinIdenticalVertices.rawValue
        guard let scene = aiImportFile(path, flags) else {
            throw ClientError("assimp cannot read \(path): " + String(cString: aiGetErrorString()))
        }
        defer { aiReleaseImport(scene) }
        var summary = Summary()
        let s = scene.pointee
        summary.meshes = Int(s.mNumMeshes)
        summary.materials = Int(s.mNumMaterials)
        summary.embeddedTextures = Int(s.mNumTextures)
        for i in 0..<Int(s.mNumMeshes) {
            let mesh = s.mMeshes[i]!.pointee
            summary.vertices += Int(mesh.mNumVertices)
            summary.faces += Int(mesh.mNumFaces)
            if mesh.mTextureCoords.0 == nil { summary.hasTextureCoordinates = false }
        }
        for i in 0..<Int(s.mNumMaterials) {
            let material = s.mMaterials[i]
            for type in [aiTextureType_DIFFUSE, aiTextureType_BASE_COLOR, aiTextureType_NORMALS] {
                var path = aiString()
                if aiGetMaterialTexture(material, type, 0, &path, nil, nil, nil, nil, nil, nil) == aiReturn_SUCCESS {
                    let text = withUnsafeBytes(of: path.data) { raw in
                        String(decoding: raw.prefix(Int(path.length)), as: UTF8.self)
                    }
                    if !summary.texturePaths.contains(text) { summary.texturePaths.append(text) }
                }
            }
        }
        return summary
    }
}
