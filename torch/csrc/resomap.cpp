// Implementation of resomap.h. Models mirror torchvision's module trees so
// that parameter and buffer names are exactly torchvision's state_dict keys.
#include "resomap.h"

#include <torch/script.h>
#include <torch/torch.h>
#include <torch/version.h>
#include <ATen/autocast_mode.h>

#include <cmath>
#include <cstring>
#include <map>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace nn = torch::nn;

namespace {

thread_local std::string g_error;

struct InvalidArgument : std::runtime_error {
  using std::runtime_error::runtime_error;
};

bool is_oom_message(const std::string &msg) {
  return msg.find("out of memory") != std::string::npos ||
         msg.find("can't allocate memory") != std::string::npos;
}

// Runs f, converting every exception into a status code and a message.
template <typename F>
int32_t guard(F &&f) {
  try {
    f();
    return RM_OK;
  } catch (const InvalidArgument &e) {
    g_error = e.what();
    return RM_INVALID;
  } catch (const std::bad_alloc &e) {
    g_error = std::string("out of memory: ") + e.what();
    return RM_OOM;
  } catch (const c10::OutOfMemoryError &e) {  // CUDA caching allocator
    g_error = e.what_without_backtrace();
    return RM_OOM;
  } catch (const c10::Error &e) {
    g_error = e.what_without_backtrace();
    return is_oom_message(g_error) ? RM_OOM : RM_ERR;
  } catch (const std::exception &e) {
    g_error = e.what();
    return is_oom_message(g_error) ? RM_OOM : RM_ERR;
  } catch (...) {
    g_error = "unknown C++ exception";
    return RM_ERR;
  }
}

// torchvision's initialisation for VGG and ResNet convolutions and norms.
void init_conv_bn(nn::Module &root, bool vgg_linear) {
  torch::NoGradGuard ng;
  for (auto &mod : root.modules(/*include_self=*/false)) {
    if (auto *conv = mod->as<nn::Conv2d>()) {
      nn::init::kaiming_normal_(conv->weight, 0.0, torch::kFanOut, torch::kReLU);
      if (conv->bias.defined()) nn::init::zeros_(conv->bias);
    } else if (auto *bn = mod->as<nn::BatchNorm2d>()) {
      nn::init::ones_(bn->weight);
      nn::init::zeros_(bn->bias);
    } else if (auto *lin = mod->as<nn::Linear>()) {
      if (vgg_linear) {
        nn::init::normal_(lin->weight, 0.0, 0.01);
        nn::init::zeros_(lin->bias);
      }
    }
  }
}

// Each model draws its randomness (dropout) from its own generator, seeded
// per step by the caller: libtorch's default generator is process-wide, so
// two trainings in one process would otherwise interleave their streams.
using GeneratorSlot = std::shared_ptr<at::Generator>;

// The default generator: models are initialised from it (seeded), and a
// TorchScript model's dropout draws from it (its state swapped with the
// model's own generator around each forward). One user at a time.
std::mutex g_default_generator_mu;

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

struct Net : nn::Module {
  GeneratorSlot gen = std::make_shared<at::Generator>();
  virtual torch::Tensor forward(torch::Tensor x) = 0;
  // The parameters and buffers under their state-dict names.
  virtual NamedTensors state_parameters() {
    NamedTensors out;
    for (auto &p : named_parameters()) out.emplace_back(p.key(), p.value());
    return out;
  }
  virtual NamedTensors state_buffers() {
    NamedTensors out;
    for (auto &b : named_buffers()) out.emplace_back(b.key(), b.value());
    return out;
  }
  // src, made for another shape of the tensor called name, in shape to:
  // only where the model knows how (ViT's position embedding).
  virtual torch::Tensor resized(const std::string &name, const torch::Tensor &src, at::IntArrayRef to) {
    throw InvalidArgument(name + " is " + c10::str(src.sizes()) + " in the weights, " + c10::str(to) +
                          " in the model, which cannot resize it");
  }
};

// nn::Dropout drawing from the model's generator. On CPU it computes what
// at::dropout computes (noise = bernoulli(1-p) / (1-p), then input * noise),
// so a generator seeded like the default one gives the same masks.
struct SeededDropoutImpl : nn::Module {
  double p;
  GeneratorSlot gen;
  SeededDropoutImpl(double p, GeneratorSlot gen) : p(p), gen(std::move(gen)) {}
  torch::Tensor forward(const torch::Tensor &x) {
    if (!is_training() || p == 0 || x.numel() == 0) return x;
    auto noise = at::empty_like(x).bernoulli_(1 - p, *gen);
    noise.div_(1 - p);
    return x * noise;
  }
};
TORCH_MODULE(SeededDropout);

// VGG as torchvision builds it: features / avgpool(7x7) / classifier.
struct VGG : Net {
  nn::Sequential features, classifier;
  nn::AdaptiveAvgPool2d avgpool{nn::AdaptiveAvgPool2dOptions({7, 7})};
  VGG(const std::vector<int> &cfg, bool bn, int in_ch, int nc) {
    int c = in_ch;
    for (int v : cfg) {
      if (v == 0) {
        features->push_back(nn::MaxPool2d(nn::MaxPool2dOptions(2).stride(2)));
        continue;
      }
      features->push_back(nn::Conv2d(nn::Conv2dOptions(c, v, 3).padding(1)));
      if (bn) features->push_back(nn::BatchNorm2d(v));
      features->push_back(nn::ReLU(nn::ReLUOptions(true)));
      c = v;
    }
    classifier = nn::Sequential(nn::Linear(512 * 7 * 7, 4096), nn::ReLU(nn::ReLUOptions(true)),
                                SeededDropout(0.5, gen), nn::Linear(4096, 4096),
                                nn::ReLU(nn::ReLUOptions(true)), SeededDropout(0.5, gen),
                                nn::Linear(4096, nc));
    register_module("features", features);
    register_module("avgpool", avgpool);
    register_module("classifier", classifier);
    init_conv_bn(*this, true);
  }
  torch::Tensor forward(torch::Tensor x) override {
    x = avgpool(features->forward(x));
    return classifier->forward(torch::flatten(x, 1));
  }
};

// The small CNN of the default sweep: three conv blocks and a global pool, so
// it accepts any resolution from 8 px and trains in seconds on a CPU.
struct SmallCNN : Net {
  nn::Sequential features, classifier;
  SmallCNN(int in_ch, int nc) {
    int c = in_ch, i = 0;
    for (int v : {16, 32, 64}) {
      if (i++ > 0) features->push_back(nn::MaxPool2d(nn::MaxPool2dOptions(2).stride(2)));
      features->push_back(nn::Conv2d(nn::Conv2dOptions(c, v, 3).padding(1).bias(false)));
      features->push_back(nn::BatchNorm2d(v));
      features->push_back(nn::ReLU(nn::ReLUOptions(true)));
      c = v;
    }
    features->push_back(nn::AdaptiveAvgPool2d(nn::AdaptiveAvgPool2dOptions({1, 1})));
    classifier = nn::Sequential(nn::Linear(c, nc));
    register_module("features", features);
    register_module("classifier", classifier);
    init_conv_bn(*this, false);
  }
  torch::Tensor forward(torch::Tensor x) override {
    return classifier->forward(torch::flatten(features->forward(x), 1));
  }
};

nn::Conv2d conv(int in, int out, int k, int stride, int pad) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, k).stride(stride).padding(pad).bias(false));
}

struct Block : nn::Module {
  virtual torch::Tensor forward(torch::Tensor x) = 0;
};

struct BasicBlock : Block {
  static const int expansion = 1;
  nn::Conv2d conv1{nullptr}, conv2{nullptr};
  nn::BatchNorm2d bn1{nullptr}, bn2{nullptr};
  nn::Sequential downsample{nullptr};
  BasicBlock(int in, int planes, int stride, nn::Sequential ds) {
    conv1 = register_module("conv1", conv(in, planes, 3, stride, 1));
    bn1 = register_module("bn1", nn::BatchNorm2d(planes));
    conv2 = register_module("conv2", conv(planes, planes, 3, 1, 1));
    bn2 = register_module("bn2", nn::BatchNorm2d(planes));
    if (ds) downsample = register_module("downsample", ds);
  }
  torch::Tensor forward(torch::Tensor x) override {
    auto idt = downsample ? downsample->forward(x) : x;
    auto y = (bn1(conv1(x))).relu_();
    y = bn2(conv2(y));
    return (y + idt).relu_();
  }
};

