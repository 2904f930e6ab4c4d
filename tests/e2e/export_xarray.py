"""xarray opens an aftermath output (HDF5, netCDF-4 / CF-1.8 layout) with x/y coordinates.

Usage: python3 export_xarray.py OUT.h5
Checks, for every engine available (h5netcdf, and netcdf4 when installed): the layers have
dimensions (y, x) with x/y coordinate variables equal to the pixel centres of /crs GeoTransform,
the CF attributes (grid_mapping, _FillValue decoded as NaN, flag_values/flag_meanings), the crs
grid mapping, and the /footprints group as a table along `feature`.
"""
import importlib.util
import sys

import numpy as np
import xarray as xr


def check(path, engine):
    ds = xr.open_dataset(path, engine=engine, decode_coords="all")
    print(f"[{engine}] {dict(ds.sizes)}; coords {sorted(ds.coords)}; data {sorted(ds.data_vars)}")
    assert "x" in ds.coords and "y" in ds.coords, "no x/y coordinates"
    assert "crs" in ds.coords, "crs is not a (grid mapping) coordinate"
    score = ds["change_score"]
    assert score.dims == ("y", "x"), score.dims
    gt = [float(v) for v in ds["crs"].attrs["GeoTransform"].split()]
    n_x, n_y = ds.sizes["x"], ds.sizes["y"]
    x_expected = gt[0] + (np.arange(n_x) + 0.5) * gt[1]
    y_expected = gt[3] + (np.arange(n_y) + 0.5) * gt[5]
    assert np.allclose(ds["x"].values, x_expected, rtol=0, atol=1e-6), "x != pixel centres"
    assert np.allclose(ds["y"].values, y_expected, rtol=0, atol=1e-6), "y != pixel centres"
    assert ds["x"].attrs.get("standard_name") == "projection_x_coordinate", ds["x"].attrs
    assert ds["y"].attrs.get("axis") == "Y", ds["y"].attrs
    assert score.encoding.get("grid_mapping", score.attrs.get("grid_mapping")) == "crs"
    # change_score is CF-packed: uint16 codes, scale_factor 2^-16, fill 65535 (decoded as NaN).
    assert score.encoding.get("_FillValue") == 65535, score.encoding
    assert score.encoding.get("scale_factor") == 2.0 ** -16, score.encoding
    assert str(score.encoding.get("dtype")) == "uint16", score.encoding
    assert ds["crs"].attrs["crs_wkt"].startswith(("PROJCRS", "PROJCS", "GEOGCRS", "GEOGCS"))
    valid = score.values[~np.isnan(score.values)]
    assert valid.size > 0 and valid.min() >= 0.0 and valid.max() <= 1.0, "scores outside [0, 1]"
    mask = ds["damage_mask"]
    assert list(mask.attrs["flag_values"]) == [0, 1, 255] or "flag_values" in mask.encoding
    assert mask.attrs["flag_meanings"] == "unchanged changed invalid"
    print(f"[{engine}] x {ds['x'].values[0]:.3f} .. {ds['x'].values[-1]:.3f} ({ds['x'].attrs['units']}), "
          f"y {ds['y'].values[0]:.3f} .. {ds['y'].values[-1]:.3f}; change_score valid {valid.size} px, "
          f"mean {valid.mean():.4f}; grid_mapping crs: {ds['crs'].attrs.get('grid_mapping_name')}")
    fp = xr.open_dataset(path, engine=engine, group="footprints")
    assert "feature" in fp.dims, fp.dims
    n = fp.sizes["feature"]
    for v in ("source_id", "damage_class", "mean_score", "geometry_wkt"):
        assert v in fp and fp[v].dims == ("feature",), v
    wkt = [str(w) for w in fp["geometry_wkt"].values]
    assert all(w.startswith(("POLYGON", "MULTIPOLYGON")) for w in wkt), "feature without geometry_wkt"
    print(f"[{engine}] footprints: {n} features; first {fp['source_id'].values[0]!s}: {wkt[0][:60]}...")
    ds.close()
    fp.close()


def main():
    path = sys.argv[1]
    engines = ["h5netcdf"]
    if importlib.util.find_spec("netCDF4") is not None:
        engines.append("netcdf4")
    for engine in engines:
        check(path, engine)
    print(f"xarray ok (engines: {', '.join(engines)})")


if __name__ == "__main__":
    main()
