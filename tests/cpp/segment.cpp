// Loads a phenoseg whole-pipeline TorchScript file with LibTorch alone and segments a raw image.
// Usage: segment MODEL.pt IMAGE.raw CHANNELS HEIGHT WIDTH OUT.raw
// IMAGE.raw: float32, C×H×W, row-major. OUT.raw: int32 labels, targets×H×W.
#include <torch/script.h>

#include <fstream>
#include <iostream>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 7) {
    std::cerr << "usage: segment MODEL.pt IMAGE.raw CHANNELS HEIGHT WIDTH OUT.raw\n";
    return 2;
  }
  const int64_t c = std::stoll(argv[3]), h = std::stoll(argv[4]), w = std::stoll(argv[5]);
  std::vector<float> pixels(c * h * w);
  std::ifstream in(argv[2], std::ios::binary);
  in.read(reinterpret_cast<char*>(pixels.data()), pixels.size() * sizeof(float));
  if (!in) {
    std::cerr << "cannot read image\n";
    return 1;
  }
  torch::jit::script::Module module = torch::jit::load(argv[1]);
  torch::NoGradGuard no_grad;
  auto x = torch::from_blob(pixels.data(), {1, c, h, w}, torch::kFloat32).clone();
  auto labels = module.forward({x}).toTensor().contiguous();
  std::ofstream out(argv[6], std::ios::binary);
  out.write(reinterpret_cast<const char*>(labels.data_ptr<int32_t>()), labels.numel() * sizeof(int32_t));
  std::cout << "objects " << labels.max().item<int32_t>() << " pixel_size_um "
            << module.attr("pixel_size_um").toDouble() << "\n";
  return 0;
}
