// The NCCL backend as a plugin: a shared library linked against libtorch_cuda.so, which
// swerl loads only when a process group is asked for on a CUDA device.
//
// Why a separate library: ProcessGroupNCCL lives in libtorch_cuda.so, whose CUDA and NCCL
// dependencies exist only on a GPU install. Linking it into the swerl binary would make
// every CPU-only install fail to start; loading it at run time keeps one binary for both
// (the same reason crates/model loads libtorch_cuda.so itself only for `--device cuda`).
// build.rs compiles this file only where the CUDA development headers are installed.

#include <cstdlib>
#include <cstring>
#include <string>

#include <c10/util/Exception.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>

namespace {
char* copy_string(const std::string& text) {
  char* out = static_cast<char*>(std::malloc(text.size() + 1));
  if (out != nullptr) {
    std::memcpy(out, text.c_str(), text.size() + 1);
  }
  return out;
}
}  // namespace

// Matches swerl_backend_factory in shim.h: `store` is a c10d::Store* the caller keeps alive;
// the result is a c10d::Backend* that owns one reference.
extern "C" __attribute__((visibility("default"))) void* swerl_nccl_backend(
    void* store, int rank, int size, int64_t timeout_ms, char** error) {
  try {
    auto shared = c10::intrusive_ptr<c10d::Store>::reclaim_copy(static_cast<c10d::Store*>(store));
    auto options = c10d::ProcessGroupNCCL::Options::create();
    options->timeout = std::chrono::milliseconds(timeout_ms);
    auto backend = c10::make_intrusive<c10d::ProcessGroupNCCL>(shared, rank, size, options);
    return c10::static_intrusive_pointer_cast<c10d::Backend>(backend).release();
  } catch (const c10::Error& e) {
    *error = copy_string(e.what_without_backtrace());
  } catch (const std::exception& e) {
    *error = copy_string(e.what());
  } catch (...) {
    *error = copy_string("unknown C++ exception");
  }
  return nullptr;
}
