// Manifest parsing and validation: the M rows of the hostile catalogue, scan pairing.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "aftermath/batch/manifest.hpp"
#include "aftermath/core/error.hpp"

namespace fs = std::filesystem;
using namespace aftermath;
using namespace aftermath::batch;

namespace {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/aftermath-batch-test.XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }
  fs::path touch(const std::string& rel, const std::string& content = "x") const {
    const fs::path p = path_ / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << content;
    return p;
  }
  fs::path write(const std::string& rel, const std::string& text) const { return touch(rel, text); }

 private:
  fs::path path_;
};

// The message of the Error(usage) that `f` throws ("" if it does not throw).
template <typename F>
std::string usage_error(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::usage) << e.what();
    return e.what();
  }
  return {};
}

const char* kTwoJobs =
    "version: 1\n"
    "jobs:\n"
    "  - name: p1\n"
    "    pre: scenes/pre.tif\n"
    "    post: scenes/post.tif\n"
    "    footprints: buildings.geojson\n"
    "    out: out/p1.h5\n"
    "  - name: p2\n"
    "    pre: [scenes/pre.tif]\n"
    "    post: scenes/post.tif\n"
    "    set: [threshold.value=0.4]\n"
    "    out: out/p2.h5\n";

}  // namespace

TEST(Manifest, PathsAreRelativeToTheManifest) {
  TempDir d;
  d.touch("sub/scenes/pre.tif");
  d.touch("sub/scenes/post.tif");
  d.touch("sub/buildings.geojson");
  const auto path = d.write("sub/m.yaml", kTwoJobs);
  const Manifest m = load_manifest(path.string());
  ASSERT_EQ(m.jobs.size(), 2u);
  EXPECT_EQ(m.jobs[0].pre.at(0), (d.path() / "sub/scenes/pre.tif").string());
  EXPECT_EQ(m.jobs[0].footprints, (d.path() / "sub/buildings.geojson").string());
  EXPECT_EQ(m.jobs[1].out, (d.path() / "sub/out/p2.h5").string());
  EXPECT_EQ(m.jobs[1].line, 8);
  EXPECT_TRUE(m.jobs[1].footprints.empty());
  const auto jobs = validate_manifest(m);
  ASSERT_EQ(jobs.size(), 2u);
  EXPECT_EQ(jobs[1].config.threshold.value, 0.4);
  EXPECT_EQ(jobs[0].config.threshold.value, 0.5);
  EXPECT_EQ(jobs[1].index, 1u);
}

TEST(Manifest, CrlfAndBomAreAcceptedM04) {
  std::string crlf = "\xEF\xBB\xBF";
  for (const char* c = kTwoJobs; *c; ++c) crlf += (*c == '\n') ? std::string("\r\n") : std::string(1, *c);
  const Manifest a = parse_manifest(kTwoJobs, "/base", "m.yaml");
  const Manifest b = parse_manifest(crlf, "/base", "m.yaml");
  ASSERT_EQ(a.jobs.size(), b.jobs.size());
  for (std::size_t i = 0; i < a.jobs.size(); ++i) {
    EXPECT_EQ(a.jobs[i].name, b.jobs[i].name);
    EXPECT_EQ(a.jobs[i].pre, b.jobs[i].pre);
    EXPECT_EQ(a.jobs[i].out, b.jobs[i].out);  // no trailing \r on the last path
    EXPECT_EQ(a.jobs[i].overrides, b.jobs[i].overrides);
  }
  EXPECT_EQ(b.jobs[1].out, "/base/out/p2.h5");
}

TEST(Manifest, QuotedPathsWithCommasSpacesAndUtf8M03M06) {
  TempDir d;
  d.touch("scènes d'été/pre, 2011.tif");
  d.touch("scènes d'été/post, 2011.tif");
  const std::string text =
      "jobs:\n"
      "  - name: \"Joplin, MO\"\n"
      "    pre: \"scènes d'été/pre, 2011.tif\"\n"
      "    post: 'scènes d''été/post, 2011.tif'\n"
      "    out: \"sorties neuves/Joplin, MO.h5\"\n";
  const auto path = d.write("m.yaml", text);
  const Manifest m = load_manifest(path.string());
  ASSERT_EQ(m.jobs.size(), 1u);
  EXPECT_EQ(m.jobs[0].name, "Joplin, MO");
  EXPECT_EQ(m.jobs[0].pre.at(0), (d.path() / "scènes d'été/pre, 2011.tif").string());
  EXPECT_EQ(m.jobs[0].post.at(0), (d.path() / "scènes d'été/post, 2011.tif").string());
  EXPECT_EQ(m.jobs[0].out, (d.path() / "sorties neuves/Joplin, MO.h5").string());
  // The output directory does not exist yet: valid (the engine creates it).
  EXPECT_EQ(validate_manifest(m).size(), 1u);
}