struct Bottleneck : Block {
  static const int expansion = 4;
  nn::Conv2d conv1{nullptr}, conv2{nullptr}, conv3{nullptr};
  nn::BatchNorm2d bn1{nullptr}, bn2{nullptr}, bn3{nullptr};
  nn::Sequential downsample{nullptr};
  Bottleneck(int in, int planes, int stride, nn::Sequential ds) {
    conv1 = register_module("conv1", conv(in, planes, 1, 1, 0));
    bn1 = register_module("bn1", nn::BatchNorm2d(planes));
    conv2 = register_module("conv2", conv(planes, planes, 3, stride, 1));
    bn2 = register_module("bn2", nn::BatchNorm2d(planes));
    conv3 = register_module("conv3", conv(planes, planes * 4, 1, 1, 0));
    bn3 = register_module("bn3", nn::BatchNorm2d(planes * 4));
    if (ds) downsample = register_module("downsample", ds);
  }
  torch::Tensor forward(torch::Tensor x) override {
    auto idt = downsample ? downsample->forward(x) : x;
    auto y = (bn1(conv1(x))).relu_();
    y = (bn2(conv2(y))).relu_();
    y = bn3(conv3(y));
    return (y + idt).relu_();
  }
};

template <typename B>
struct ResNet : Net {
  nn::Conv2d conv1{nullptr};
  nn::BatchNorm2d bn1{nullptr};
  nn::Linear fc{nullptr};
  std::vector<std::shared_ptr<B>> blocks;
  int inplanes = 64;
  ResNet(const std::vector<int> &layers, int in_ch, int nc) {
    conv1 = register_module("conv1", conv(in_ch, 64, 7, 2, 3));
    bn1 = register_module("bn1", nn::BatchNorm2d(64));
    const int planes[4] = {64, 128, 256, 512};
    for (int l = 0; l < 4; l++) {
      nn::Sequential layer;
      for (int b = 0; b < layers[l]; b++) {
        int stride = (b == 0 && l > 0) ? 2 : 1;
        nn::Sequential ds{nullptr};
        if (b == 0 && (stride != 1 || inplanes != planes[l] * B::expansion)) {
          ds = nn::Sequential(conv(inplanes, planes[l] * B::expansion, 1, stride, 0),
                              nn::BatchNorm2d(planes[l] * B::expansion));
        }
        auto blk = std::make_shared<B>(inplanes, planes[l], stride, ds);
        inplanes = planes[l] * B::expansion;
        layer->push_back(std::to_string(b), blk);
        blocks.push_back(blk);
      }
      register_module("layer" + std::to_string(l + 1), layer);
    }
    fc = register_module("fc", nn::Linear(512 * B::expansion, nc));
    init_conv_bn(*this, false);
  }
  torch::Tensor forward(torch::Tensor x) override {
    x = (bn1(conv1(x))).relu_();
    x = torch::max_pool2d(x, 3, 2, 1);
    for (auto &b : blocks) x = b->forward(x);
    x = torch::adaptive_avg_pool2d(x, {1, 1});
    return fc(torch::flatten(x, 1));
  }
};

// torchvision's _make_divisible: v rounded to a multiple of divisor, not
// below 90% of v.
int make_divisible(double v, int divisor) {
  int out = std::max(divisor, int(v + divisor / 2.0) / divisor * divisor);
  if (out < 0.9 * v) out += divisor;
  return out;
}

enum class Act { None, ReLU, Hardswish, SiLU };

nn::Functional activation(Act a) {
  switch (a) {
    case Act::ReLU: return nn::Functional([](torch::Tensor x) { return torch::relu(x); });
    case Act::Hardswish: return nn::Functional([](torch::Tensor x) { return torch::hardswish(x); });
    case Act::SiLU: return nn::Functional([](torch::Tensor x) { return torch::silu(x); });
    default: return nn::Functional([](torch::Tensor x) { return x; });
  }
}

// A Sequential that can sit inside another (nn::Sequential's forward is a
// template, which a Sequential cannot hold).
struct StackImpl : nn::SequentialImpl {
  using nn::SequentialImpl::SequentialImpl;
  torch::Tensor forward(torch::Tensor x) { return nn::SequentialImpl::forward(x); }
};
TORCH_MODULE(Stack);

// torchvision's Conv2dNormActivation: a bias-free convolution padded to
// keep the size at stride 1, BatchNorm (eps, momentum as the model sets
// them), then the activation (none: two modules, as torchvision has).
Stack conv_norm_act(int in, int out, int k, int stride, int groups, double eps, double momentum, Act act) {
  Stack s(nn::Conv2d(nn::Conv2dOptions(in, out, k).stride(stride).padding((k - 1) / 2).groups(groups).bias(false)),
          nn::BatchNorm2d(nn::BatchNorm2dOptions(out).eps(eps).momentum(momentum)));
  if (act != Act::None) s->push_back(activation(act));
  return s;
}

// torchvision's SqueezeExcitation: channel weights from the pooled input
// through two 1x1 convolutions; MobileNetV3 gates with ReLU/hardsigmoid,
// EfficientNet with SiLU/sigmoid.
struct SqueezeExcitationImpl : nn::Module {
  nn::Conv2d fc1{nullptr}, fc2{nullptr};
  bool silu, hard_gate;
  // MobileNetV3: ReLU, hardsigmoid; EfficientNet: SiLU, sigmoid; RegNet:
  // ReLU, sigmoid.
  SqueezeExcitationImpl(int in, int squeeze, bool silu, bool hard_gate) : silu(silu), hard_gate(hard_gate) {
    fc1 = register_module("fc1", nn::Conv2d(nn::Conv2dOptions(in, squeeze, 1)));
    fc2 = register_module("fc2", nn::Conv2d(nn::Conv2dOptions(squeeze, in, 1)));
  }
  torch::Tensor forward(torch::Tensor x) {
    auto s = fc1(torch::adaptive_avg_pool2d(x, {1, 1}));
    s = fc2(silu ? torch::silu(s) : torch::relu(s));
    return x * (hard_gate ? torch::hardsigmoid(s) : torch::sigmoid(s));
  }
};
TORCH_MODULE(SqueezeExcitation);

// MobileNetV3's InvertedResidual: expand (1x1, unless the width stays),
// depthwise, squeeze-excitation, project (1x1, no activation); the input
// added back when the shape is kept.
struct InvertedResidualImpl : nn::Module {
  nn::Sequential block;
  bool residual;
  InvertedResidualImpl(int in, int k, int expanded, int out, bool se, Act act, int stride) {
    const double eps = 0.001, momentum = 0.01;
    if (expanded != in) block->push_back(conv_norm_act(in, expanded, 1, 1, 1, eps, momentum, act));
    block->push_back(conv_norm_act(expanded, expanded, k, stride, expanded, eps, momentum, act));
    if (se) block->push_back(SqueezeExcitation(expanded, make_divisible(expanded / 4, 8), false, true));
    block->push_back(conv_norm_act(expanded, out, 1, 1, 1, eps, momentum, Act::None));
    register_module("block", block);
    residual = stride == 1 && in == out;
  }
  torch::Tensor forward(torch::Tensor x) {
    auto y = block->forward(x);
    return residual ? y + x : y;
  }
};
TORCH_MODULE(InvertedResidual);

// MobileNetV3 (large and small) as torchvision builds it: features /
// avgpool / classifier (Linear, hardswish, dropout 0.2, Linear).
struct MobileNetV3 : Net {
  nn::Sequential features, classifier;
  MobileNetV3(bool large, int in_ch, int nc) {
    struct Cfg {
      int in, k, expanded, out;
      bool se;
      Act act;
      int stride;
    };
    const Act RE = Act::ReLU, HS = Act::Hardswish;
    const std::vector<Cfg> large_cfg = {
        {16, 3, 16, 16, false, RE, 1},   {16, 3, 64, 24, false, RE, 2},   {24, 3, 72, 24, false, RE, 1},
        {24, 5, 72, 40, true, RE, 2},    {40, 5, 120, 40, true, RE, 1},   {40, 5, 120, 40, true, RE, 1},
        {40, 3, 240, 80, false, HS, 2},  {80, 3, 200, 80, false, HS, 1},  {80, 3, 184, 80, false, HS, 1},
        {80, 3, 184, 80, false, HS, 1},  {80, 3, 480, 112, true, HS, 1},  {112, 3, 672, 112, true, HS, 1},
        {112, 5, 672, 160, true, HS, 2}, {160, 5, 960, 160, true, HS, 1}, {160, 5, 960, 160, true, HS, 1}};
    const std::vector<Cfg> small_cfg = {
        {16, 3, 16, 16, true, RE, 2},   {16, 3, 72, 24, false, RE, 2}, {24, 3, 88, 24, false, RE, 1},
        {24, 5, 96, 40, true, HS, 2},   {40, 5, 240, 40, true, HS, 1}, {40, 5, 240, 40, true, HS, 1},
        {40, 5, 120, 48, true, HS, 1},  {48, 5, 144, 48, true, HS, 1}, {48, 5, 288, 96, true, HS, 2},
        {96, 5, 576, 96, true, HS, 1},  {96, 5, 576, 96, true, HS, 1}};
    const auto &cfg = large ? large_cfg : small_cfg;
    features->push_back(conv_norm_act(in_ch, 16, 3, 2, 1, 0.001, 0.01, HS));
    for (const auto &c : cfg) features->push_back(InvertedResidual(c.in, c.k, c.expanded, c.out, c.se, c.act, c.stride));
    const int last_in = cfg.back().out, last_out = 6 * last_in, last_channel = large ? 1280 : 1024;
    features->push_back(conv_norm_act(last_in, last_out, 1, 1, 1, 0.001, 0.01, HS));
    classifier = nn::Sequential(nn::Linear(last_out, last_channel), activation(HS), SeededDropout(0.2, gen),
                                nn::Linear(last_channel, nc));
    register_module("features", features);
    register_module("classifier", classifier);
    init_conv_bn(*this, true);
  }
  torch::Tensor forward(torch::Tensor x) override {
    x = torch::adaptive_avg_pool2d(features->forward(x), {1, 1});
    return classifier->forward(torch::flatten(x, 1));
  }
};

