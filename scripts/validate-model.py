#!/usr/bin/env python3
"""Reads an exported model with a library nobody here wrote and prints what it found, as one JSON object.

    validate-model.py usdz|glb PATH

usdz: Pixar's USD (usd-core): every validator UsdValidation registers, run on the stage, and the package's
      layout; counts the Mesh prims' points and faces and the UsdUVTexture files that resolve inside the package.
glb:  pygltflib: loads the binary, runs its validator, counts POSITION vertices, triangles and embedded images.

Prints {"vertices", "faces", "textures", "errors": [...], ...}; exits 0 whenever it could run.
"""
import json
import sys


def usdz(path):
    from pxr import Ar, Sdf, Usd, UsdGeom, UsdShade, UsdValidation
    result = {"vertices": 0, "faces": 0, "textures": 0, "errors": [], "warnings": []}
    stage = Usd.Stage.Open(path)
    if stage is None:
        result["errors"].append("the stage does not open")
        return result
    registry = UsdValidation.ValidationRegistry()
    validators = registry.GetOrLoadAllValidators()
    context = UsdValidation.ValidationContext(validators)
    for error in context.Validate(stage):
        entry = f"{error.GetName()}: {error.GetMessage()}"
        if error.GetType() == UsdValidation.ValidationErrorType.Error:
            result["errors"].append(entry)
        elif error.GetType() == UsdValidation.ValidationErrorType.Warn:
            result["warnings"].append(entry)
    result["validators"] = len(validators)
    result["upAxis"] = UsdGeom.GetStageUpAxis(stage)
    result["metersPerUnit"] = UsdGeom.GetStageMetersPerUnit(stage)
    import zipfile
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as package:
            result["firstFile"] = package.namelist()[0]
            result["compressed"] = [i.filename for i in package.infolist() if i.compress_type != zipfile.ZIP_STORED]
    resolver = Ar.GetResolver()
    for prim in stage.Traverse():
        if prim.IsA(UsdGeom.Mesh):
            mesh = UsdGeom.Mesh(prim)
            result["vertices"] += len(mesh.GetPointsAttr().Get() or [])
            result["faces"] += len(mesh.GetFaceVertexCountsAttr().Get() or [])
            if not UsdShade.MaterialBindingAPI(prim).ComputeBoundMaterial()[0]:
                result["errors"].append(f"{prim.GetPath()} has no material")
        shader = UsdShade.Shader(prim)
        if shader and shader.GetIdAttr().Get() == "UsdUVTexture":
            asset = shader.GetInput("file").Get()
            if asset is not None and asset.resolvedPath and resolver.Resolve(asset.resolvedPath):
                result["textures"] += 1
            else:
                result["errors"].append(f"{prim.GetPath()}: texture {asset} does not resolve")
    return result


def glb(path):
    import pygltflib
    from pygltflib.validator import validate
    result = {"vertices": 0, "faces": 0, "textures": 0, "errors": [], "warnings": []}
    gltf = pygltflib.GLTF2().load_binary(path)
    try:
        for error in validate(gltf, warning=True) or []:
            result["errors"].append(str(error))
    except Exception as error:  # the validator raises on what it cannot accept
        result["errors"].append(f"{type(error).__name__}: {error}")
    for mesh in gltf.meshes:
        for primitive in mesh.primitives:
            result["vertices"] += gltf.accessors[primitive.attributes.POSITION].count
            result["faces"] += gltf.accessors[primitive.indices].count // 3
    blob = gltf.binary_blob() or b""
    for image in gltf.images:
        view = gltf.bufferViews[image.bufferView]
        start = view.byteOffset or 0
        data = blob[start:start + view.byteLength]
        if data.startswith(b"\x89PNG") or data.startswith(b"\xff\xd8\xff"):
            result["textures"] += 1
        else:
            result["errors"].append(f"image {image.bufferView} is neither PNG nor JPEG")
    result["materials"] = len(gltf.materials)
    return result


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("usdz", "glb"):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    result = usdz(sys.argv[2]) if sys.argv[1] == "usdz" else glb(sys.argv[2])
    print(json.dumps(result))


if __name__ == "__main__":
    main()
