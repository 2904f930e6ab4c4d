#!/usr/bin/python3
"""The straightforward NumPy/OpenCV-Python change pipeline that issue 11 measures aftermath
against, written the way such a script usually is: whole scenes in memory, one step after the
other. Not part of aftermath; scripts/bench.sh --compare runs it side by side with `aftermath run`
on the same synthetic pair.

Steps: read both scenes (GDAL), phase correlation of the band means over the central 2048^2
(OpenCV, Hann window), warp
of the post bands by that shift (cubic), change-vector magnitude, Otsu threshold (on the
magnitude scaled to 8 bits), per-building mean magnitude (footprints burnt with GDAL), HDF5
write (float32 magnitude and uint8 mask in 512^2 chunks, shuffle + DEFLATE 1; the means).

Usage: baseline_pipeline.py PRE POST FOOTPRINTS OUT.h5 [threads]
Prints one JSON object: seconds per step and in total.
"""
import json
import sys
import time

import cv2
import h5py
import numpy as np
from osgeo import gdal, ogr

gdal.UseExceptions()
ogr.UseExceptions()


def main(pre_path, post_path, footprints_path, out_path, threads):
    cv2.setNumThreads(threads)
    times = {}
    t = time.perf_counter()

    def step(name):
        nonlocal t
        now = time.perf_counter()
        times[name] = round(now - t, 3)
        t = now

    pre_ds = gdal.Open(pre_path)
    pre = pre_ds.ReadAsArray().astype(np.float32)  # bands x rows x cols
    post = gdal.Open(post_path).ReadAsArray().astype(np.float32)
    step("read")

    # On the central 2048^2 (OpenCV returns NaN for a whole 4096^2 band mean).
    rows, cols = pre.shape[1:]
    side = min(2048, rows, cols)
    y0, x0 = (rows - side) // 2, (cols - side) // 2
    a = np.ascontiguousarray(pre[:, y0:y0 + side, x0:x0 + side].mean(axis=0))
    b = np.ascontiguousarray(post[:, y0:y0 + side, x0:x0 + side].mean(axis=0))
    hann = cv2.createHanningWindow((side, side), cv2.CV_32F)
    (dx, dy), _ = cv2.phaseCorrelate(a, b, hann)
    del a, b, hann
    step("phase_correlation")

    # post(p + d) ~ pre(p): sample the post scene at p + d.
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    size = (pre.shape[2], pre.shape[1])
    aligned = np.stack([
        cv2.warpAffine(band, m, size, flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP)
        for band in post
    ])
    del post
    step("warp")

    magnitude = np.sqrt(((aligned - pre) ** 2).sum(axis=0)).astype(np.float32)
    del aligned, pre
    step("change_vector")

    top = float(magnitude.max())
    scaled = (magnitude * (255.0 / top if top > 0 else 0.0)).astype(np.uint8)
    level, _ = cv2.threshold(scaled, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    mask = (scaled > level).astype(np.uint8)
    del scaled
    step("otsu")

    rows, cols = magnitude.shape
    labels_ds = gdal.GetDriverByName("MEM").Create("", cols, rows, 1, gdal.GDT_Int32)
    labels_ds.SetGeoTransform(pre_ds.GetGeoTransform())
    labels_ds.SetProjection(pre_ds.GetProjection())
    src = ogr.Open(footprints_path)
    layer = src.GetLayer(0)
    # Feature i (from 1) burnt as i; 0 is background.
    mem = ogr.GetDriverByName("Memory").CreateDataSource("")
    burn = mem.CreateLayer("burn", layer.GetSpatialRef())
    burn.CreateField(ogr.FieldDefn("id", ogr.OFTInteger))
    n = 0
    for feature in layer:
        n += 1
        out = ogr.Feature(burn.GetLayerDefn())
        out.SetField("id", n)
        out.SetGeometry(feature.GetGeometryRef())
        burn.CreateFeature(out)
    gdal.RasterizeLayer(labels_ds, [1], burn, options=["ATTRIBUTE=id"])
    labels = labels_ds.ReadAsArray().ravel()
    sums = np.bincount(labels, weights=magnitude.ravel(), minlength=n + 1)
    counts = np.bincount(labels, minlength=n + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = (sums / counts)[1:]
    del labels, labels_ds
    step("building_means")

    chunk = (min(512, rows), min(512, cols))
    with h5py.File(out_path, "w") as f:
        f.create_dataset("change_score", data=magnitude, chunks=chunk, shuffle=True,
                         compression="gzip", compression_opts=1)
        f.create_dataset("damage_mask", data=mask, chunks=chunk, shuffle=True,
                         compression="gzip", compression_opts=1)
        f.create_dataset("building_mean_score", data=means)
    step("hdf5_write")

    times["total"] = round(sum(times.values()), 3)
    times["shift"] = [round(dx, 3), round(dy, 3)]
    times["otsu_level"] = level
    times["buildings"] = n
    print(json.dumps(times))


if __name__ == "__main__":
    if len(sys.argv) < 5:
        print(__doc__.strip().splitlines()[-2], file=sys.stderr)
        sys.exit(2)
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4],
         int(sys.argv[5]) if len(sys.argv) > 5 else 2)