TEST(Manifest, MissingFieldsNameTheJobAndLineM08) {
  const std::string text =
      "jobs:\n"
      "  - name: p1\n"
      "    pre: a.tif\n"
      "    post: b.tif\n"
      "    out: p1.h5\n"
      "  - name: p2\n"
      "    pre: a.tif\n";
  const std::string e = usage_error([&] { parse_manifest(text, "/b", "m.yaml"); });
  EXPECT_NE(e.find("m.yaml:6"), std::string::npos) << e;
  EXPECT_NE(e.find("job 'p2'"), std::string::npos) << e;
  EXPECT_NE(e.find("missing fields post, out"), std::string::npos) << e;

  const std::string unnamed = usage_error([&] {
    parse_manifest("jobs:\n  - pre: a.tif\n    post: b.tif\n    out: x.h5\n", "/b", "m.yaml");
  });
  EXPECT_NE(unnamed.find("job #1"), std::string::npos) << unnamed;
  EXPECT_NE(unnamed.find("missing field name"), std::string::npos) << unnamed;
}

TEST(Manifest, UnknownDuplicateAndMistypedFieldsAreRefused) {
  auto e = usage_error([] { parse_manifest("jobs:\n  - name: a\n    pre: a.tif\n    post: b.tif\n    out: x.h5\n    outt: y\n", "/b", "m.yaml"); });
  EXPECT_NE(e.find("job 'a': unknown field 'outt'"), std::string::npos) << e;
  e = usage_error([] { parse_manifest("jobs:\n  - name: a\n    pre: a.tif\n    pre: c.tif\n    post: b.tif\n    out: x.h5\n", "/b", "m.yaml"); });
  EXPECT_NE(e.find("duplicate key 'pre'"), std::string::npos) << e;
  e = usage_error([] { parse_manifest("jobs:\n  - name: a\n    pre: {x: 1}\n    post: b.tif\n    out: x.h5\n", "/b", "m.yaml"); });
  EXPECT_NE(e.find("job 'a': field 'pre'"), std::string::npos) << e;
  e = usage_error([] { parse_manifest("jobz: []\n", "/b", "m.yaml"); });
  EXPECT_NE(e.find("unknown key 'jobz'"), std::string::npos) << e;
  e = usage_error([] { parse_manifest("jobs: [\n", "/b", "m.yaml"); });
  EXPECT_NE(e.find("YAML syntax error"), std::string::npos) << e;
}

TEST(Manifest, HeaderOnlyIsNothingToDoButAnEmptyFileIsRefusedM05) {
  EXPECT_TRUE(parse_manifest("jobs: []\n", "/b", "m.yaml").jobs.empty());
  EXPECT_TRUE(parse_manifest("version: 1\njobs:\n", "/b", "m.yaml").jobs.empty());
  EXPECT_TRUE(validate_manifest(parse_manifest("jobs: []\n", "/b", "m.yaml")).empty());
  for (const char* text : {"", "\xEF\xBB\xBF", "# only a comment\r\n\r\n"}) {
    const auto e = usage_error([&] { parse_manifest(text, "/b", "m.yaml"); });
    EXPECT_NE(e.find("empty manifest"), std::string::npos) << e;
  }
}

TEST(Manifest, DuplicateOutputsAreRefusedM02) {
  TempDir d;
  d.touch("a.tif");
  d.touch("b.tif");
  const std::string text =
      "jobs:\n"
      "  - {name: p1, pre: a.tif, post: b.tif, out: out/m02_same.h5}\n"
      "  - {name: p2, pre: a.tif, post: b.tif, out: out/../out/m02_same.h5}\n";
  const Manifest m = parse_manifest(text, d.path().string(), "m.yaml");
  const auto e = usage_error([&] { validate_manifest(m); });
  EXPECT_NE(e.find("job 'p2'"), std::string::npos) << e;
  EXPECT_NE(e.find("also written by job 'p1'"), std::string::npos) << e;
  EXPECT_NE(e.find("m02_same.h5"), std::string::npos) << e;
}

