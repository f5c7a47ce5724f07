// A C face for LibTorch's AOTInductor package loader, so that Rust can load
// a `.pt2` made by torch._inductor.aoti_compile_and_package and run it on
// tensors it shares with tch (whose C tensors are `at::Tensor*`).
//
// Every function catches what LibTorch throws and returns it as a message
// allocated here; the caller frees it with maas_aoti_free_message.

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <torch/csrc/inductor/aoti_package/model_package_loader.h>

namespace {

char* copy_message(const std::string& message) {
  char* copy = static_cast<char*>(std::malloc(message.size() + 1));
  if (copy != nullptr) {
    std::memcpy(copy, message.c_str(), message.size() + 1);
  }
  return copy;
}

}  // namespace

extern "C" {

void* maas_aoti_load(const char* path, int device_index, char** error) {
  try {
    auto* loader = new torch::inductor::AOTIModelPackageLoader(
        path, "model", /*run_single_threaded=*/false, /*num_runners=*/1,
        static_cast<c10::DeviceIndex>(device_index));
    return loader;
  } catch (const std::exception& e) {
    *error = copy_message(e.what());
  } catch (...) {
    *error = copy_message("unknown C++ exception while loading the package");
  }
  return nullptr;
}

// The device the package was compiled for ("cpu", "cuda"), or an empty
// string when its metadata does not say; a message to free either way.
char* maas_aoti_device(void* loader) {
  try {
    auto metadata = static_cast<torch::inductor::AOTIModelPackageLoader*>(loader)->get_metadata();
    auto found = metadata.find("AOTI_DEVICE_KEY");
    return copy_message(found == metadata.end() ? "" : found->second);
  } catch (...) {
    return copy_message("");
  }
}

int maas_aoti_run(void* loader, at::Tensor* const* inputs, size_t input_count, at::Tensor*** outputs,
                  size_t* output_count, char** error) {
  try {
    std::vector<at::Tensor> arguments;
    arguments.reserve(input_count);
    for (size_t i = 0; i < input_count; ++i) {
      arguments.push_back(*inputs[i]);
    }
    std::vector<at::Tensor> results =
        static_cast<torch::inductor::AOTIModelPackageLoader*>(loader)->run(arguments);
    auto** owned = static_cast<at::Tensor**>(std::malloc(sizeof(at::Tensor*) * (results.size() + 1)));
    if (owned == nullptr) {
      *error = copy_message("out of memory for the outputs");
      return 1;
    }
    for (size_t i = 0; i < results.size(); ++i) {
      owned[i] = new at::Tensor(std::move(results[i]));
    }
    *outputs = owned;
    *output_count = results.size();
    return 0;
  } catch (const std::exception& e) {
    *error = copy_message(e.what());
  } catch (...) {
    *error = copy_message("unknown C++ exception while running the package");
  }
  return 1;
}

void maas_aoti_free_outputs(at::Tensor** outputs) { std::free(outputs); }

void maas_aoti_free(void* loader) { delete static_cast<torch::inductor::AOTIModelPackageLoader*>(loader); }

void maas_aoti_free_message(char* message) { std::free(message); }

}  // extern "C"
