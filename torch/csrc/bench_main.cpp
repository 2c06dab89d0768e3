// The training step loop written directly in C++ against the bridge's C ABI,
// with no Go in the process: the baseline that `make bench` compares the Go
// trainer with. Usage: resomap-bench-cpp MODEL RES BATCH STEPS WARMUP THREADS DEVICE
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "resomap.h"

int main(int argc, char **argv) {
  if (argc != 8) {
    std::fprintf(stderr, "usage: %s MODEL RES BATCH STEPS WARMUP THREADS DEVICE\n", argv[0]);
    return 2;
  }
  const char *model = argv[1];
  int res = std::atoi(argv[2]), batch = std::atoi(argv[3]), steps = std::atoi(argv[4]),
      warm = std::atoi(argv[5]), threads = std::atoi(argv[6]);
  const char *device = argv[7];
  rm_set_threads(threads);
  float mean[3] = {0.5f, 0.5f, 0.5f}, stdv[3] = {0.25f, 0.25f, 0.25f};
  rm_model *m = nullptr;
  rm_model_options o{};
  o.size = sizeof o;
  o.name = model;
  o.device = device;
  o.init_seed = 1;
  o.mean = mean;
  o.std = stdv;
  o.momentum = 0.9;
  o.beta1 = 0.9;
  o.beta2 = 0.999;
  o.eps = 1e-8;
  o.in_channels = 3;
  o.num_classes = 10;
  o.image_size = res;
  if (rm_model_new(&o, &m) != RM_OK) {
    std::fprintf(stderr, "%s\n", rm_last_error());
    return 1;
  }
  std::mt19937 rng(1);
  std::vector<uint8_t> x((size_t)batch * 3 * res * res);
  std::vector<int64_t> y(batch);
  for (auto &v : x) v = (uint8_t)(rng() & 255);
  for (int i = 0; i < batch; i++) y[i] = i % 10;
  double loss;
  int64_t correct;
  int32_t count;
  // Trainer.Train's loop: the next batch is staged before the step's figures
  // are read.
  if (rm_stage_batch(m, x.data(), y.data(), batch, 3, res, res) != RM_OK) {
    std::fprintf(stderr, "%s\n", rm_last_error());
    return 1;
  }
  auto step = [&] {
    rm_zero_grad(m);
    if (rm_forward_backward_staged(m, 0, batch, 1.0, 0.0) != RM_OK || rm_optimizer_step(m, 0.01) != RM_OK ||
        rm_stage_batch(m, x.data(), y.data(), batch, 3, res, res) != RM_OK ||
        rm_take_metrics(m, &loss, &correct, 1, &count) != RM_OK) {
      std::fprintf(stderr, "%s\n", rm_last_error());
      std::exit(1);
    }
  };
  for (int i = 0; i < warm; i++) step();
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < steps; i++) step();
  double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("{\"model\": \"%s\", \"res\": %d, \"bs\": %d, \"img_s\": %.1f}\n", model, res, batch, batch * steps / dt);
  rm_model_free(m);
  return 0;
}