// torchvision's StochasticDepth in "row" mode: in training, each sample's
// residual branch is dropped with probability p (kept ones scaled by
// 1/(1-p)), the mask drawn from the model's generator.
torch::Tensor stochastic_depth(const torch::Tensor &x, double p, bool training, at::Generator &gen) {
  if (!training || p == 0) return x;
  std::vector<int64_t> size(x.dim(), 1);
  size[0] = x.size(0);
  auto noise = torch::empty(size, x.options()).bernoulli_(1 - p, gen);
  if (p < 1) noise.div_(1 - p);
  return x * noise;
}

// EfficientNet's MBConv: expand (1x1, unless the ratio is 1), depthwise,
// squeeze-excitation (SiLU/sigmoid, squeezed to a quarter of the input),
// project; stochastic depth on the residual branch.
struct MBConvImpl : nn::Module {
  nn::Sequential block;
  bool residual;
  double sd_prob;
  GeneratorSlot gen;
  MBConvImpl(int in, int out, int k, int stride, int expand_ratio, double sd_prob, GeneratorSlot gen)
      : sd_prob(sd_prob), gen(std::move(gen)) {
    const double eps = 1e-5, momentum = 0.1;
    const int expanded = make_divisible(in * expand_ratio, 8);
    if (expanded != in) block->push_back(conv_norm_act(in, expanded, 1, 1, 1, eps, momentum, Act::SiLU));
    block->push_back(conv_norm_act(expanded, expanded, k, stride, expanded, eps, momentum, Act::SiLU));
    block->push_back(SqueezeExcitation(expanded, std::max(1, in / 4), true, false));
    block->push_back(conv_norm_act(expanded, out, 1, 1, 1, eps, momentum, Act::None));
    register_module("block", block);
    residual = stride == 1 && in == out;
  }
  torch::Tensor forward(torch::Tensor x) {
    auto y = block->forward(x);
    if (!residual) return y;
    return stochastic_depth(y, sd_prob, is_training(), *gen) + x;
  }
};
TORCH_MODULE(MBConv);

// EfficientNet B0..B3 as torchvision builds them: B0's stages with widths
// and depths scaled, stochastic depth rising to 0.2 over the blocks, then
// classifier (dropout, Linear).
struct EfficientNet : Net {
  nn::Sequential features, classifier;
  EfficientNet(double width, double depth, double dropout, int in_ch, int nc) {
    struct Stage {
      int expand, k, stride, in, out, layers;
    };
    const std::vector<Stage> b0 = {{1, 3, 1, 32, 16, 1},  {6, 3, 2, 16, 24, 2},   {6, 5, 2, 24, 40, 2},  {6, 3, 2, 40, 80, 3},
                                   {6, 5, 1, 80, 112, 3}, {6, 5, 2, 112, 192, 4}, {6, 3, 1, 192, 320, 1}};
    auto channels = [&](int c) { return make_divisible(c * width, 8); };
    auto layers = [&](int n) { return int(std::ceil(n * depth)); };
    int total = 0;
    for (const auto &st : b0) total += layers(st.layers);
    features->push_back(conv_norm_act(in_ch, channels(32), 3, 2, 1, 1e-5, 0.1, Act::SiLU));
    int id = 0;
    for (const auto &st : b0) {
      Stack stage;
      for (int j = 0; j < layers(st.layers); j++, id++) {
        const int in = j == 0 ? channels(st.in) : channels(st.out);
        stage->push_back(MBConv(in, channels(st.out), st.k, j == 0 ? st.stride : 1, st.expand, 0.2 * id / total, gen));
      }
      features->push_back(stage);
    }
    const int last_in = channels(320), last_out = 4 * last_in;
    features->push_back(conv_norm_act(last_in, last_out, 1, 1, 1, 1e-5, 0.1, Act::SiLU));
    classifier = nn::Sequential(SeededDropout(dropout, gen), nn::Linear(last_out, nc));
    register_module("features", features);
    register_module("classifier", classifier);
    init_conv_bn(*this, false);
    torch::NoGradGuard ng;
    for (auto &mod : modules(false)) {
      if (auto *lin = mod->as<nn::Linear>()) {
        const double range = 1.0 / std::sqrt(double(lin->weight.size(0)));
        nn::init::uniform_(lin->weight, -range, range);
        nn::init::zeros_(lin->bias);
      }
    }
  }
  torch::Tensor forward(torch::Tensor x) override {
    x = torch::adaptive_avg_pool2d(features->forward(x), {1, 1});
    return classifier->forward(torch::flatten(x, 1));
  }
};

// PyTorch's nn.init.trunc_normal_ (mean 0, cut at -2 and 2 absolute), drawn
// the same way: uniform over the normal CDF's range, erfinv, scaled, clamped.
void trunc_normal_(torch::Tensor t, double std) {
  torch::NoGradGuard ng;
  const double a = -2, b = 2;
  auto cdf = [](double x) { return (1 + std::erf(x / std::sqrt(2.0))) / 2; };
  t.uniform_(2 * cdf(a / std) - 1, 2 * cdf(b / std) - 1);
  t.erfinv_();
  t.mul_(std * std::sqrt(2.0));
  t.clamp_(a, b);
}

nn::Functional permute(std::vector<int64_t> dims) {
  return nn::Functional([dims](torch::Tensor x) { return x.permute(dims); });
}

nn::Functional gelu() {
  return nn::Functional([](torch::Tensor x) { return torch::gelu(x); });
}

// torchvision's LayerNorm2d: LayerNorm over the channels of an NCHW map.
struct LayerNorm2dImpl : nn::LayerNormImpl {
  explicit LayerNorm2dImpl(int64_t dim) : nn::LayerNormImpl(nn::LayerNormOptions({dim}).eps(1e-6)) {}
  torch::Tensor forward(const torch::Tensor &x) {
    return nn::LayerNormImpl::forward(x.permute({0, 2, 3, 1})).permute({0, 3, 1, 2});
  }
};
TORCH_MODULE(LayerNorm2d);

// ConvNeXt's CNBlock: depthwise 7x7, LayerNorm, an MLP of four times the
// width with GELU, scaled per channel by layer_scale; stochastic depth on
// the residual branch.
struct CNBlockImpl : nn::Module {
  nn::Sequential block;
  torch::Tensor layer_scale;
  double sd_prob;
  GeneratorSlot gen;
  CNBlockImpl(int dim, double sd_prob, GeneratorSlot gen) : sd_prob(sd_prob), gen(std::move(gen)) {
    block = register_module(
        "block", nn::Sequential(nn::Conv2d(nn::Conv2dOptions(dim, dim, 7).padding(3).groups(dim)), permute({0, 2, 3, 1}),
                                nn::LayerNorm(nn::LayerNormOptions({dim}).eps(1e-6)), nn::Linear(dim, 4 * dim), gelu(),
                                nn::Linear(4 * dim, dim), permute({0, 3, 1, 2})));
    layer_scale = register_parameter("layer_scale", torch::full({dim, 1, 1}, 1e-6));
  }
  torch::Tensor forward(torch::Tensor x) {
    auto r = layer_scale * block->forward(x);
    return stochastic_depth(r, sd_prob, is_training(), *gen) + x;
  }
};
TORCH_MODULE(CNBlock);

