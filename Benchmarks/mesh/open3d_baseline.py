"""The baseline of Benchmarks/mesh/run: Open3D's screened Poisson reconstruction (Kazhdan's PoissonRecon) of the same
oriented cloud, trimmed where its density is lowest as Open3D's documentation shows, then its quadric decimation to
the same budget. Run with the benchmark's own Python environment, where open3d-cpu is installed:

    python open3d_baseline.py CLOUD.ply DEPTH TRIANGLES OUT.ply

Prints one JSON object: seconds (reconstruction, trimming and decimation), peak memory, and the counts.
"""
import json
import resource
import sys
import time

import numpy
import open3d


def peak_resident_mb():
    """VmHWM, which starts afresh at exec (getrusage's maximum carries over from the benchmark that forked us)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    cloud_path, depth, triangles, output = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    cloud = open3d.io.read_point_cloud(cloud_path)
    started = time.monotonic()
    mesh, densities = open3d.geometry.TriangleMesh.create_from_point_cloud_poisson(cloud, depth=depth, n_threads=-1)
    solved = time.monotonic()
    densities = numpy.asarray(densities)
    mesh.remove_vertices_by_mask(densities < numpy.quantile(densities, 0.01))
    raw_triangles = len(mesh.triangles)
    if raw_triangles > triangles:
        mesh = mesh.simplify_quadric_decimation(target_number_of_triangles=triangles)
    finished = time.monotonic()
    open3d.io.write_triangle_mesh(output, mesh)
    print(json.dumps({
        "seconds": finished - started, "solve_seconds": solved - started,
        "peak_rss_mb": peak_resident_mb(),
        "raw_triangles": raw_triangles, "triangles": len(mesh.triangles), "vertices": len(mesh.vertices),
        "watertight": bool(mesh.is_watertight()),
    }))


if __name__ == "__main__":
    main()
