#pragma once
// Constructors of the detectors (private to detect); make_detector picks one by name.
#include <memory>

#include "aftermath/detect/detector.hpp"

namespace aftermath::detect {

std::unique_ptr<Detector> make_cva(int radius, double half_score_sigma, bool log_ratio);
std::unique_ptr<Detector> make_irmad(int max_iterations, double tolerance, double half_score_sigma);
std::unique_ptr<Detector> make_ssim(int radius, double half_score_sigma);
std::unique_ptr<Detector> make_texture(int radius, double half_score_sigma);
std::unique_ptr<Detector> make_ttest(int radius, double half_score_sigma);

}  // namespace aftermath::detect