// ConvNeXt as torchvision builds it: a 4x4 patchify stem, four stages of
// CNBlocks with a LayerNorm + 2x2 convolution between them, stochastic
// depth rising linearly over the blocks, classifier (LayerNorm2d,
// flatten, Linear); truncated-normal weights.
struct ConvNeXt : Net {
  nn::Sequential features, classifier;
  ConvNeXt(int width, const std::vector<int> &depths, double sd, int in_ch, int nc) {
    features->push_back(Stack(nn::Conv2d(nn::Conv2dOptions(in_ch, width, 4).stride(4)), LayerNorm2d(width)));
    int total = 0;
    for (int d : depths) total += d;
    int id = 0, dim = width;
    for (size_t s = 0; s < depths.size(); s++) {
      Stack stage;
      for (int j = 0; j < depths[s]; j++, id++) stage->push_back(CNBlock(dim, sd * id / (total - 1.0), gen));
      features->push_back(stage);
      if (s + 1 < depths.size()) {
        features->push_back(Stack(LayerNorm2d(dim), nn::Conv2d(nn::Conv2dOptions(dim, 2 * dim, 2).stride(2))));
        dim *= 2;
      }
    }
    classifier = nn::Sequential(LayerNorm2d(dim), nn::Flatten(nn::FlattenOptions().start_dim(1)), nn::Linear(dim, nc));
    register_module("features", features);
    register_module("classifier", classifier);
    torch::NoGradGuard ng;
    for (auto &mod : modules(false)) {
      if (auto *conv = mod->as<nn::Conv2d>()) {
        trunc_normal_(conv->weight, 0.02);
        nn::init::zeros_(conv->bias);
      } else if (auto *lin = mod->as<nn::Linear>()) {
        trunc_normal_(lin->weight, 0.02);
        nn::init::zeros_(lin->bias);
      }
    }
  }
  torch::Tensor forward(torch::Tensor x) override {
    return classifier->forward(torch::adaptive_avg_pool2d(features->forward(x), {1, 1}));
  }
};

// RegNet's ResBottleneckBlock: a (1x1, grouped 3x3, squeeze-excitation
// for RegNetY, 1x1) bottleneck beside a projection when the shape
// changes, then ReLU.
struct ResBottleneckBlockImpl : nn::Module {
  Stack proj{nullptr};
  nn::Sequential f;
  ResBottleneckBlockImpl(int w_in, int w_out, int stride, int group_width, double se_ratio) {
    const double eps = 1e-5, momentum = 0.1;
    if (w_in != w_out || stride != 1)
      proj = register_module("proj", conv_norm_act(w_in, w_out, 1, stride, 1, eps, momentum, Act::None));
    const int w_b = w_out, groups = w_b / group_width;  // bottleneck multiplier 1
    f->push_back("a", conv_norm_act(w_in, w_b, 1, 1, 1, eps, momentum, Act::ReLU));
    f->push_back("b", conv_norm_act(w_b, w_b, 3, stride, groups, eps, momentum, Act::ReLU));
    if (se_ratio > 0) f->push_back("se", SqueezeExcitation(w_b, int(std::nearbyint(se_ratio * w_in)), false, false));
    f->push_back("c", conv_norm_act(w_b, w_out, 1, 1, 1, eps, momentum, Act::None));
    register_module("f", f);
  }
  torch::Tensor forward(torch::Tensor x) {
    auto y = f->forward(x);
    return torch::relu(proj ? proj->forward(x) + y : x + y);
  }
};
TORCH_MODULE(ResBottleneckBlock);

// RegNet as torchvision builds it from its four parameters (depth, w_0,
// w_a, w_m): BlockParams.from_init_params's quantised widths, computed
// with the same float32 tensor operations, then stem / trunk_output /
// fc with ResNet-style initialisation.
struct RegNet : Net {
  Stack stem{nullptr};
  nn::Sequential trunk_output;
  nn::Linear fc{nullptr};
  RegNet(int depth, int w_0, double w_a, double w_m, int group_width, double se_ratio, int in_ch, int nc) {
    auto widths_cont = torch::arange(depth) * w_a + w_0;
    auto capacity = torch::round(torch::log(widths_cont / w_0) / std::log(w_m));
    auto quantised = torch::round(torch::pow(w_m, capacity) * w_0 / 8) * 8;
    std::vector<int> widths;
    for (int i = 0; i < depth; i++) widths.push_back(quantised[i].item<float>());
    // Stages: runs of equal width, each width then fitted to its groups.
    std::vector<std::pair<int, int>> stages;  // width, depth
    for (int w : widths) {
      if (stages.empty() || stages.back().first != w) stages.push_back({w, 0});
      stages.back().second++;
    }
    stem = register_module("stem", conv_norm_act(in_ch, 32, 3, 2, 1, 1e-5, 0.1, Act::ReLU));
    int current = 32;
    for (size_t i = 0; i < stages.size(); i++) {
      const int g = std::min(group_width, stages[i].first), w = make_divisible(stages[i].first, g);
      Stack stage;
      for (int j = 0; j < stages[i].second; j++) {
        stage->push_back("block" + std::to_string(i + 1) + "-" + std::to_string(j),
                         ResBottleneckBlock(j == 0 ? current : w, w, j == 0 ? 2 : 1, g, se_ratio));
      }
      trunk_output->push_back("block" + std::to_string(i + 1), stage);
      current = w;
    }
    register_module("trunk_output", trunk_output);
    fc = register_module("fc", nn::Linear(current, nc));
    torch::NoGradGuard ng;
    for (auto &mod : modules(false)) {
      if (auto *conv = mod->as<nn::Conv2d>()) {
        const auto &k = conv->options.kernel_size();
        nn::init::normal_(conv->weight, 0, std::sqrt(2.0 / (k->at(0) * k->at(1) * conv->options.out_channels())));
      } else if (auto *bn = mod->as<nn::BatchNorm2d>()) {
        nn::init::ones_(bn->weight);
        nn::init::zeros_(bn->bias);
      } else if (auto *lin = mod->as<nn::Linear>()) {
        nn::init::normal_(lin->weight, 0, 0.01);
        nn::init::zeros_(lin->bias);
      }
    }
  }
  torch::Tensor forward(torch::Tensor x) override {
    x = torch::adaptive_avg_pool2d(trunk_output->forward(stem->forward(x)), {1, 1});
    return fc(torch::flatten(x, 1));
  }
};

// Self-attention with nn.MultiheadAttention's parameters (in_proj_weight,
// in_proj_bias, out_proj) and its arithmetic: queries scaled by
// 1/sqrt(head size), softmax over the keys.
struct SelfAttentionImpl : nn::Module {
  torch::Tensor in_proj_weight, in_proj_bias;
  nn::Linear out_proj{nullptr};
  int64_t heads;
  SelfAttentionImpl(int64_t dim, int64_t heads) : heads(heads) {
    in_proj_weight = register_parameter("in_proj_weight", torch::empty({3 * dim, dim}));
    in_proj_bias = register_parameter("in_proj_bias", torch::zeros({3 * dim}));
    out_proj = register_module("out_proj", nn::Linear(dim, dim));
    torch::NoGradGuard ng;
    nn::init::xavier_uniform_(in_proj_weight);
    nn::init::zeros_(out_proj->bias);
  }
  torch::Tensor forward(const torch::Tensor &x) {  // [N, L, E]
    const int64_t n = x.size(0), l = x.size(1), e = x.size(2), d = e / heads;
    auto qkv = torch::linear(x, in_proj_weight, in_proj_bias).view({n, l, 3, heads, d}).permute({2, 0, 3, 1, 4});
    auto q = qkv[0] / std::sqrt(double(d)), k = qkv[1], v = qkv[2];  // [N, H, L, D]
    auto attn = torch::softmax(torch::matmul(q, k.transpose(-2, -1)), -1);
    return out_proj(torch::matmul(attn, v).transpose(1, 2).reshape({n, l, e}));
  }
};
TORCH_MODULE(SelfAttention);

// ViT's EncoderBlock: pre-norm self-attention and MLP, each added back.
struct EncoderBlockImpl : nn::Module {
  nn::LayerNorm ln_1{nullptr}, ln_2{nullptr};
  SelfAttention self_attention{nullptr};
  nn::Sequential mlp;
  EncoderBlockImpl(int64_t dim, int64_t heads, int64_t mlp_dim, GeneratorSlot gen) {
    ln_1 = register_module("ln_1", nn::LayerNorm(nn::LayerNormOptions({dim}).eps(1e-6)));
    self_attention = register_module("self_attention", SelfAttention(dim, heads));
    ln_2 = register_module("ln_2", nn::LayerNorm(nn::LayerNormOptions({dim}).eps(1e-6)));
    mlp = register_module("mlp", nn::Sequential(nn::Linear(dim, mlp_dim), gelu(), SeededDropout(0.0, gen),
                                                nn::Linear(mlp_dim, dim), SeededDropout(0.0, gen)));
    torch::NoGradGuard ng;
    for (auto &mod : mlp->modules(false)) {
      if (auto *lin = mod->as<nn::Linear>()) {
        nn::init::xavier_uniform_(lin->weight);
        nn::init::normal_(lin->bias, 0, 1e-6);
      }
    }
  }
  torch::Tensor forward(const torch::Tensor &input) {
    auto x = self_attention(ln_1(input)) + input;
    return x + mlp->forward(ln_2(x));
  }
};
TORCH_MODULE(EncoderBlock);