TEST(Manifest, OutputThatIsAnInputIsRefusedM07O08) {
  TempDir d;
  d.touch("a.tif");
  d.touch("b.tif");
  fs::create_symlink(d.path() / "a.tif", d.path() / "link.h5");
  for (const std::string out : {"a.tif", "link.h5", "./sub/../b.tif"}) {
    const Manifest m = parse_manifest("jobs:\n  - {name: p1, pre: a.tif, post: b.tif, out: '" + out + "'}\n",
                                      d.path().string(), "m.yaml");
    const auto e = usage_error([&] { validate_manifest(m); });
    EXPECT_NE(e.find("refusing to overwrite an input"), std::string::npos) << out << ": " << e;
    EXPECT_NE(e.find("job 'p1'"), std::string::npos) << e;
  }
  // Also across jobs: one job's output is another job's input.
  const Manifest m = parse_manifest(
      "jobs:\n  - {name: p1, pre: a.tif, post: b.tif, out: x.h5}\n  - {name: p2, pre: a.tif, post: b.tif, out: b.tif}\n",
      d.path().string(), "m.yaml");
  const auto e = usage_error([&] { validate_manifest(m); });
  EXPECT_NE(e.find("job 'p2': field 'out'"), std::string::npos) << e;
  EXPECT_TRUE(fs::file_size(d.path() / "a.tif") == 1 && fs::file_size(d.path() / "b.tif") == 1);
}

TEST(Manifest, MissingInputsAndConfigErrorsNameJobAndFieldM01) {
  TempDir d;
  d.touch("a.tif");
  d.touch("b.tif");
  d.write("bad.yaml", "schema_version: 1\nthreshold:\n  valu: 0.4\n");
  const Manifest m = parse_manifest(
      "jobs:\n"
      "  - {name: p1, pre: a.tif, post: b.tif, out: p1.h5}\n"
      "  - {name: p2, pre: a.tif, post: nope.tif, out: p2.h5}\n"
      "  - {name: p3, pre: a.tif, post: b.tif, config: bad.yaml, out: p3.h5}\n"
      "  - {name: p4, pre: a.tif, post: b.tif, set: {threshold.value: 7}, out: p4.h5}\n"
      "  - {name: p1, pre: a.tif, post: b.tif, out: p5.h5}\n",
      d.path().string(), "m.yaml");
  const auto e = usage_error([&] { validate_manifest(m); });
  EXPECT_NE(e.find("4 problems"), std::string::npos) << e;
  EXPECT_NE(e.find("line 3: job 'p2': field 'post': " + (d.path() / "nope.tif").string() + " does not exist"), std::string::npos) << e;
  EXPECT_NE(e.find("job 'p3': config:"), std::string::npos) << e;
  EXPECT_NE(e.find("threshold.valu"), std::string::npos) << e;
  EXPECT_NE(e.find("job 'p4': config:"), std::string::npos) << e;
  EXPECT_NE(e.find("name already used"), std::string::npos) << e;
}

TEST(Manifest, SeveralScenesPerSideNeedTtest) {
  TempDir d;
  d.touch("a.tif");
  d.touch("a2.tif");
  d.touch("b.tif");
  const Manifest m = parse_manifest("jobs:\n  - {name: stack, pre: [a.tif, a2.tif], post: [b.tif], out: s.h5}\n",
                                    d.path().string(), "m.yaml");
  const auto e = usage_error([&] { validate_manifest(m); });
  EXPECT_NE(e.find("job 'stack': field 'pre' lists 2 scenes; several scenes per side need detect.method ttest, "
                   "not available yet"), std::string::npos) << e;
}

TEST(Manifest, DefaultsAndCommandLineOverrides) {
  TempDir d;
  d.touch("a.tif");
  d.touch("b.tif");
  d.touch("fp.geojson");
  d.write("c.yaml", "schema_version: 1\ntiling:\n  tile_size: 256\n");
  const Manifest m = parse_manifest(
      "defaults:\n  config: c.yaml\n  set: [threshold.value=0.3]\n  footprints: fp.geojson\n"
      "jobs:\n"
      "  - {name: a, pre: a.tif, post: b.tif, out: a.h5}\n"
      "  - {name: b, pre: a.tif, post: b.tif, footprints: '', set: {threshold.value: 0.6, input.pre_bands: [1], input.post_bands: [1]}, out: b.h5}\n",
      d.path().string(), "m.yaml");
  const auto jobs = validate_manifest(m, {"", {"damage.minor=0.2"}});
  ASSERT_EQ(jobs.size(), 2u);
  EXPECT_EQ(jobs[0].config.tiling.tile_size, 256);
  EXPECT_EQ(jobs[0].config.threshold.value, 0.3);
  EXPECT_EQ(jobs[1].config.threshold.value, 0.6);
  EXPECT_EQ(jobs[1].config.input.pre_bands, std::vector<int>{1});
  EXPECT_EQ(jobs[0].config.damage.minor, 0.2);
  EXPECT_EQ(jobs[0].job.footprints, (d.path() / "fp.geojson").string());
  EXPECT_TRUE(jobs[1].job.footprints.empty());
  EXPECT_EQ(jobs[0].config_path, (d.path() / "c.yaml").string());
}

