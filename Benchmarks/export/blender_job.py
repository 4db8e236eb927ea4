"""Run inside Blender (`blender -b --factory-startup --python blender_job.py -- ...`) or with the bpy module
(`python blender_job.py -- ...`). Prints one line of JSON.

    convert IN.glb FORMAT OUT   import the GLB, export FORMAT (glb, obj, fbx, usdz); seconds of each step
    read FILE                   import FILE (by extension); vertices, faces and images of what it holds
"""
import json
import sys
import time

import bpy

try:
    import numpy
    # Debian 12's Blender 3.4 glTF add-on still says numpy.bool, which Debian 12's numpy 1.24 removed; the alias
    # was plain bool.
    if not hasattr(numpy, "bool"):
        numpy.bool = bool
except ImportError:
    pass


def clear():
    bpy.ops.wm.read_factory_settings(use_empty=True)


def import_file(path):
    extension = path.rsplit(".", 1)[-1].lower()
    if extension in ("glb", "gltf"):
        bpy.ops.import_scene.gltf(filepath=path)
    elif extension == "obj":
        bpy.ops.wm.obj_import(filepath=path)
    elif extension == "fbx":
        bpy.ops.import_scene.fbx(filepath=path)
    elif extension in ("usdz", "usd", "usda", "usdc"):
        bpy.ops.wm.usd_import(filepath=path)
    else:
        raise ValueError(f"no importer for .{extension}")


def export_file(path, format):
    if format == "glb":
        bpy.ops.export_scene.gltf(filepath=path, export_format="GLB")
    elif format == "obj":
        bpy.ops.wm.obj_export(filepath=path, path_mode="COPY")
    elif format == "fbx":
        bpy.ops.export_scene.fbx(filepath=path, path_mode="COPY", embed_textures=True)
    elif format == "usdz":
        bpy.ops.wm.usd_export(filepath=path)
    else:
        raise ValueError(f"no exporter for {format}")


def summary():
    meshes = [o for o in bpy.data.objects if o.type == "MESH"]
    faces = 0
    for mesh in meshes:
        faces += sum(len(p.vertices) - 2 for p in mesh.data.polygons)
    return {"meshes": len(meshes), "vertices": sum(len(o.data.vertices) for o in meshes), "triangles": faces,
            "images": len([i for i in bpy.data.images if i.size[0] > 0]),
            "uv_layers": min((len(o.data.uv_layers) for o in meshes), default=0)}


def main():
    arguments = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]
    result = {"blender": bpy.app.version_string}
    try:
        clear()
        if arguments[0] == "convert":
            source, format, target = arguments[1:4]
            started = time.perf_counter()
            import_file(source)
            imported = time.perf_counter()
            export_file(target, format)
            result.update({"import_seconds": imported - started, "export_seconds": time.perf_counter() - imported})
        else:
            import_file(arguments[1])
            result.update(summary())
    except Exception as error:  # reported, not raised: the benchmark prints what failed
        result["error"] = f"{type(error).__name__}: {error}"
    print("RESULT " + json.dumps(result), flush=True)


main()