// torchvision's interpolate_embeddings: the class token's embedding kept,
// the patch grid's resized bicubically (align_corners) to rows x cols.
torch::Tensor resize_pos_embedding(const torch::Tensor &pe, int64_t rows, int64_t cols) {
  if (pe.dim() != 3 || pe.size(0) != 1 || pe.size(1) < 2 || pe.size(2) < 1)
    throw InvalidArgument("position embedding " + c10::str(pe.sizes()) + " is not [1, 1 + a square grid, width]");
  const int64_t seq = pe.size(1) - 1, dim = pe.size(2), side = std::llround(std::sqrt(double(seq)));
  if (side * side != seq)
    throw InvalidArgument("position embedding " + c10::str(pe.sizes()) + " is not [1, 1 + a square grid, width]");
  if (side == rows && side == cols) return pe;
  auto grid = pe.narrow(1, 1, seq).permute({0, 2, 1}).reshape({1, dim, side, side});
  grid = nn::functional::interpolate(
      grid, nn::functional::InterpolateFuncOptions().size(std::vector<int64_t>{rows, cols}).mode(torch::kBicubic).align_corners(true));
  return torch::cat({pe.narrow(1, 0, 1), grid.reshape({1, dim, rows * cols}).permute({0, 2, 1})}, 1);
}

struct ViTEncoderImpl : nn::Module {
  torch::Tensor pos_embedding;
  nn::Sequential layers;
  nn::LayerNorm ln{nullptr};
  ViTEncoderImpl(int64_t seq, int64_t depth, int64_t dim, int64_t heads, int64_t mlp_dim, GeneratorSlot gen) {
    pos_embedding = register_parameter("pos_embedding", torch::empty({1, seq, dim}).normal_(0, 0.02));
    for (int64_t i = 0; i < depth; i++)
      layers->push_back("encoder_layer_" + std::to_string(i), EncoderBlock(dim, heads, mlp_dim, gen));
    register_module("layers", layers);
    ln = register_module("ln", nn::LayerNorm(nn::LayerNormOptions({dim}).eps(1e-6)));
  }
};
TORCH_MODULE(ViTEncoder);

// VisionTransformer as torchvision builds it for one image size: patches
// by a strided convolution, a class token, a learned position embedding
// of (size / patch)^2 + 1 rows, the encoder, heads.head on the class
// token. An input of another size (evaluation at a test resolution) uses
// the embedding resized to its grid, and weights made for another size
// load resized, as torchvision's interpolate_embeddings does.
struct VisionTransformer : Net {
  nn::Conv2d conv_proj{nullptr};
  torch::Tensor class_token;
  ViTEncoder encoder{nullptr};
  nn::Sequential heads;
  int64_t patch;
  VisionTransformer(int64_t image_size, int64_t patch, int64_t depth, int64_t n_heads, int64_t dim, int64_t mlp_dim,
                    int in_ch, int nc)
      : patch(patch) {
    if (image_size < patch || image_size % patch != 0)
      throw InvalidArgument("a ViT with " + std::to_string(patch) + " px patches needs an image size that is a multiple of " +
                            std::to_string(patch) + ", not " + std::to_string(image_size));
    conv_proj = register_module("conv_proj", nn::Conv2d(nn::Conv2dOptions(in_ch, dim, patch).stride(patch)));
    class_token = register_parameter("class_token", torch::zeros({1, 1, dim}));
    const int64_t grid = image_size / patch;
    encoder = register_module("encoder", ViTEncoder(grid * grid + 1, depth, dim, n_heads, mlp_dim, gen));
    heads->push_back("head", nn::Linear(dim, nc));
    register_module("heads", heads);
    torch::NoGradGuard ng;
    trunc_normal_(conv_proj->weight, std::sqrt(1.0 / (in_ch * patch * patch)));
    nn::init::zeros_(conv_proj->bias);
    for (auto &p : heads->parameters()) nn::init::zeros_(p);
  }
  torch::Tensor forward(torch::Tensor x) override {
    // torchvision would drop the pixels past the last whole patch.
    if (x.size(2) % patch != 0 || x.size(3) % patch != 0)
      throw InvalidArgument("a ViT with " + std::to_string(patch) + " px patches takes multiples of " +
                            std::to_string(patch) + " px, not " + c10::str(x.sizes()));
    x = conv_proj(x);  // [N, E, rows, cols]
    const int64_t n = x.size(0), rows = x.size(2), cols = x.size(3);
    x = x.flatten(2).transpose(1, 2);
    x = torch::cat({class_token.expand({n, -1, -1}), x}, 1);
    x = x + resize_pos_embedding(encoder->pos_embedding, rows, cols);
    x = encoder->ln(encoder->layers->forward(x));
    return heads->forward(x.select(1, 0));
  }
  torch::Tensor resized(const std::string &name, const torch::Tensor &src, at::IntArrayRef to) override {
    if (name != "encoder.pos_embedding" || to.size() != 3 || src.dim() != 3 || src.size(2) != to[2])
      return Net::resized(name, src, to);
    const int64_t side = std::llround(std::sqrt(double(to[1] - 1)));
    return resize_pos_embedding(src, side, side);
  }
};

// A TorchScript model a user brings (torch.jit.script(model).save(path)):
// its parameters and buffers under their own names, trained like a
// built-in model. Its dropout draws from the default generator, which is
// set from the model's own generator for each forward (and the model's
// advanced by what was drawn), so its randomness is seeded per step as
// every model's is. A failure inside its code says so, not retried.
struct ScriptNet : Net {
  torch::jit::Module mod;
  explicit ScriptNet(const std::string &path) {
    try {
      mod = torch::jit::load(path);
    } catch (const c10::Error &e) {
      throw InvalidArgument("not a TorchScript model (torch.jit.script(model).save(...)): " +
                            std::string(e.what_without_backtrace()).substr(0, 300));
    }
    if (!mod.find_method("forward")) throw InvalidArgument("the TorchScript model has no forward method");
    // The graph executor's profiling and fusion pick other kernels after
    // its first runs: a resumed process would not run what an
    // uninterrupted one does. The graph runs as scripted.
    torch::jit::setGraphExecutorOptimize(false);
    // A tensor under two names (tied weights) would step twice.
    std::map<const void *, std::string> seen;
    for (const auto &p : mod.named_parameters(true)) {
      auto [it, fresh] = seen.emplace(p.value.unsafeGetTensorImpl(), p.name);
      if (!fresh)
        throw InvalidArgument("the TorchScript model's parameters " + it->second + " and " + p.name +
                              " are one tensor (tied weights), which ResoMap would step twice");
    }
    mod.train();
  }
  NamedTensors state_parameters() override {
    NamedTensors out;
    for (const auto &p : mod.named_parameters(true)) out.emplace_back(p.name, p.value);
    return out;
  }
  NamedTensors state_buffers() override {
    NamedTensors out;
    for (const auto &b : mod.named_buffers(true)) out.emplace_back(b.name, b.value);
    return out;
  }
  void to(torch::Device device, bool non_blocking = false) override { mod.to(device, non_blocking); }
  void train(bool on = true) override {
    nn::Module::train(on);
    mod.train(on);
  }
  torch::Tensor forward(torch::Tensor x) override {
    std::lock_guard<std::mutex> lock(g_default_generator_mu);
    auto def = at::globalContext().defaultGenerator(x.device());
    torch::Tensor saved;
    {
      std::lock_guard<std::mutex> g(def.mutex());
      saved = def.get_state();
      def.set_state(gen->get_state());
    }
    auto restore = [&] {
      std::lock_guard<std::mutex> g(def.mutex());
      gen->set_state(def.get_state());
      def.set_state(saved);
    };
    torch::Tensor out;
    try {
      auto r = mod.forward({x});
      if (!r.isTensor()) throw InvalidArgument("the TorchScript model's forward returns no tensor");
      out = r.toTensor();
    } catch (const InvalidArgument &) {
      restore();
      throw;
    } catch (const std::exception &e) {
      // The interpreter rethrows its ops' failures as std::runtime_error:
      // the model's code, not a passing fault, unless memory ran out.
      restore();
      const c10::Error *ce = dynamic_cast<const c10::Error *>(&e);
      std::string msg = ce ? ce->what_without_backtrace() : e.what();
      if (is_oom_message(msg) || dynamic_cast<const std::bad_alloc *>(&e)) throw;
      throw InvalidArgument("the TorchScript model failed: " + msg.substr(0, 500));
    } catch (...) {
      restore();
      throw;
    }
    restore();
    return out;
  }
};

// The bridge's models by name: each builds a fresh net for in_ch input
// channels, nc classes and (a ViT's) image size. sweep.ModelInfo is the
// registry; rm_model_names hands these names to the Go side, where a test
// holds the two lists equal both ways.
using NetFactory = std::shared_ptr<Net> (*)(int in_ch, int nc, int image_size);
#define NET(...)                                                                     \
  [](int in_ch, int nc, int image_size) -> std::shared_ptr<Net> {                    \
    (void)image_size;                                                                \
    return __VA_ARGS__;                                                              \
  }
