// Every detector through run_job: extra layers and fit diagnostics stored, layers identical for 1
// and 2 threads (tiles with the detector's halo), and a pair whose bands cannot be paired fails.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <hdf5_hl.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "aftermath/core/error.hpp"
#include "aftermath/engine/job.hpp"
#include "aftermath/io/geotiff_writer.hpp"
#include "synthetic_scene.hpp"
#include "temp_dir.hpp"

namespace fs = std::filesystem;
using namespace aftermath;

namespace {

struct TempDir : test::TempDir {
  TempDir() : test::TempDir("aftermath-detruns") {}
};

synth::SceneSpec small_scene() {
  synth::SceneSpec spec;
  spec.width = 300;
  spec.height = 280;
  spec.shift_x = 0.3;
  return spec;
}

void write_scene(const synth::SceneSpec& spec, bool post, const fs::path& path, int bands) {
  synth::SceneSpec s = spec;
  const Grid g = synth::scene_grid(s);
  std::vector<cv::Mat> all = synth::render(s, post, {0, 0, s.width, s.height});
  all.resize(static_cast<std::size_t>(std::min<int>(bands, static_cast<int>(all.size()))));
  GeoTiffWriter w(path.string(), g, static_cast<int>(all.size()), CV_16U);
  w.write({0, 0, s.width, s.height}, all);
  w.close();
}

std::vector<unsigned char> dataset_bytes(const std::string& file, const std::string& name) {
  hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  EXPECT_GE(f, 0) << file;
  hid_t d = H5Dopen2(f, name.c_str(), H5P_DEFAULT);
  EXPECT_GE(d, 0) << name;
  hid_t type = H5Dget_type(d), space = H5Dget_space(d);
  const auto n = static_cast<std::size_t>(H5Sget_simple_extent_npoints(space)) * H5Tget_size(type);
  std::vector<unsigned char> v(n);
  EXPECT_GE(H5Dread(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()), 0);
  H5Tclose(type);
  H5Sclose(space);
  H5Dclose(d);
  H5Fclose(f);
  return v;
}

bool has_root_attribute(const std::string& file, const std::string& name) {
  hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  const bool yes = H5Aexists_by_name(f, "/", name.c_str(), H5P_DEFAULT) > 0;
  H5Fclose(f);
  return yes;
}

class DetectorRun : public ::testing::TestWithParam<std::string> {};

TEST_P(DetectorRun, StoresItsLayersAndIsThreadAndTileIndependent) {
  TempDir dir;
  const auto spec = small_scene();
  write_scene(spec, false, dir.path / "pre.tif", 4);
  write_scene(spec, true, dir.path / "post.tif", 4);
  std::vector<std::string> outs;
  // 1 and 2 threads on 128 px tiles, and 2 threads on 256 px tiles: the values may depend on
  // neither (HDF5 reads give the same array whatever the chunking).
  for (const auto& [threads, tile] : {std::pair{1, 128}, std::pair{2, 128}, std::pair{2, 256}}) {
    RunRequest r;
    r.pre = (dir.path / "pre.tif").string();
    r.post = (dir.path / "post.tif").string();
    r.out = (dir.path / ("out" + std::to_string(threads) + "-" + std::to_string(tile) + ".h5"))
                .string();
    r.threads = threads;
    r.config.tiling.tile_size = tile;  // several tiles, so the halo matters
    r.config.detect.method = GetParam();
    r.config.detect.ensemble_ttest = 1;  // the ensemble with every halo-reading member
    r.config.detect.ensemble_texture = 1;
    r.config.radiometry.method = GetParam() == "irmad" ? "irmad" : "robust-linear";
    ASSERT_NO_THROW(run_job(r)) << GetParam();
    outs.push_back(r.out);
  }
  std::vector<std::string> layers{"change_score", "damage_mask"};
  if (GetParam() == "irmad" || GetParam() == "ensemble")
    layers.push_back("irmad_no_change_probability");
  if (GetParam() == "ttest" || GetParam() == "ensemble") layers.push_back("ttest_t");
  for (const auto& l : layers) {
    EXPECT_EQ(dataset_bytes(outs[0], l), dataset_bytes(outs[1], l))
        << GetParam() << " " << l << " threads";
    EXPECT_EQ(dataset_bytes(outs[1], l), dataset_bytes(outs[2], l))
        << GetParam() << " " << l << " tiling";
  }
  EXPECT_TRUE(has_root_attribute(outs[0], "normalisation_method"));
  if (GetParam() == "irmad") {
    EXPECT_TRUE(has_root_attribute(outs[0], "detector_irmad_iterations"));
    EXPECT_TRUE(has_root_attribute(outs[0], "detector_irmad_canonical_correlations"));
    EXPECT_TRUE(has_root_attribute(outs[0], "detector_irmad_converged"));
    EXPECT_TRUE(has_root_attribute(outs[0], "normalisation_irmad_canonical_correlations"));
  }
}

INSTANTIATE_TEST_SUITE_P(Engine, DetectorRun,
                         ::testing::Values("cva", "log-ratio", "irmad", "ssim", "texture", "ttest",
                                           "ensemble"),
                         [](const auto& info) {
                           std::string n = info.param;
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

TEST(DetectorRunBands, UnpairableBandsFailClearly) {
  TempDir dir;
  const auto spec = small_scene();
  write_scene(spec, false, dir.path / "pre.tif", 4);
  write_scene(spec, true, dir.path / "post.tif", 3);
  RunRequest r;
  r.pre = (dir.path / "pre.tif").string();
  r.post = (dir.path / "post.tif").string();
  r.out = (dir.path / "out.h5").string();
  try {
    run_job(r);
    FAIL() << "4 vs 3 bands without a pairing must fail";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::input);
    EXPECT_NE(std::string(e.what()).find("input.pre_bands"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(r.out));
  // Paired explicitly, the same scenes run.
  r.config.input.pre_bands = {1, 2, 3};
  r.config.input.post_bands = {1, 2, 3};
  EXPECT_NO_THROW(run_job(r));
}

// ---- stacks end to end: 3 pre + 2 post SAR-like scenes (dB, 4-look speckle) ----------------

std::vector<float> read_floats(const std::string& file, const std::string& name) {
  std::vector<float> v;
  hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t d = H5Dopen2(f, name.c_str(), H5P_DEFAULT);
  hid_t space = H5Dget_space(d);
  v.resize(static_cast<std::size_t>(H5Sget_simple_extent_npoints(space)));
  EXPECT_GE(H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()), 0);
  H5Sclose(space);
  H5Dclose(d);
  H5Fclose(f);
  return v;
}

TEST(DetectorRunStack, TtestOverThreePreAndTwoPostScenesFindsTheChangedBlocks) {
  TempDir dir;
  synth::SceneSpec spec;
  spec.width = spec.height = 240;
  const Grid g = synth::scene_grid(spec);
  // sigma0: -13 dB ground with 8 blocks at -3 dB; blocks 0, 2, 4, 6 lose 6 dB after the event.
  std::vector<cv::Rect> blocks;
  for (int i = 0; i < 8; ++i) blocks.emplace_back(20 + (i % 4) * 55, 40 + (i / 4) * 100, 30, 30);
  auto write = [&](const std::string& name, bool after, unsigned seed) {
    std::mt19937 rng(seed);
    std::gamma_distribution<float> speckle(4.0f, 0.25f);
    cv::Mat db(spec.height, spec.width, CV_32F);
    for (int y = 0; y < db.rows; ++y) {
      for (int x = 0; x < db.cols; ++x) {
        float s0 = 0.05f;
        for (std::size_t i = 0; i < blocks.size(); ++i) {
          if (blocks[i].contains({x, y})) s0 = (after && i % 2 == 0) ? 0.125f : 0.5f;
        }
        db.at<float>(y, x) = 10.0f * std::log10(s0 * speckle(rng));
      }
    }
    GeoTiffWriter w((dir.path / name).string(), g, 1, CV_32F);
    w.write({0, 0, spec.width, spec.height}, {db});
    w.close();
    return (dir.path / name).string();
  };
  RunRequest r;
  r.pre = write("pre1.tif", false, 11);
  r.more_pre = {write("pre2.tif", false, 12), write("pre3.tif", false, 13)};
  r.post = write("post1.tif", true, 21);
  r.more_post = {write("post2.tif", true, 22)};
  r.out = (dir.path / "stack.h5").string();
  r.config.detect.method = "ttest";
  r.config.align.enabled = false;  // speckle-only scenes: nothing to align on
  r.config.radiometry.method = "none";
  ASSERT_NO_THROW(run_job(r));
  {
    hid_t f = H5Fopen(r.out.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    double pre_scenes = 0, post_scenes = 0;
    EXPECT_GE(H5LTget_attribute_double(f, "/", "detector_ttest_pre_scenes", &pre_scenes), 0);
    EXPECT_GE(H5LTget_attribute_double(f, "/", "detector_ttest_post_scenes", &post_scenes), 0);
    EXPECT_EQ(pre_scenes, 3.0);
    EXPECT_EQ(post_scenes, 2.0);
    H5Fclose(f);
  }
  const std::vector<float> t = read_floats(r.out, "ttest_t");
  const std::vector<unsigned char> mask = dataset_bytes(r.out, "damage_mask");
  ASSERT_EQ(t.size(), static_cast<std::size_t>(spec.width * spec.height));
  for (std::size_t i = 0; i < blocks.size(); ++i) {
    const cv::Rect in(blocks[i].x + 2, blocks[i].y + 2, blocks[i].width - 4, blocks[i].height - 4);
    double changed = 0, tsum = 0;
    for (int y = in.y; y < in.y + in.height; ++y) {
      for (int x = in.x; x < in.x + in.width; ++x) {
        const std::size_t k = static_cast<std::size_t>(y * spec.width + x);
        changed += mask[k] == 1;
        tsum += t[k];
      }
    }
    const double n = in.area();
    if (i % 2 == 0) {
      EXPECT_GE(changed / n, 0.9) << "block " << i;
      EXPECT_LT(tsum / n, -3.0) << "block " << i << ": a 6 dB loss has a strongly negative t";
    } else {
      EXPECT_LE(changed / n, 0.1) << "block " << i;
    }
  }
  // A stack with a detector that compares two scenes only is a usage error.
  r.config.detect.method = "cva";
  r.overwrite = true;
  try {
    run_job(r);
    FAIL() << "cva with stacks must be refused";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::usage);
  }
}

}  // namespace