TEST(Manifest, RoundTripsThroughYaml) {
  const Manifest a = parse_manifest(kTwoJobs, "/base dir/é", "m.yaml");
  const Manifest b = parse_manifest(to_manifest_yaml(a), "/elsewhere", "again.yaml");
  ASSERT_EQ(a.jobs.size(), b.jobs.size());
  for (std::size_t i = 0; i < a.jobs.size(); ++i) {
    EXPECT_EQ(a.jobs[i].name, b.jobs[i].name);
    EXPECT_EQ(a.jobs[i].pre, b.jobs[i].pre);
    EXPECT_EQ(a.jobs[i].post, b.jobs[i].post);
    EXPECT_EQ(a.jobs[i].footprints, b.jobs[i].footprints);
    EXPECT_EQ(a.jobs[i].overrides, b.jobs[i].overrides);
    EXPECT_EQ(a.jobs[i].out, b.jobs[i].out);
  }
}

TEST(Scan, PairsScenesByAreaAndDate) {
  TempDir d;
  d.touch("joplin_20110519.tif");
  d.touch("joplin_2011-05-25_post.tif");
  d.touch("joplin_20110601.TIF");
  d.touch("joplin_footprints.geojson");
  d.touch("port_au_prince_20100110.tif");
  d.touch("port_au_prince_20100115.vrt");
  d.touch("lonely_20200101.tif");
  d.touch("notes.tif");  // ignored: no date
  d.touch("joplin_20110519.tif.aux.xml");
  Manifest m = scan_directory(d.path().string(), {});
  ASSERT_EQ(m.jobs.size(), 3u);
  EXPECT_EQ(m.jobs[0].name, "joplin_20110519_20110525");
  EXPECT_EQ(m.jobs[0].pre.at(0), (d.path() / "joplin_20110519.tif").string());
  EXPECT_EQ(m.jobs[0].post.at(0), (d.path() / "joplin_2011-05-25_post.tif").string());
  EXPECT_EQ(m.jobs[0].footprints, (d.path() / "joplin_footprints.geojson").string());
  EXPECT_EQ(m.jobs[0].out, (d.path() / "joplin_20110519_20110525.h5").string());
  EXPECT_EQ(m.jobs[1].name, "joplin_20110525_20110601");
  EXPECT_EQ(m.jobs[2].name, "port_au_prince_20100110_20100115");
  EXPECT_TRUE(m.jobs[2].footprints.empty());
  EXPECT_EQ(validate_manifest(m).size(), 3u);

  m = scan_directory(d.path().string(), {(d.path() / "out").string(), Pairing::first});
  ASSERT_EQ(m.jobs.size(), 3u);
  EXPECT_EQ(m.jobs[1].name, "joplin_20110519_20110601");
  EXPECT_EQ(m.jobs[1].out, (d.path() / "out/joplin_20110519_20110601.h5").string());

  d.touch("joplin_20110519_b.tif");
  const auto e = usage_error([&] { scan_directory(d.path().string(), {}); });
  EXPECT_NE(e.find("two scenes of area 'joplin' on 20110519"), std::string::npos) << e;
}

TEST(Scan, ReadsStacItems) {
  TempDir d;
  d.touch("data/S2_a.tif");
  d.touch("data/S2_b.tif");
  auto item = [&](const std::string& id, const std::string& dt, const std::string& href) {
    return "{\"type\":\"Feature\",\"stac_version\":\"1.0.0\",\"id\":\"" + id +
           "\",\"properties\":{\"datetime\":\"" + dt + "\",\"grid:code\":\"MGRS-15SUD\"},"
           "\"assets\":{\"thumbnail\":{\"href\":\"t.png\",\"roles\":[\"thumbnail\"]},"
           "\"visual\":{\"href\":\"" + href + "\",\"type\":\"image/tiff; application=geotiff\",\"roles\":[\"data\"]}}}";
  };
  d.write("item-b.json", item("S2B_xyz", "2023-02-10T10:00:00Z", "data/S2_b.tif"));
  d.write("item-a.json", item("S2A_xyz", "2023-02-01T10:00:00Z", "./data/S2_a.tif"));
  d.write("unrelated.json", "{\"hello\": 1}");
  const Manifest m = scan_directory(d.path().string(), {});
  ASSERT_EQ(m.jobs.size(), 1u);
  EXPECT_EQ(m.jobs[0].name, "MGRS-15SUD_20230201_20230210");
  EXPECT_EQ(m.jobs[0].pre.at(0), (d.path() / "data/S2_a.tif").string());
  EXPECT_EQ(m.jobs[0].post.at(0), (d.path() / "data/S2_b.tif").string());
}