const std::vector<std::pair<std::string, NetFactory>> &net_table() {
  // 0 marks a max-pool, as 'M' does in torchvision's cfgs.
  static const std::vector<int> A = {64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0};
  static const std::vector<int> B = {64, 64, 0, 128, 128, 0, 256, 256, 0,
                                     512, 512, 0, 512, 512, 0};
  static const std::vector<int> D = {64,  64,  0,   128, 128, 0,   256, 256, 256,
                                     0,   512, 512, 512, 0,   512, 512, 512, 0};
  static const std::vector<int> E = {64,  64,  0,   128, 128, 0,   256, 256, 256, 256, 0,
                                     512, 512, 512, 512, 0,   512, 512, 512, 512, 0};
  static const std::vector<std::pair<std::string, NetFactory>> table = {
      {"smallcnn", NET(std::make_shared<SmallCNN>(in_ch, nc))},
      {"vgg11", NET(std::make_shared<VGG>(A, false, in_ch, nc))},
      {"vgg11_bn", NET(std::make_shared<VGG>(A, true, in_ch, nc))},
      {"vgg13", NET(std::make_shared<VGG>(B, false, in_ch, nc))},
      {"vgg13_bn", NET(std::make_shared<VGG>(B, true, in_ch, nc))},
      {"vgg16", NET(std::make_shared<VGG>(D, false, in_ch, nc))},
      {"vgg16_bn", NET(std::make_shared<VGG>(D, true, in_ch, nc))},
      {"vgg19", NET(std::make_shared<VGG>(E, false, in_ch, nc))},
      {"vgg19_bn", NET(std::make_shared<VGG>(E, true, in_ch, nc))},
      {"resnet18", NET(std::make_shared<ResNet<BasicBlock>>(std::vector<int>{2, 2, 2, 2}, in_ch, nc))},
      {"resnet34", NET(std::make_shared<ResNet<BasicBlock>>(std::vector<int>{3, 4, 6, 3}, in_ch, nc))},
      {"resnet50", NET(std::make_shared<ResNet<Bottleneck>>(std::vector<int>{3, 4, 6, 3}, in_ch, nc))},
      {"mobilenet_v3_large", NET(std::make_shared<MobileNetV3>(true, in_ch, nc))},
      {"mobilenet_v3_small", NET(std::make_shared<MobileNetV3>(false, in_ch, nc))},
      {"efficientnet_b0", NET(std::make_shared<EfficientNet>(1.0, 1.0, 0.2, in_ch, nc))},
      {"efficientnet_b1", NET(std::make_shared<EfficientNet>(1.0, 1.1, 0.2, in_ch, nc))},
      {"efficientnet_b2", NET(std::make_shared<EfficientNet>(1.1, 1.2, 0.3, in_ch, nc))},
      {"efficientnet_b3", NET(std::make_shared<EfficientNet>(1.2, 1.4, 0.3, in_ch, nc))},
      {"convnext_tiny", NET(std::make_shared<ConvNeXt>(96, std::vector<int>{3, 3, 9, 3}, 0.1, in_ch, nc))},
      {"convnext_small", NET(std::make_shared<ConvNeXt>(96, std::vector<int>{3, 3, 27, 3}, 0.4, in_ch, nc))},
      {"convnext_base", NET(std::make_shared<ConvNeXt>(128, std::vector<int>{3, 3, 27, 3}, 0.5, in_ch, nc))},
      {"regnet_y_400mf", NET(std::make_shared<RegNet>(16, 48, 27.89, 2.09, 8, 0.25, in_ch, nc))},
      {"regnet_y_800mf", NET(std::make_shared<RegNet>(14, 56, 38.84, 2.4, 16, 0.25, in_ch, nc))},
      {"regnet_y_1_6gf", NET(std::make_shared<RegNet>(27, 48, 20.71, 2.65, 24, 0.25, in_ch, nc))},
      {"regnet_x_400mf", NET(std::make_shared<RegNet>(22, 24, 24.48, 2.54, 16, 0, in_ch, nc))},
      {"regnet_x_800mf", NET(std::make_shared<RegNet>(16, 56, 35.73, 2.28, 16, 0, in_ch, nc))},
      {"vit_b_16", NET(std::make_shared<VisionTransformer>(image_size, 16, 12, 12, 768, 3072, in_ch, nc))},
  };
  return table;
}
#undef NET

std::shared_ptr<Net> make_net(const std::string &name, int in_ch, int nc, int image_size, const char *script) {
  if (script != nullptr && *script != 0) return std::make_shared<ScriptNet>(script);
  for (const auto &entry : net_table())
    if (entry.first == name) return entry.second(in_ch, nc, image_size);
  throw InvalidArgument("unknown model \"" + name + "\"");
}

// The names of net_table, comma-separated, built once.
const std::string &model_names() {
  static const std::string names = [] {
    std::string s;
    for (const auto &entry : net_table()) s += (s.empty() ? "" : ",") + entry.first;
    return s;
  }();
  return names;
}

int32_t dtype_code(c10::ScalarType t) {
  switch (t) {
    case torch::kFloat32: return RM_F32;
    case torch::kFloat64: return RM_F64;
    case torch::kInt64: return RM_I64;
    case torch::kBFloat16: return RM_BF16;
    case torch::kFloat16: return RM_F16;
    case torch::kInt32: return RM_I32;
    case torch::kUInt8: return RM_U8;
    default: throw std::runtime_error("unsupported tensor dtype");
  }
}

// bf16 autocast for the model's device type (CUDA on GPUs; CPU when asked for,
// which is how the CPU tests exercise this path).
void set_autocast(c10::DeviceType type, bool on) {
#if TORCH_VERSION_MAJOR >= 2 && TORCH_VERSION_MINOR >= 4 || TORCH_VERSION_MAJOR >= 3
  at::autocast::set_autocast_enabled(type, on);
  if (on) at::autocast::set_autocast_dtype(type, at::kBFloat16);
#else
  if (type == c10::DeviceType::CUDA) {
    at::autocast::set_enabled(on);
    if (on) at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
  } else {
    at::autocast::set_cpu_enabled(on);
    if (on) at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
  }
#endif
  if (!on) at::autocast::clear_cache();
}

// Turns autocast on for its scope, and off again however the scope ends.
struct AutocastScope {
  c10::DeviceType type;
  bool on;
  AutocastScope(c10::DeviceType t, bool enable) : type(t), on(enable) {
    if (on) set_autocast(type, true);
  }
  ~AutocastScope() {
    if (on) set_autocast(type, false);
  }
};

}  // namespace

struct rm_model {
  std::shared_ptr<Net> net;
  torch::Device device{torch::kCPU};
  int optimizer = 0;
  double momentum = 0, weight_decay = 0, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  bool nesterov = false, amp = false, channels_last = false;
  int num_classes = 0, in_channels = 0;
  torch::Tensor mean, std;  // [1, C, 1, 1] on device
  std::vector<torch::Tensor> params;
  std::vector<std::string> param_names;
  std::vector<double> lr_scale;  // per param: 1 unless fine-tuning sets it; 0 freezes
  std::vector<torch::Tensor> buf1, buf2;  // momentum or Adam moments, one per param
  torch::Tensor step;                     // AdamW step count (int64 scalar)
  std::vector<std::pair<std::string, torch::Tensor>> state;  // exported tensors

  torch::Tensor staged_x, staged_y;  // the batch rm_stage_batch put on the device
  std::vector<torch::Tensor> pending_loss, pending_correct;  // device scalars
  std::vector<int64_t> pending_n;

  // Copies host memory the caller may reuse at once onto the device: on CUDA
  // through pinned memory without blocking (the caching host allocator keeps
  // the pinned block until the copy is done).
  torch::Tensor upload(const torch::Tensor &host) {
    if (device.is_cuda()) return host.pin_memory().to(device, /*non_blocking=*/true);
    return host.clone();
  }
  torch::Tensor input(const uint8_t *images, int64_t n, int c, int h, int w) {
    if (n <= 0 || c != in_channels || h < 1 || w < 1)
      throw InvalidArgument("batch shape [" + std::to_string(n) + "," + std::to_string(c) + "," +
                            std::to_string(h) + "," + std::to_string(w) +
                            "] does not fit a model with " + std::to_string(in_channels) +
                            " input channels");
    auto x = upload(torch::from_blob(const_cast<uint8_t *>(images), {n, c, h, w}, torch::kUInt8))
                 .to(torch::kFloat32)
                 .div_(255.0)
                 .sub_(mean)
                 .div_(std);
    if (channels_last) x = x.contiguous(torch::MemoryFormat::ChannelsLast);
    return x;
  }
  // Labels are checked on the host: checking them on the device would wait
  // for it.
  torch::Tensor targets(const int64_t *labels, int64_t n) {
    for (int64_t i = 0; i < n; i++)
      if (labels[i] < 0 || labels[i] >= num_classes)
        throw InvalidArgument("label " + std::to_string(labels[i]) + " out of range [0," +
                              std::to_string(num_classes) + ")");
    return upload(torch::from_blob(const_cast<int64_t *>(labels), {n}, torch::kInt64));
  }
  // A model's output must be one score per class for each image (a
  // TorchScript model's is whatever its code makes).
  const torch::Tensor &check_logits(const torch::Tensor &logits, int64_t n) const {
    if (logits.dim() != 2 || logits.size(0) != n || logits.size(1) != num_classes)
      throw InvalidArgument("the model gives " + c10::str(logits.sizes()) + " for " + std::to_string(n) +
                            " images; the data has " + std::to_string(num_classes) + " classes");
    return logits;
  }
  // Forward and backward of one micro-batch; returns the mean loss (a device
  // scalar, unscaled) and the correct count without waiting for either.
  std::pair<torch::Tensor, torch::Tensor> forward_backward(const torch::Tensor &x, const torch::Tensor &y,
                                                            double loss_scale, double label_smoothing) {
    net->train();
    torch::Tensor logits, loss;
    {
      AutocastScope amp_scope(device.type(), amp);
      logits = check_logits(net->forward(x), x.size(0));
      loss = torch::nn::functional::cross_entropy(
          logits.to(torch::kFloat32), y,
          torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(label_smoothing));
    }
    (loss * loss_scale).backward();
    return {loss.detach(), logits.detach().argmax(1).eq(y).sum()};
  }
};

extern "C" {

int32_t rm_abi_version(void) { return RM_ABI_VERSION; }
const char *rm_last_error(void) { return g_error.c_str(); }
const char *rm_torch_version(void) { return TORCH_VERSION; }
const char *rm_model_names(void) { return model_names().c_str(); }

int32_t rm_set_threads(int32_t n) {
  return guard([&] {
    if (n < 1) throw InvalidArgument("thread count must be >= 1");
    at::set_num_threads(n);
  });
}
int32_t rm_get_threads(void) { return at::get_num_threads(); }
int32_t rm_cuda_device_count(void) { return (int32_t)torch::cuda::device_count(); }
int32_t rm_model_seed(rm_model *m, uint64_t seed) {
  return guard([&] {
    std::lock_guard<std::mutex> lock(m->net->gen->mutex());
    m->net->gen->set_current_seed(seed);
  });
}

int32_t rm_model_new(const rm_model_options *o, rm_model **out) {
  return guard([&] {
    *out = nullptr;
    if (o == nullptr || o->size < sizeof(rm_model_options))
      throw InvalidArgument("rm_model_options is " + std::to_string(o ? o->size : 0) + " bytes, this library needs " +
                            std::to_string(sizeof(rm_model_options)) + ": rebuild the caller");
    const char *name = o->name, *device = o->device;
    int32_t in_channels = o->in_channels, num_classes = o->num_classes, optimizer = o->optimizer;
    if (name == nullptr || device == nullptr) throw InvalidArgument("model name and device are required");
    if (in_channels < 1 || in_channels > 4) throw InvalidArgument("input channels must be 1..4");
    if (num_classes < 2) throw InvalidArgument("need at least 2 classes");
    if (optimizer != 0 && optimizer != 1) throw InvalidArgument("optimizer must be 0 (SGD) or 1 (AdamW)");
    auto m = std::make_unique<rm_model>();
    m->device = torch::Device(std::string(device));
    if (m->device.is_cuda() && !torch::cuda::is_available())
      throw InvalidArgument(std::string("device ") + device + " requested but this libtorch sees no CUDA device");
    if (m->device.is_cuda() && m->device.has_index() &&
        m->device.index() >= (int)torch::cuda::device_count())
      throw InvalidArgument(std::string("device ") + device + " requested but there are only " +
                            std::to_string(torch::cuda::device_count()) + " CUDA devices");
    {
      // Initial weights come from the default generator: one model at a time.
      std::lock_guard<std::mutex> lock(g_default_generator_mu);
      torch::manual_seed(o->init_seed);
      m->net = make_net(name, in_channels, num_classes, o->image_size, o->script_path);
    }
    m->net->to(m->device);
    *m->net->gen = at::globalContext().defaultGenerator(m->device).clone();
    m->in_channels = in_channels;
    m->num_classes = num_classes;
    m->optimizer = optimizer;
    m->momentum = o->momentum;
    m->nesterov = o->nesterov != 0;
    m->weight_decay = o->weight_decay;
    m->beta1 = o->beta1;
    m->beta2 = o->beta2;
    m->eps = o->eps;
    // The caller decides where these pay off (Go turns them on for CUDA only).
    // As PyTorch users do for fixed shapes: cuDNN picks its fastest kernels.
    if (m->device.is_cuda()) at::globalContext().setBenchmarkCuDNN(true);
    m->amp = o->mixed_precision != 0;
    m->channels_last = o->channels_last != 0;
    if (m->channels_last) {
      torch::NoGradGuard ng;
      for (auto &p : m->net->state_parameters())
        if (p.second.dim() == 4) p.second.set_data(p.second.contiguous(torch::MemoryFormat::ChannelsLast));
    }
    m->mean = torch::from_blob(const_cast<float *>(o->mean), {1, in_channels, 1, 1}, torch::kFloat32).clone().to(m->device);
    m->std = torch::from_blob(const_cast<float *>(o->std), {1, in_channels, 1, 1}, torch::kFloat32).clone().to(m->device);
    for (auto &p : m->net->state_parameters()) {
      m->state.emplace_back(p.first, p.second);
      m->params.push_back(p.second);
      m->param_names.push_back(p.first);
    }
    if (m->params.empty()) throw InvalidArgument(std::string("model ") + name + " has no parameters to train");
    m->lr_scale.assign(m->params.size(), 1.0);
    for (auto &b : m->net->state_buffers()) m->state.emplace_back(b.first, b.second);
    for (auto &e : m->state) {  // a TorchScript model's may be of any type
      try {
        dtype_code(e.second.scalar_type());
      } catch (const std::runtime_error &) {
        throw InvalidArgument("tensor " + e.first + " is " + std::string(c10::toString(e.second.scalar_type())) +
                              ", a type ResoMap does not store");
      }
    }
    // Optimiser state is allocated up front (zeros are exactly PyTorch's first
    // step for dampening 0) so that a checkpoint always has the same tensors.
    for (size_t i = 0; i < m->params.size(); i++) {
      auto &p = m->params[i];
      const std::string &pn = m->param_names[i];
      if (optimizer == 0) {
        if (o->momentum != 0) {
          m->buf1.push_back(torch::zeros_like(p));
          m->state.emplace_back("optimizer.momentum_buffer." + pn, m->buf1.back());
        }
      } else {
        m->buf1.push_back(torch::zeros_like(p));
        m->buf2.push_back(torch::zeros_like(p));
        m->state.emplace_back("optimizer.exp_avg." + pn, m->buf1.back());
        m->state.emplace_back("optimizer.exp_avg_sq." + pn, m->buf2.back());
      }
    }
    if (optimizer == 1) {
      m->step = torch::zeros({}, torch::kInt64);
      m->state.emplace_back("optimizer.step", m->step);
    }
    m->net->train();
    *out = m.release();
  });
}

void rm_model_free(rm_model *m) { delete m; }

// Gradients are dropped rather than zeroed (PyTorch's set_to_none): no
// kernel per parameter, and backward writes them afresh.
void rm_zero_grad(rm_model *m) {
  for (auto &p : m->params) p.mutable_grad() = torch::Tensor();
}

int32_t rm_forward_backward(rm_model *m, const uint8_t *images, const int64_t *labels,
                            int64_t n, int32_t c, int32_t h, int32_t w, double loss_scale,
                            double label_smoothing, double *loss_sum, int64_t *correct) {
  return guard([&] {
    auto x = m->input(images, n, c, h, w);
    auto y = m->targets(labels, n);
    auto r = m->forward_backward(x, y, loss_scale, label_smoothing);
    *loss_sum = r.first.item<double>() * (double)n;
    *correct = r.second.item<int64_t>();
  });
}

int32_t rm_stage_batch(rm_model *m, const uint8_t *images, const int64_t *labels, int64_t n,
                       int32_t c, int32_t h, int32_t w) {
  return guard([&] {
    m->staged_x = torch::Tensor();
    m->staged_y = torch::Tensor();
    auto y = m->targets(labels, n);
    m->staged_x = m->input(images, n, c, h, w);
    m->staged_y = y;
  });
}

int32_t rm_forward_backward_staged(rm_model *m, int64_t lo, int64_t hi, double loss_scale,
                                   double label_smoothing) {
  return guard([&] {
    if (!m->staged_x.defined()) throw InvalidArgument("no staged batch");
    if (lo < 0 || hi <= lo || hi > m->staged_x.size(0))
      throw InvalidArgument("micro-batch [" + std::to_string(lo) + "," + std::to_string(hi) +
                            ") outside the staged batch of " + std::to_string(m->staged_x.size(0)));
    auto r = m->forward_backward(m->staged_x.narrow(0, lo, hi - lo), m->staged_y.narrow(0, lo, hi - lo),
                                 loss_scale, label_smoothing);
    m->pending_loss.push_back(r.first);
    m->pending_correct.push_back(r.second);
    m->pending_n.push_back(hi - lo);
  });
}

int32_t rm_take_metrics(rm_model *m, double *loss_sums, int64_t *corrects, int32_t cap,
                        int32_t *count) {
  return guard([&] {
    const size_t k = m->pending_loss.size();
    if (k > (size_t)cap)
      throw InvalidArgument(std::to_string(k) + " pending metrics, room for " + std::to_string(cap));
    *count = (int32_t)k;
    if (k == 0) return;
    // One transfer for all of them; the same arithmetic as rm_forward_backward.
    auto losses = torch::stack(m->pending_loss).to(torch::kCPU).contiguous();
    auto right = torch::stack(m->pending_correct).to(torch::kCPU).contiguous();
    const float *lp = losses.data_ptr<float>();
    const int64_t *cp = right.data_ptr<int64_t>();
    for (size_t i = 0; i < k; i++) {
      loss_sums[i] = (double)lp[i] * (double)m->pending_n[i];
      corrects[i] = cp[i];
    }
    m->pending_loss.clear();
    m->pending_correct.clear();
    m->pending_n.clear();
  });
}

int32_t rm_set_lr_scale(rm_model *m, const char *keep_prefix, double scale) {
  return guard([&] {
    if (!(scale >= 0) || !std::isfinite(scale)) throw InvalidArgument("learning-rate scale must be finite and >= 0");
    const std::string keep = keep_prefix ? keep_prefix : "";
    for (size_t i = 0; i < m->params.size(); i++)
      if (keep.empty() || m->param_names[i].rfind(keep, 0) != 0) m->lr_scale[i] = scale;
  });
}

int32_t rm_optimizer_step(rm_model *m, double lr) {
  return guard([&] {
    torch::NoGradGuard ng;
    if (m->optimizer == 0) {  // torch.optim.SGD, dampening 0, as its foreach form
      // Parameters step in groups of equal learning-rate scale, as PyTorch's
      // param groups (one group, scale 1, unless fine-tuning sets scales; a
      // frozen parameter, scale 0, is left out).
      std::map<double, std::vector<size_t>> groups;
      for (size_t i = 0; i < m->params.size(); i++)
        if (m->params[i].grad().defined() && m->lr_scale[i] != 0) groups[m->lr_scale[i]].push_back(i);
      for (auto &[scale, idx] : groups) {
        std::vector<torch::Tensor> ps, gs, bufs;
        for (size_t i : idx) {
          ps.push_back(m->params[i]);
          gs.push_back(m->params[i].grad());
          if (m->momentum != 0) bufs.push_back(m->buf1[i]);
        }
        // One kernel per operation for all parameters on CUDA; on CPU the
        // same arithmetic, tensor by tensor. The gradients are about to be
        // dropped (rm_zero_grad), so the update is built in them in place:
        // PyTorch's out-of-place d = g + wd*p and d + m*buf are two more
        // copies of every gradient at the step's peak (1 GB for vgg11),
        // and the same elementwise arithmetic in place gives the same bits.
        std::vector<torch::Tensor> &d = gs;
        if (m->weight_decay != 0) at::_foreach_add_(d, ps, m->weight_decay);
        if (m->momentum != 0) {
          at::_foreach_mul_(bufs, m->momentum);
          at::_foreach_add_(bufs, d);
          if (m->nesterov) at::_foreach_add_(d, bufs, m->momentum);
        }
        at::_foreach_add_(ps, (m->momentum != 0 && !m->nesterov) ? bufs : d, -lr * scale);
      }
      rm_zero_grad(m);
      return;
    }
    m->step.add_(1);
    const double t = (double)m->step.item<int64_t>();
    for (size_t i = 0; i < m->params.size(); i++) {
      auto &p = m->params[i];
      auto g = p.grad();
      if (!g.defined() || m->lr_scale[i] == 0) continue;
      const double lr_i = lr * m->lr_scale[i];
      {  // torch.optim.AdamW
        p.mul_(1.0 - lr_i * m->weight_decay);
        auto &ea = m->buf1[i], &es = m->buf2[i];
        ea.lerp_(g, 1.0 - m->beta1);
        es.mul_(m->beta2).addcmul_(g, g, 1.0 - m->beta2);
        const double bc1 = 1.0 - std::pow(m->beta1, t);
        const double bc2 = 1.0 - std::pow(m->beta2, t);
        auto denom = (es.sqrt() / std::sqrt(bc2)).add_(m->eps);
        p.addcdiv_(ea, denom, -lr_i / bc1);
      }
    }
    rm_zero_grad(m);
  });
}

int32_t rm_evaluate(rm_model *m, const uint8_t *images, const int64_t *labels, int64_t n,
                    int32_t c, int32_t h, int32_t w, double *loss_sum, int64_t *correct,
                    float *logits_out) {
  return guard([&] {
    torch::NoGradGuard ng;
    auto x = m->input(images, n, c, h, w);
    auto y = m->targets(labels, n);
    m->net->eval();
    torch::Tensor logits;
    try {
      AutocastScope amp(m->device.type(), m->amp);
      logits = m->check_logits(m->net->forward(x), x.size(0)).to(torch::kFloat32);
    } catch (...) {
      m->net->train();
      throw;
    }
    m->net->train();
    auto loss = torch::nn::functional::cross_entropy(logits, y);
    *loss_sum = loss.item<double>() * (double)n;
    *correct = logits.argmax(1).eq(y).sum().item<int64_t>();
    if (logits_out) {
      auto cpu = logits.to(torch::kCPU).contiguous();
      std::memcpy(logits_out, cpu.data_ptr<float>(), sizeof(float) * cpu.numel());
    }
  });
}

int32_t rm_state_count(rm_model *m) { return (int32_t)m->state.size(); }

int32_t rm_state_info(rm_model *m, int32_t i, const char **name, int32_t *dtype, int32_t *ndim,
                      int64_t *shape, int64_t *nbytes) {
  return guard([&] {
    if (i < 0 || i >= (int32_t)m->state.size()) throw InvalidArgument("state index out of range");
    auto &e = m->state[i];
    *name = e.first.c_str();
    *dtype = dtype_code(e.second.scalar_type());
    *ndim = (int32_t)e.second.dim();
    if (*ndim > 8) throw std::runtime_error("tensor has more than 8 dimensions");
    for (int d = 0; d < *ndim; d++) shape[d] = e.second.size(d);
    *nbytes = (int64_t)(e.second.numel() * e.second.element_size());
  });
}

int32_t rm_state_read(rm_model *m, int32_t i, void *dst, int64_t nbytes) {
  return guard([&] {
    if (i < 0 || i >= (int32_t)m->state.size()) throw InvalidArgument("state index out of range");
    auto t = m->state[i].second.detach().to(torch::kCPU).contiguous();
    if (nbytes != (int64_t)(t.numel() * t.element_size())) throw InvalidArgument("size mismatch for " + m->state[i].first);
    std::memcpy(dst, t.data_ptr(), nbytes);
  });
}

int32_t rm_state_write_resized(rm_model *m, int32_t i, const void *src, int64_t nbytes, int32_t ndim,
                               const int64_t *shape) {
  return guard([&] {
    if (i < 0 || i >= (int32_t)m->state.size()) throw InvalidArgument("state index out of range");
    if (ndim < 1 || ndim > 8) throw InvalidArgument("a tensor to resize has 1..8 dimensions");
    auto &t = m->state[i].second;
    std::vector<int64_t> sizes(shape, shape + ndim);
    int64_t want = (int64_t)t.element_size();
    for (int64_t d : sizes) {
      if (d < 0 || (d > 0 && want > INT64_MAX / d)) throw InvalidArgument("bad size in " + c10::str(sizes));
      want *= d;
    }
    if (want != nbytes) throw InvalidArgument("size mismatch for " + m->state[i].first + " of shape " + c10::str(sizes));
    auto cpu = torch::from_blob(const_cast<void *>(src), sizes, t.scalar_type());
    auto r = m->net->resized(m->state[i].first, cpu, t.sizes());
    if (!r.sizes().equals(t.sizes())) throw InvalidArgument("resized " + m->state[i].first + " has the wrong shape");
    torch::NoGradGuard ng;
    t.copy_(r);
  });
}

int32_t rm_state_write(rm_model *m, int32_t i, const void *src, int64_t nbytes) {
  return guard([&] {
    if (i < 0 || i >= (int32_t)m->state.size()) throw InvalidArgument("state index out of range");
    auto &t = m->state[i].second;
    if (nbytes != (int64_t)(t.numel() * t.element_size())) throw InvalidArgument("size mismatch for " + m->state[i].first);
    auto cpu = torch::from_blob(const_cast<void *>(src), t.sizes(), t.scalar_type());
    torch::NoGradGuard ng;
    t.copy_(cpu);
  });
}

}  // extern "C"
